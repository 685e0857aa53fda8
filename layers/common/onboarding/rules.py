"""The business rules of onboarding a user with Htouhui, once, for every function.

Final signatures (the handlers call exactly these):

    Onboarding(policy: Policy, keys: KeySource, store: UserStore, client_factory: Callable[[], HtouhuiClient],
               *, clock=...)                     # or Onboarding.configured(settings, store, client_factory)
    .register(body: RegisterBody) -> tuple[UserView, bool]            # True: registered now (201)
    .open_account(third_party_user_id, body: OpenAccountBody, *, notify_url: str, default_return_url: str,
                  own_host: str | None) -> OpenAccountPage
    .view(third_party_user_id) -> UserView
    .refresh(third_party_user_id) -> UserView                        # asks Htouhui first
    .accept_notification(fields: Mapping[str, str]) -> ApplyOutcome  # APPLIED / STALE / DUPLICATE / UNHANDLED
    .accept_return(fields: Mapping[str, str]) -> ReturnOutcome       # whose, the stored level, Htouhui's code
    .dispatch_due(queue: WorkQueue, *, limit: int, should_stop=None) -> DispatchReport   # the dispatcher
    .check_scheduled(third_party_user_id, due: int, *, pace=None) -> CheckOutcome  # a worker: a due user
    .check_now(third_party_user_id, *, pace=None) -> CheckOutcome                  # a worker: CheckUserStatus

Errors (htouhui.errors): UserNotFound (404); Conflict and its subclasses RegistrationRequired,
RegistrationInProgress, MobileMismatch, IdCardMismatch, HtouhuiUserIdMismatch (409); InvalidInput
(400); NotificationRejected(reason, field, rule) (notify: 400 FAIL); StoreUnavailable (500); and the client's
HtouhuiRejected / HtouhuiBusy / HtouhuiTimeout / HtouhuiSignatureError / HtouhuiProtocolError.

Decisions worth knowing:
- What Htouhui sends is verified exactly as received, then read tolerantly (PROTOCOL.md §9, `models._Wire`):
  strict only where a value decides state or security; a verified notification of another notify_type is
  acknowledged and kept in the history as unhandled, changing no status.
- A notification (or browser return) for a third_party_user_id we have not registered is rejected
  ("unknown user": FAIL, nothing stored), so Htouhui delivers it again; it cannot belong to a user
  of ours, since the open-account form is only handed out to registered users.
- A query answering status 0 is not stored: for the query interface 0 means "not opened (yet)",
  which cannot tell a user still on Htouhui's pages from a failed opening. Only a notification or a
  browser return records the failure (status 0, stage OPEN_FAILED).
- Reconciliation is a per-user schedule (onboarding.schedule): a fresh form and any news below status 3
  (notification, browser return, refresh, CheckUserStatus) restart the ladder from that moment.
- The client is built by `client_factory` on first use and reused (it is thread-safe), and built again
  when the settings reload the keys, so a key rotated in Secrets Manager reaches warm containers.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import math
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from htouhui import protocol
from htouhui.client import HtouhuiClient
from htouhui.errors import HtouhuiProtocolError, HtouhuiRejected
from htouhui.models import (
    BrowserReturn,
    Notification,
    OpenAccountForm,
    OpenAccountNotification,
    QueryRequest,
    QueryResponse,
    RegisterRequest,
)
from htouhui.page import OpenAccountPage, build_open_account_page
from onboarding import schedule
from onboarding.config import Keys, Settings, is_acceptable_url
from onboarding.errors import (
    HtouhuiUserIdMismatch,
    InvalidInput,
    MobileMismatch,
    NotificationRejected,
    RegistrationInProgress,
    RegistrationRequired,
    RejectionReason,
    StoreUnavailable,
    UserNotFound,
)
from onboarding.models import COMPLETED_STATUS, OpenAccountBody, RegisterBody, UserView
from onboarding.store import ApplyOutcome, ClaimOutcome, StatusUpdate, UserRecord, UserStore

logger = logging.getLogger(__name__)

OPEN_ACCOUNT_NOTIFY_TYPE = "OPEN_ACCOUNT"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class CheckOutcome(enum.StrEnum):
    CHECKED = "CHECKED"  # Htouhui answered; the answer is stored and the ladder moved to its next step
    REJECTED = "REJECTED"  # Htouhui answered an error code: a completed check (the ladder moves), a failure counted
    FAILED = "FAILED"  # no usable answer (9999, time-out, 5xx, unreachable, storage): tried again after a backoff
    GAVE_UP = "GAVE_UP"  # the step's last allowed attempt failed: the step is skipped, a failure counted
    SKIPPED = "SKIPPED"  # nothing asked: checked by someone else right now, no longer due, or nothing to ask with
    NOT_FOUND = "NOT_FOUND"  # no such user (CheckUserStatus)


@dataclass(frozen=True)
class DispatchReport:
    found: int = 0  # due users read from the index (at most the run's limit)
    dispatched: int = 0  # claimed and sent to the queue
    taken: int = 0  # moved by someone else between the read and the claim: left alone


class WorkQueue(Protocol):
    """Where the dispatcher sends due users (SQS in the cloud, a list in the simulation)."""

    def send(self, messages: list[dict[str, Any]]) -> None: ...

    def depth(self) -> int: ...


class KeySource(Protocol):
    """Where the keys come from (Settings: loaded on first use, reloaded after KEY_CACHE_SECONDS)."""

    def keys(self) -> Keys: ...

    def htouhui_public_keys(self) -> tuple[protocol.PublicKey, ...]: ...


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


class Onboarding:
    def __init__(
        self,
        policy: Policy,
        keys: KeySource,
        store: UserStore,
        client_factory: Callable[[], HtouhuiClient],
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.policy = policy
        self.key_source = keys
        self.store = store
        self._client_factory = client_factory
        self._client: HtouhuiClient | None = None
        self._client_keys: Keys | None = None
        self._lock = threading.Lock()
        self._clock = clock

    @classmethod
    def configured(
        cls,
        settings: Settings,
        store: UserStore,
        client_factory: Callable[[], HtouhuiClient],
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> Onboarding:
        """The rules with this configuration's policy and keys."""
        return cls(Policy.of(settings), settings, store, client_factory, clock=clock)

    def client(self) -> HtouhuiClient:
        """The Htouhui client, built again when the settings reloaded the keys (a rotation reaches warm containers).

        The client it replaces is not closed: another thread may still be using it; it goes with its last user.
        """
        keys = self.key_source.keys()
        with self._lock:
            if self._client is None or self._client_keys is not keys:
                self._client = self._client_factory()
                self._client_keys = keys
            return self._client

    def mobile_digest(self, mobile: str) -> str:
        """What we keep of the mobile: enough to tell "same mobile" on a second register, nothing more."""
        return hashlib.sha256(f"{self.policy.partner_id}:{mobile}".encode()).hexdigest()

    # --- register -----------------------------------------------------------------------------------

    def register(self, body: RegisterBody) -> tuple[UserView, bool]:
        user = body.third_party_user_id
        request = RegisterRequest(mobile=body.mobile, password=body.password, third_party_user_id=user)
        self._refuse_ambiguous(request.fields())  # before any write: a refused request changes nothing
        claim = self.store.claim_registration(user, self.mobile_digest(body.mobile), self._clock())
        if claim.outcome is ClaimOutcome.DONE:
            return required(claim.record, "a finished registration claim carries its record").view(), False
        if claim.outcome is ClaimOutcome.IN_PROGRESS:
            raise RegistrationInProgress()
        if claim.outcome is ClaimOutcome.OTHER_MOBILE:
            raise MobileMismatch()
        try:
            answer = self.client().register(request)
            if answer.third_party_user_id != user:
                raise HtouhuiProtocolError("Htouhui's answer names another third_party_user_id")
            htouhui_user_id = answer.htouhui_user_id
            if htouhui_user_id is None:  # RegisterResponse requires it on success: a guard, not a path
                raise HtouhuiProtocolError(
                    "Htouhui's answer has no htouhui_user_id", fields=[("htouhui_user_id", "missing")]
                )
        except Exception:
            self._release(user, claim.token)  # nothing registered on our side: a retry may start over
            raise
        try:
            record = self.store.complete_registration(user, htouhui_user_id, self._clock())
        except Exception:
            # Htouhui has the user, we failed to write it down. Give the lease back so that a retry
            # need not wait for it; Htouhui answers the retry with the same htouhui_user_id.
            self._release(user, claim.token)
            raise
        return record.view(), True

    def _refuse_ambiguous(self, fields: Mapping[str, str]) -> None:
        """No value we sign may hold a separator of the canonical string: it could be regrouped into other
        fields under the same signature (issue 19). The caller learns which field, never the value."""
        ambiguous = protocol.ambiguous_fields(fields, self.policy.profile)
        if ambiguous:
            raise InvalidInput([(name, SEPARATOR_RULE) for name in ambiguous])

    def _release(self, user: str, token: str | None) -> None:
        try:
            self.store.release_claim(user, token)
        except Exception:  # the lease expires by itself; the original failure is the one to report
            logger.warning("registration claim not released", extra={"third_party_user_id": user})

    # --- open account -------------------------------------------------------------------------------

    def open_account(
        self,
        third_party_user_id: str,
        body: OpenAccountBody,
        *,
        notify_url: str,
        default_return_url: str,
        own_host: str | None,
    ) -> OpenAccountPage:
        record = self._registered(third_party_user_id)
        return_url = body.return_url or default_return_url
        if not self.policy.allows_return_url(return_url, own_host=own_host):
            raise InvalidInput([("return_url", "return_url_not_allowed")])
        if _is_own_return_with_query(return_url, default_return_url, own_host):
            # Htouhui appends its signed fields: ours would join them and the return could never verify.
            raise InvalidInput([("return_url", "own_return_url_takes_no_query_or_fragment")])
        try:
            form = OpenAccountForm(
                htouhui_user_id=record.htouhui_user_id or "",
                id_card=body.id_card,
                type=body.type,
                real_name=body.real_name,
                third_party_user_id=third_party_user_id,
                notify_url=notify_url,
                return_url=return_url,
            )
        except ValidationError as exc:
            raise InvalidInput(_broken_fields(exc)) from None
        self._refuse_ambiguous(form.fields())
        merchant_key = self.key_source.keys().merchant_private  # a configuration problem fails before any write
        # Kept before the page is handed out: the reconciler needs the id_card to query Htouhui.
        self.store.mark_open_requested(third_party_user_id, form.id_card, self._clock())
        self.restart_ladder(third_party_user_id)  # a fresh form: checks from now on (a failure fails the request)
        return build_open_account_page(
            form,
            partner_id=self.policy.partner_id,
            action=self.policy.open_account_url,
            merchant_key=merchant_key,
            profile=self.policy.profile,
        )

    # --- query --------------------------------------------------------------------------------------

    def view(self, third_party_user_id: str) -> UserView:
        return self._registered(third_party_user_id).view()

    def refresh(self, third_party_user_id: str) -> UserView:
        """Ask Htouhui (query interface), store the answer through the monotonic update, show the result."""
        record = self._registered(third_party_user_id)
        if not record.id_card:
            return record.view()  # the query interface needs the id_card: nothing to ask before open-account
        self._check(record)
        view = self.view(third_party_user_id)
        if view.status is None or view.status < COMPLETED_STATUS:
            self._restart_quietly(third_party_user_id)  # news: the merchant asked
        return view

    def _check(self, record: UserRecord) -> ApplyOutcome | None:
        id_card = required(record.id_card, "a checked user has an id_card")
        required(record.htouhui_user_id, "a checked user is registered")
        user = record.third_party_user_id
        answer = self.client().query(QueryRequest(id_card=id_card, third_party_user_id=user))
        if answer.third_party_user_id != user:
            raise HtouhuiProtocolError("Htouhui's answer names another third_party_user_id")
        if answer.htouhui_user_id is not None and answer.htouhui_user_id != record.htouhui_user_id:
            raise HtouhuiProtocolError("Htouhui's answer names another htouhui_user_id")
        return self._store_answer(record, answer)

    def _store_answer(self, record: UserRecord, answer: QueryResponse) -> ApplyOutcome | None:
        status = int(answer.status)
        if status == 0:
            return None  # "not opened (yet)": not a level worth recording (see the module's docstring)
        return self.store.apply_status(
            StatusUpdate(
                third_party_user_id=record.third_party_user_id,
                htouhui_user_id=required(record.htouhui_user_id, "a checked user is registered"),
                status=status,
                source="query",
                received_at=self._clock(),
                bank_card_number=answer.bank_card_number,
                borrower=answer.borrower,
            )
        )

    # --- notification and browser return ------------------------------------------------------------

    def accept_notification(self, fields: Mapping[str, str]) -> ApplyOutcome:
        """Verify as received, then read tolerantly (§9) and record: APPLIED, STALE, DUPLICATE or UNHANDLED."""
        message = self._verify(fields)
        notification = _read(Notification, message)
        if notification.notify_type != OPEN_ACCOUNT_NOTIFY_TYPE:
            # Refusing would only bring eleven redeliveries: keep it for an operator, change nothing.
            return self.store.record_unhandled(
                notification.notify_no, fields, self._clock(), notify_type=notification.notify_type
            )
        opened = _read(OpenAccountNotification, message)
        outcome = self._apply(self._notified(opened, notify_no=opened.notify_no, raw=dict(fields)))
        if int(opened.status) < COMPLETED_STATUS:
            # News below 3 restarts the ladder. A failure here answers 500: Htouhui delivers again, the
            # redelivery is a DUPLICATE and restarts the ladder again.
            self.restart_ladder(opened.third_party_user_id)
        return outcome

    def reapply_notification(self, fields: Mapping[str, str]) -> ApplyOutcome:
        """A notification kept in the history (its fields as received) verified again and its level applied
        through the same monotonic update; no second history record (it has one)."""
        return self._apply(self._notified(_read(OpenAccountNotification, self._verify(fields))))

    def _notified(
        self, opened: OpenAccountNotification, *, notify_no: str | None = None, raw: Mapping[str, str] | None = None
    ) -> StatusUpdate:
        return StatusUpdate(
            third_party_user_id=opened.third_party_user_id,
            htouhui_user_id=opened.htouhui_user_id,
            status=int(opened.status),
            source="notify",
            received_at=self._clock(),
            bank_card_number=opened.bank_card_number,
            notify_no=notify_no,
            timestamp=opened.timestamp,
            raw=raw,
        )

    def accept_return(self, fields: Mapping[str, str]) -> ReturnOutcome:
        """Verify the browser return; on success apply its level like a notification's (no history record).

        The outcome carries only what this return itself signed (its level and code), never the stored level: a
        replayed old return must not disclose the user's current state (SECURITY.md). The front end learns the
        truth from the authenticated API; the notification is authoritative.
        """
        answer = _read(BrowserReturn, self._verify(fields))
        user = answer.third_party_user_id
        signed_level = int(answer.status) if answer.status is not None else None
        if not answer.succeeded:
            return ReturnOutcome(user, signed_level, answer.code)
        if user is None or answer.htouhui_user_id is None or signed_level is None:  # BrowserReturn requires them
            raise NotificationRejected(RejectionReason.INVALID_FIELD, field="status", rule="required_on_success")
        try:
            self._apply(
                StatusUpdate(
                    third_party_user_id=user,
                    htouhui_user_id=answer.htouhui_user_id,
                    status=signed_level,
                    source="return",
                    received_at=self._clock(),
                )
            )
        except StoreUnavailable:
            logger.warning("browser return not recorded: storage unavailable", exc_info=True)
            return ReturnOutcome(user, signed_level, answer.code)
        if signed_level < COMPLETED_STATUS:
            self._restart_quietly(user)
        return ReturnOutcome(user, signed_level, answer.code)

    def _verify(self, fields: Mapping[str, str]) -> dict[str, str]:
        """The message verified exactly as received, then named as the layer reads it (`Profile.internal`)."""
        profile = self.policy.profile
        failure = protocol.verification_failure(fields, self.key_source.htouhui_public_keys(), profile)
        if failure is not None:
            field = protocol.SIGN_TYPE_FIELD if protocol.SIGN_TYPE_FIELD in failure else protocol.SIGN_FIELD
            raise NotificationRejected(RejectionReason.BAD_SIGNATURE, field=field, rule=failure.replace(" ", "_"))
        if fields.get(profile.partner_field) != self.policy.partner_id:
            raise NotificationRejected(RejectionReason.OTHER_PARTNER, field=profile.partner_field, rule="not_ours")
        return profile.internal(fields)

    def _apply(self, update: StatusUpdate) -> ApplyOutcome:
        try:
            return self.store.apply_status(update)
        except UserNotFound:
            raise NotificationRejected(
                RejectionReason.UNKNOWN_USER, field="third_party_user_id", rule="not_registered"
            ) from None
        except HtouhuiUserIdMismatch:
            raise NotificationRejected(
                RejectionReason.USER_MISMATCH, field="htouhui_user_id", rule="not_the_stored_one"
            ) from None

    # --- reconciliation -----------------------------------------------------------------------------

    def _ladder(self) -> schedule.Ladder:
        return schedule.Ladder(self.policy.ladder)

    def _now(self) -> int:
        return math.floor(self._clock().timestamp())

    def restart_ladder(self, third_party_user_id: str) -> bool:
        """News below status 3 (or a fresh form): the ladder starts again at its first step, from now.

        False when the user may not be scheduled (no id_card yet, or status 3).
        """
        slot = schedule.start(self._ladder(), third_party_user_id, self._now())
        shard = schedule.shard_of(third_party_user_id, self.policy.shards)
        return self.store.restart_schedule(third_party_user_id, slot, shard)

    def _restart_quietly(self, third_party_user_id: str) -> None:
        try:
            self.restart_ladder(third_party_user_id)
        except StoreUnavailable:  # the answer is stored; the old ladder (if any) goes on
            logger.warning("ladder not restarted: storage unavailable")

    def dispatch_due(
        self, queue: WorkQueue, *, limit: int, should_stop: Callable[[], bool] | None = None
    ) -> DispatchReport:
        """Send up to `limit` due users to the queue, oldest due first over all shards (the dispatcher).

        Each shard gives its oldest due users (a fair share and a half, the shards being alike by hash);
        the oldest `limit` of them are claimed (their due time moves a dispatch lease ahead, so the next run
        does not send them again while their message waits) and sent, ten to a message batch.
        """
        if limit <= 0:
            return DispatchReport()
        now = self._now()
        shards = [f"{shard:02d}" for shard in range(self.policy.shards)]
        asked = dict.fromkeys(shards, min(limit, math.ceil(limit * 1.5 / len(shards)) + 1))
        found = {shard: self.store.due(shard, now, asked[shard]) for shard in shards}
        while True:  # exact oldest-first: ask again a shard whose every row made the cut (it may hold more)
            rows = sorted(
                (row for shard_rows in found.values() for row in shard_rows),
                key=lambda row: (row.due, row.shard, row.third_party_user_id),
            )[:limit]
            cutoff = rows[-1].due if len(rows) == limit else None
            more = [
                shard
                for shard in shards
                if len(found[shard]) == asked[shard] < limit and (cutoff is None or found[shard][-1].due <= cutoff)
            ]
            if not more:
                break
            for shard in more:
                asked[shard] = min(limit, asked[shard] * 2)
                found[shard] = self.store.due(shard, now, asked[shard])
        until = now + schedule.DISPATCH_LEASE_SECONDS
        dispatched = taken = 0
        batch: list[dict[str, Any]] = []
        for row in rows:
            if should_stop is not None and should_stop():
                break
            if not self.store.claim_dispatch(row, until):
                taken += 1
                continue
            batch.append({"third_party_user_id": row.third_party_user_id, "due": until})
            if len(batch) == 10:
                queue.send(batch)
                dispatched += len(batch)
                batch = []
        if batch:
            queue.send(batch)
            dispatched += len(batch)
        return DispatchReport(found=len(rows), dispatched=dispatched, taken=taken)

    def check_scheduled(
        self, third_party_user_id: str, due: int, *, pace: Callable[[], None] | None = None
    ) -> CheckOutcome:
        """One dispatched user: ask Htouhui, store the answer, move the ladder (a worker, one message).

        Skipped without a query when another check holds the user or its due time is no longer the
        dispatched one (news restarted the ladder, or the message is an old duplicate).
        """
        token = secrets.token_hex(8)
        now = self._now()
        record = self.store.begin_check(
            third_party_user_id, token=token, now=now, lease_until=now + schedule.CHECK_LEASE_SECONDS, due=due
        )
        if record is None:
            return CheckOutcome.SKIPPED
        slot = record.slot
        if slot is None or not record.id_card or not record.htouhui_user_id:
            self.store.release_check(third_party_user_id, token)
            return CheckOutcome.SKIPPED
        ladder = self._ladder()
        shard = record.check_shard or schedule.shard_of(third_party_user_id, self.policy.shards)
        if pace is not None:
            pace()  # the rate budget: only a check that will ask Htouhui waits for its turn
        outcome = self._ask(record)
        if outcome is CheckOutcome.FAILED:
            attempts = record.check_attempts + 1
            if attempts < schedule.MAX_ATTEMPTS:
                retry = schedule.Slot(slot.anchor, slot.step, self._now() + schedule.retry_delay(attempts))
                self.store.settle_check(
                    third_party_user_id, token=token, taken_on=slot, next_slot=retry, shard=shard, attempts=attempts
                )
                return CheckOutcome.FAILED
            outcome = CheckOutcome.GAVE_UP
        self.store.settle_check(
            third_party_user_id,
            token=token,
            taken_on=slot,
            next_slot=schedule.advance(ladder, third_party_user_id, slot),
            shard=shard,
        )
        return outcome

    def check_now(self, third_party_user_id: str, *, pace: Callable[[], None] | None = None) -> CheckOutcome:
        """CheckUserStatus: ask Htouhui now and put the user back on the ladder from now (unless at status 3).

        FAILED means "try again" (the worker reports the message as failed, SQS delivers it again).
        """
        token = secrets.token_hex(8)
        now = self._now()
        record = self.store.begin_check(
            third_party_user_id, token=token, now=now, lease_until=now + schedule.CHECK_LEASE_SECONDS
        )
        if record is None:
            if self.store.get(third_party_user_id) is None:
                return CheckOutcome.NOT_FOUND
            return CheckOutcome.FAILED  # another check holds the user: this one waits for its turn
        if not record.registered or not record.id_card:
            self.store.release_check(third_party_user_id, token)
            return CheckOutcome.SKIPPED  # nothing to ask with before the form
        if pace is not None:
            pace()
        outcome = self._ask(record)
        if outcome is CheckOutcome.FAILED:
            self.store.release_check(third_party_user_id, token)
            return outcome
        ladder = self._ladder()
        self.store.settle_check(
            third_party_user_id,
            token=token,
            taken_on=None,
            next_slot=schedule.start(ladder, third_party_user_id, self._now()),
            shard=schedule.shard_of(third_party_user_id, self.policy.shards),
        )
        return outcome

    def _ask(self, record: UserRecord) -> CheckOutcome:
        """The query and the monotonic store (`_check`), its failure classified: a rejection is an answer."""
        try:
            self._check(record)
        except HtouhuiRejected as exc:
            self._log_failure(record, exc)
            return CheckOutcome.REJECTED
        except Exception as exc:
            self._log_failure(record, exc)
            return CheckOutcome.FAILED
        return CheckOutcome.CHECKED

    @staticmethod
    def _log_failure(record: UserRecord, exc: Exception) -> None:
        # Only what happened, never a value: Htouhui's message may name a field's content.
        logger.warning(
            "reconciliation check failed",
            extra={
                "third_party_user_id": record.third_party_user_id,
                "error": type(exc).__name__,
                "htouhui_code": getattr(exc, "code", None),
                "step": record.check_step,
                "attempts": record.check_attempts,
            },
        )

    # --- helpers ------------------------------------------------------------------------------------

    def _registered(self, third_party_user_id: str) -> UserRecord:
        record = self.store.get(third_party_user_id)
        if record is None:
            raise UserNotFound(third_party_user_id)
        if not record.registered:
            raise RegistrationRequired()
        return record


_T = TypeVar("_T")


def required(value: _T | None, invariant: str) -> _T:
    """`value`, which an invariant of the rules says is present; a broken invariant fails loudly (500), never on."""
    if value is None:
        raise RuntimeError(f"invariant broken: {invariant}")
    return value


SEPARATOR_RULE: Final = "contains_canonical_separator"
DEFAULT_PORTS: Final = {"https": 443, "http": 80}


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


def _is_own_return_with_query(return_url: str, own_return_url: str, own_host: str | None) -> bool:
    target, own = urlsplit(return_url), urlsplit(own_return_url)
    hosts = {host_and_port(own_return_url), entry_with_port(own_host, return_url) if own_host else None} - {None}
    is_own = host_and_port(return_url) in hosts and target.path == own.path
    return is_own and bool(target.query or target.fragment or return_url.endswith(("?", "#")))


@dataclass(frozen=True)
class ReturnOutcome:
    """What the browser return's page may show: whose, the level (stored, highest), Htouhui's result code."""

    third_party_user_id: str | None
    status: int | None
    code: str

    @property
    def succeeded(self) -> bool:
        return self.code == protocol.SUCCESS


_Message = TypeVar("_Message", Notification, OpenAccountNotification, BrowserReturn)


def _read(model: type[_Message], fields: Mapping[str, str]) -> _Message:
    """A verified message read tolerantly; a field that decides state and breaks its rule refuses it."""
    try:
        return model.read(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(map(str, error["loc"])) or "message"
        raise NotificationRejected(RejectionReason.INVALID_FIELD, field=field, rule=str(error["type"])) from None


def _broken_fields(error: ValidationError) -> list[tuple[str, str]]:
    """(field, rule) pairs of a validation error: the rule's name, never the value."""
    return [(".".join(map(str, detail["loc"])) or "body", detail["type"]) for detail in error.errors()]
