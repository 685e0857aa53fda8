"""What every room of the onboarding rules shares: the policy, the keys, the store, the client, the clock.

The rooms (`registration.Registration`, `inbound.Inbound`, `checks.Checks`) each take one `Core`; `rules.Onboarding`
holds the three over one core. The client is built by `client_factory` on first use and reused (it is
thread-safe), and built again when the settings reload the keys, so a key rotated in Secrets Manager reaches
warm containers.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Protocol, TypeVar
from urllib.parse import urlsplit

from htouhui import protocol
from htouhui.errors import HtouhuiProtocolError
from onboarding import schedule
from onboarding.config import Keys, Settings, is_acceptable_url
from onboarding.errors import InvalidInput, RegistrationRequired, StoreUnavailable, UserNotFound
from onboarding.store import ApplyOutcome, StatusUpdate, Store, UserRecord, card_number_improves

if TYPE_CHECKING:  # the models (pydantic) are imported when a query is sent: the dispatcher never sends one
    from htouhui.models import QueryRequest, QueryResponse, RegisterRequest, RegisterResponse

logger = logging.getLogger(__name__)

SEPARATOR_RULE: Final = "contains_canonical_separator"
DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_T = TypeVar("_T")


def utc_now() -> datetime:
    return datetime.now(UTC)


def _changes_nothing(record: UserRecord, status: int, borrower: str | None, card: str | None) -> bool:
    """Whether storing a query's answer could change nothing on `record` (read under the check's lease or just
    before a refresh): a status no higher than the stored one, and no detail the store would fill (`_fill_details`).
    A status only rises, so a status read a moment ago that is already as high still is."""
    if record.status is None or status > record.status:
        return False
    if borrower and borrower != record.borrower:
        return False
    return not (card and card_number_improves(record.bank_card_number, card))


def required(value: _T | None, invariant: str) -> _T:
    """`value`, which an invariant of the rules says is present; a broken invariant fails loudly (500), never on."""
    if value is None:
        raise RuntimeError(f"invariant broken: {invariant}")
    return value


class HtouhuiGateway(Protocol):
    """What the rules ask of Htouhui (htouhui.client.HtouhuiGateway; the bench's in-memory Htouhui)."""

    def register(self, request: RegisterRequest) -> RegisterResponse: ...

    def query(self, request: QueryRequest) -> QueryResponse: ...


class KeySource(Protocol):
    """Where the keys come from (Settings: loaded on first use, reloaded after KEY_CACHE_SECONDS)."""

    def keys(self) -> Keys: ...

    def htouhui_public_keys(self) -> tuple[protocol.PublicKey, ...]: ...


def host_and_port(url: str) -> tuple[str, int] | None:
    """(host, port) of a URL, the scheme's default port when none is given; None when it has no usable host."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    port = port if port is not None else DEFAULT_PORTS.get(parts.scheme)
    if not host or port is None:
        return None
    return host, port


def entry_with_port(entry: str, url: str) -> tuple[str, int]:
    """An allow-list entry `host[:port]` as (host, port), read with the scheme of the URL it is compared with."""
    scheme = urlsplit(url).scheme or "https"
    parsed = host_and_port(f"{scheme}://{entry}/")
    return parsed if parsed is not None else (entry.lower(), -1)


@dataclass(frozen=True)
class Policy:
    """What the rules need to know of the configuration, and nothing more."""

    partner_id: str
    profile: protocol.Profile
    open_account_url: str
    return_hosts: frozenset[str]  # hosts a return_url may point at, besides the request's own
    ladder: tuple[int, ...]
    shards: int

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        public_host = urlsplit(settings.public_base_url).netloc.lower() if settings.public_base_url else ""
        return cls(
            partner_id=settings.partner_id,
            profile=settings.profile,
            open_account_url=settings.client.open_account_url,
            return_hosts=settings.allowed_return_hosts | ({public_host} - {""}),
            ladder=settings.reconcile_ladder,
            shards=settings.reconcile_shards,
        )

    def allows_return_url(self, url: str, *, own_host: str | None = None) -> bool:
        """An allow-list entry is `host[:port]`; it matches exactly, the scheme's default port when none is given."""
        target = host_and_port(url)
        allowed = {entry_with_port(entry, url) for entry in self.return_hosts}
        if own_host:
            allowed.add(entry_with_port(own_host, url))
        return target is not None and target in allowed and is_acceptable_url(url)


class Core:
    def __init__(
        self,
        policy: Policy,
        keys: KeySource,
        store: Store,
        client_factory: Callable[[], HtouhuiGateway],
        *,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.policy = policy
        self.key_source = keys
        self.store = store
        self._client_factory = client_factory
        self._client: HtouhuiGateway | None = None
        self._client_keys: Keys | None = None
        self._lock = threading.Lock()
        self.clock = clock

    def client(self) -> HtouhuiGateway:
        """The Htouhui client, built again when the settings reloaded the keys (a rotation reaches warm containers).

        The client it replaces is not closed: another thread may still be using it; it goes with its last user.
        """
        keys = self.key_source.keys()
        with self._lock:
            if self._client is None or self._client_keys is not keys:
                self._client = self._client_factory()
                self._client_keys = keys
            return self._client

    def now(self) -> int:
        return math.floor(self.clock().timestamp())

    def ladder(self) -> schedule.Ladder:
        return schedule.Ladder(self.policy.ladder)

    def shard_of(self, third_party_user_id: str) -> str:
        return schedule.shard_of(third_party_user_id, self.policy.shards)

    def registered(self, third_party_user_id: str) -> UserRecord:
        record = self.store.get(third_party_user_id)
        if record is None:
            raise UserNotFound(third_party_user_id)
        if not record.registered:
            raise RegistrationRequired()
        return record

    def refuse_ambiguous(self, fields: Mapping[str, str]) -> None:
        """No value we sign may hold a separator of the canonical string: it could be regrouped into other
        fields under the same signature (issue 19). The caller learns which field, never the value."""
        ambiguous = protocol.ambiguous_fields(fields, self.policy.profile)
        if ambiguous:
            raise InvalidInput([(name, SEPARATOR_RULE) for name in ambiguous])

    # --- the query interface, shared by refresh and the reconciliation checks ---------------------------

    def check(self, record: UserRecord) -> ApplyOutcome | None:
        """`answer_and_store`'s outcome alone (refresh)."""
        return self.answer_and_store(record)[1]

    def answer_and_store(self, record: UserRecord) -> tuple[int, ApplyOutcome | None]:
        """Ask Htouhui for the user's level and store it through the monotonic update: (the status answered, the
        store's outcome; None: status 0, kept out). An answer that could change nothing is not written (STALE).

        A query answering status 0 is not stored: for the query interface 0 means "not opened (yet)", which
        cannot tell a user still on Htouhui's pages from a failed opening. Only a notification or a browser
        return records the failure (status 0, stage OPEN_FAILED).
        """
        id_card = required(record.id_card, "a checked user has an id_card")
        htouhui_user_id = required(record.htouhui_user_id, "a checked user is registered")
        user = record.third_party_user_id
        from htouhui.models import QueryRequest

        answer = self.client().query(QueryRequest(id_card=id_card, third_party_user_id=user))
        if answer.third_party_user_id != user:
            raise HtouhuiProtocolError("Htouhui's answer names another third_party_user_id")
        if answer.htouhui_user_id is not None and answer.htouhui_user_id != htouhui_user_id:
            raise HtouhuiProtocolError("Htouhui's answer names another htouhui_user_id")
        status = int(answer.status)
        if status == 0:
            return status, None
        if _changes_nothing(record, status, answer.borrower, answer.bank_card_number):
            # the monotonic write's condition would fail (and still cost a write unit): nothing to write
            return status, ApplyOutcome.STALE
        return status, self.store.apply_status(
            StatusUpdate(
                third_party_user_id=user,
                htouhui_user_id=htouhui_user_id,
                status=status,
                source="query",
                received_at=self.clock(),
                bank_card_number=answer.bank_card_number,
                borrower=answer.borrower,
            )
        )

    # --- the reconciliation ladder ------------------------------------------------------------------------

    def restart_ladder(self, third_party_user_id: str) -> bool:
        """News below status 3 (or a fresh form): the ladder starts again at its first step, from now.

        False when the user may not be scheduled (no id_card yet, or status 3).
        """
        slot = schedule.start(self.ladder(), third_party_user_id, self.now())
        return self.store.restart_schedule(third_party_user_id, slot, self.shard_of(third_party_user_id))

    def restart_quietly(self, third_party_user_id: str) -> None:
        try:
            self.restart_ladder(third_party_user_id)
        except StoreUnavailable:  # the answer is stored; the old ladder (if any) goes on
            logger.warning("ladder not restarted: storage unavailable")
