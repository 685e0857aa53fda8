"""The business rules of onboarding a user with Htouhui, once, for every function.

Final signatures (the handlers call exactly these):

    Onboarding(settings: Settings, store: UserStore, client_factory: Callable[[], HtouhuiClient], *, clock=...)
    .register(body: RegisterBody) -> tuple[UserView, bool]            # True: registered now (201)
    .open_account(third_party_user_id, body: OpenAccountBody, *, notify_url: str, default_return_url: str,
                  own_host: str | None) -> OpenAccountPage
    .view(third_party_user_id) -> UserView
    .refresh(third_party_user_id) -> UserView                        # asks Htouhui first
    .check_user(third_party_user_id) -> UserView                     # CheckUserStatus: same as refresh
    .accept_notification(fields: Mapping[str, str]) -> ApplyOutcome  # APPLIED / STALE / DUPLICATE / UNHANDLED
    .accept_return(fields: Mapping[str, str]) -> ReturnOutcome       # whose, the stored level, Htouhui's code
    .reconcile_unfinished(concurrency: int, *, page_size=100, should_stop=None) -> ReconcileReport

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
- The client is built by `client_factory` on first use and reused (it is thread-safe), and built again
  when the settings reload the keys, so a key rotated in Secrets Manager reaches warm containers.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import ValidationError

from htouhui import protocol
from htouhui.client import HtouhuiClient
from htouhui.config import Keys, Settings
from htouhui.errors import (
    HtouhuiProtocolError,
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
from htouhui.models import (
    BrowserReturn,
    Notification,
    OpenAccountBody,
    OpenAccountForm,
    OpenAccountNotification,
    QueryRequest,
    QueryResponse,
    RegisterBody,
    RegisterRequest,
    UserView,
)
from htouhui.page import OpenAccountPage, build_open_account_page
from htouhui.store import ApplyOutcome, ClaimOutcome, StatusUpdate, UserRecord, UserStore

logger = logging.getLogger(__name__)

OPEN_ACCOUNT_NOTIFY_TYPE = "OPEN_ACCOUNT"


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class ReconcileReport:
    checked: int = 0  # users asked about (answered or failed)
    changed: int = 0  # users whose status rose
    failed: int = 0  # users whose check failed (Htouhui or storage); the next run tries again
    skipped: int = 0  # users that cannot be queried yet (no id_card: open-account never requested)


class Onboarding:
    def __init__(
        self,
        settings: Settings,
        store: UserStore,
        client_factory: Callable[[], HtouhuiClient],
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.settings = settings
        self.store = store
        self._client_factory = client_factory
        self._client: HtouhuiClient | None = None
        self._client_keys: Keys | None = None
        self._lock = threading.Lock()
        self._clock = clock

    def client(self) -> HtouhuiClient:
        """The Htouhui client, built again when the settings reloaded the keys (a rotation reaches warm containers).

        The client it replaces is not closed: another thread may still be using it; it goes with its last user.
        """
        keys = self.settings.keys()
        with self._lock:
            if self._client is None or self._client_keys is not keys:
                self._client = self._client_factory()
                self._client_keys = keys
            return self._client

    def mobile_digest(self, mobile: str) -> str:
        """What we keep of the mobile: enough to tell "same mobile" on a second register, nothing more."""
        return hashlib.sha256(f"{self.settings.partner_id}:{mobile}".encode()).hexdigest()

    # --- register -----------------------------------------------------------------------------------

    def register(self, body: RegisterBody) -> tuple[UserView, bool]:
        user = body.third_party_user_id
        claim = self.store.claim_registration(user, self.mobile_digest(body.mobile), self._clock())
        if claim.outcome is ClaimOutcome.DONE:
            assert claim.record is not None
            return claim.record.view(), False
        if claim.outcome is ClaimOutcome.IN_PROGRESS:
            raise RegistrationInProgress()
        if claim.outcome is ClaimOutcome.OTHER_MOBILE:
            raise MobileMismatch()
        try:
            answer = self.client().register(
                RegisterRequest(mobile=body.mobile, password=body.password, third_party_user_id=user)
            )
            if answer.third_party_user_id != user:
                raise HtouhuiProtocolError("Htouhui's answer names another third_party_user_id")
            assert answer.htouhui_user_id is not None  # RegisterResponse requires it on success
        except Exception:
            self._release(user, claim.token)  # nothing registered on our side: a retry may start over
            raise
        try:
            record = self.store.complete_registration(user, answer.htouhui_user_id, self._clock())
        except Exception:
            # Htouhui has the user, we failed to write it down. Give the lease back so that a retry
            # need not wait for it; Htouhui answers the retry with the same htouhui_user_id.
            self._release(user, claim.token)
            raise
        return record.view(), True

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
        if not self.settings.is_allowed_return_url(return_url, own_host=own_host):
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
        merchant_key = self.settings.keys().merchant_private  # a configuration problem fails before any write
        # Kept before the page is handed out: the reconciler needs the id_card to query Htouhui.
        self.store.mark_open_requested(third_party_user_id, form.id_card, self._clock())
        return build_open_account_page(
            form,
            partner_id=self.settings.partner_id,
            action=self.settings.client.open_account_url,
            merchant_key=merchant_key,
            profile=self.settings.profile,
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
        return self.view(third_party_user_id)

    def check_user(self, third_party_user_id: str) -> UserView:
        return self.refresh(third_party_user_id)

    def _check(self, record: UserRecord) -> ApplyOutcome | None:
        assert record.id_card is not None and record.htouhui_user_id is not None
        user = record.third_party_user_id
        answer = self.client().query(QueryRequest(id_card=record.id_card, third_party_user_id=user))
        if answer.third_party_user_id != user:
            raise HtouhuiProtocolError("Htouhui's answer names another third_party_user_id")
        if answer.htouhui_user_id is not None and answer.htouhui_user_id != record.htouhui_user_id:
            raise HtouhuiProtocolError("Htouhui's answer names another htouhui_user_id")
        return self._store_answer(record, answer)

    def _store_answer(self, record: UserRecord, answer: QueryResponse) -> ApplyOutcome | None:
        status = int(answer.status)
        if status == 0:
            return None  # "not opened (yet)": not a level worth recording (see the module's docstring)
        assert record.htouhui_user_id is not None
        return self.store.apply_status(
            StatusUpdate(
                third_party_user_id=record.third_party_user_id,
                htouhui_user_id=record.htouhui_user_id,
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
        return self._apply(self._notified(opened, notify_no=opened.notify_no, raw=dict(fields)))

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

        The outcome carries the stored (highest) level, or the return's verified level when the store cannot
        be read: the return only informs the page, the notification is authoritative.
        """
        answer = _read(BrowserReturn, self._verify(fields))
        user = answer.third_party_user_id
        if not answer.succeeded:
            return ReturnOutcome(user, self._stored_level(user), answer.code)
        assert user is not None and answer.htouhui_user_id is not None and answer.status is not None
        try:
            self._apply(
                StatusUpdate(
                    third_party_user_id=user,
                    htouhui_user_id=answer.htouhui_user_id,
                    status=int(answer.status),
                    source="return",
                    received_at=self._clock(),
                )
            )
        except StoreUnavailable:
            logger.warning("browser return not recorded: storage unavailable", exc_info=True)
            return ReturnOutcome(user, int(answer.status), answer.code)
        stored = self._stored_level(user)
        return ReturnOutcome(user, int(answer.status) if stored is None else stored, answer.code)

    def _stored_level(self, third_party_user_id: str | None) -> int | None:
        if third_party_user_id is None:
            return None
        try:
            record = self.store.get(third_party_user_id)
        except StoreUnavailable:
            logger.warning("stored level not read: storage unavailable")
            return None
        return record.status if record is not None else None

    def _verify(self, fields: Mapping[str, str]) -> dict[str, str]:
        """The message verified exactly as received, then named as the layer reads it (`Profile.internal`)."""
        profile = self.settings.profile
        failure = protocol.verification_failure(fields, self.settings.htouhui_public_keys(), profile)
        if failure is not None:
            field = protocol.SIGN_TYPE_FIELD if protocol.SIGN_TYPE_FIELD in failure else protocol.SIGN_FIELD
            raise NotificationRejected(RejectionReason.BAD_SIGNATURE, field=field, rule=failure.replace(" ", "_"))
        if fields.get(profile.partner_field) != self.settings.partner_id:
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

    def reconcile_unfinished(
        self,
        concurrency: int,
        *,
        page_size: int = 100,
        should_stop: Callable[[], bool] | None = None,
    ) -> ReconcileReport:
        """Ask Htouhui about every unfinished user (through the sparse index), `concurrency` at a time.

        At most 2 x `concurrency` checks are queued at once, so a large index is never turned into
        thousands of pending futures. One user's failure is counted and the run goes on. Users updated
        after the run started (a notification arrived meanwhile) are left to the next run.
        `should_stop` (e.g. "less than 10 s of Lambda time left") ends the run early and cleanly.
        """
        workers = max(1, concurrency)
        counts = {"checked": 0, "changed": 0, "failed": 0, "skipped": 0}
        running: set[Future[bool]] = set()

        def collect(done: Iterable[Future[bool]]) -> None:
            for future in done:
                counts["checked"] += 1
                try:
                    counts["changed"] += future.result()
                except Exception:
                    counts["failed"] += 1

        seen: set[str] = set()  # a user updated during the run moves to the end of the index: check it once
        started = self._clock()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile") as pool:
            try:
                for record in self.store.unfinished(page_size, updated_until=started):
                    if should_stop is not None and should_stop():
                        break
                    if record.third_party_user_id in seen:
                        continue
                    seen.add(record.third_party_user_id)
                    if not record.id_card or not record.htouhui_user_id:
                        counts["skipped"] += 1
                        continue
                    if len(running) >= 2 * workers:
                        done, running = wait(running, return_when=FIRST_COMPLETED)
                        collect(done)
                    running.add(pool.submit(self._reconcile_one, record))
            finally:
                done, running = wait(running)
                collect(done)
        return ReconcileReport(**counts)

    def _reconcile_one(self, record: UserRecord) -> bool:
        try:
            return self._check(record) is ApplyOutcome.APPLIED
        except Exception as exc:
            # Only what happened, never a value: Htouhui's message may name a field's content.
            logger.warning(
                "reconciliation of a user failed",
                extra={
                    "third_party_user_id": record.third_party_user_id,
                    "error": type(exc).__name__,
                    "htouhui_code": getattr(exc, "code", None),
                },
            )
            raise

    # --- helpers ------------------------------------------------------------------------------------

    def _registered(self, third_party_user_id: str) -> UserRecord:
        record = self.store.get(third_party_user_id)
        if record is None:
            raise UserNotFound(third_party_user_id)
        if not record.registered:
            raise RegistrationRequired()
        return record


def _is_own_return_with_query(return_url: str, own_return_url: str, own_host: str | None) -> bool:
    target, own = urlsplit(return_url), urlsplit(own_return_url)
    hosts = {(own.hostname or "").lower(), (own_host or "").lower()} - {""}
    is_own = (target.hostname or "").lower() in hosts and target.path == own.path
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
