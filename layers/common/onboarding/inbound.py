"""What Htouhui sends us: the status notification and the browser return, verified, read and applied.

    Inbound(core)
    .accept_notification(fields) -> ApplyOutcome   # APPLIED / STALE / DUPLICATE / UNHANDLED
    .reapply_notification(fields) -> ApplyOutcome  # a stored notification, verified and applied again
    .accept_return(fields) -> ReturnOutcome        # whose, the level it signed, Htouhui's code

Decisions worth knowing:
- What Htouhui sends is verified exactly as received, then read tolerantly (PROTOCOL.md §9, `models._Wire`):
  strict only where a value decides state or security; a verified notification of another notify_type is
  acknowledged and kept in the history as unhandled, changing no status.
- A notification (or browser return) for a third_party_user_id we have not registered is rejected
  ("unknown user": FAIL, nothing stored), so Htouhui delivers it again; it cannot belong to a user
  of ours, since the open-account form is only handed out to registered users.
- News below status 3 restarts the reconciliation ladder from that moment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, TypeVar

from pydantic import ValidationError

from htouhui import protocol
from htouhui.models import BrowserReturn, Notification, OpenAccountNotification, field_rules
from onboarding.core import Core
from onboarding.errors import (
    HtouhuiUserIdMismatch,
    NotificationRejected,
    RejectionReason,
    StoreUnavailable,
    UserNotFound,
)
from onboarding.models import COMPLETED_STATUS
from onboarding.store import ApplyOutcome, StatusUpdate

logger = logging.getLogger(__name__)

OPEN_ACCOUNT_NOTIFY_TYPE: Final = "OPEN_ACCOUNT"


@dataclass(frozen=True)
class ReturnOutcome:
    """What the browser return's page may show: whose, the level this return signed, Htouhui's result code."""

    third_party_user_id: str | None
    status: int | None
    code: str

    @property
    def succeeded(self) -> bool:
        return self.code == protocol.SUCCESS


class Inbound:
    def __init__(self, core: Core) -> None:
        self.core = core

    def accept_notification(self, fields: Mapping[str, str]) -> ApplyOutcome:
        """Verify as received, then read tolerantly (§9) and record: APPLIED, STALE, DUPLICATE or UNHANDLED."""
        message = self._verify(fields)
        notification = _read(Notification, message)
        if notification.notify_type != OPEN_ACCOUNT_NOTIFY_TYPE:
            # Refusing would only bring eleven redeliveries: keep it for an operator, change nothing.
            return self.core.store.record_unhandled(
                notification.notify_no, fields, self.core.clock(), notify_type=notification.notify_type
            )
        opened = _read(OpenAccountNotification, message)
        outcome = self._apply(self._notified(opened, notify_no=opened.notify_no, raw=dict(fields)))
        if int(opened.status) < COMPLETED_STATUS:
            # News below 3 restarts the ladder. A failure here answers 500: Htouhui delivers again, the
            # redelivery is a DUPLICATE and restarts the ladder again.
            self.core.restart_ladder(opened.third_party_user_id)
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
            received_at=self.core.clock(),
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
                    received_at=self.core.clock(),
                )
            )
        except StoreUnavailable:
            logger.warning("browser return not recorded: storage unavailable", exc_info=True)
            return ReturnOutcome(user, signed_level, answer.code)
        if signed_level < COMPLETED_STATUS:
            self.core.restart_quietly(user)
        return ReturnOutcome(user, signed_level, answer.code)

    def _verify(self, fields: Mapping[str, str]) -> dict[str, str]:
        """The message verified exactly as received, then named as the layer reads it (`Profile.internal`)."""
        policy = self.core.policy
        profile = policy.profile
        failure = protocol.verification_failure(fields, self.core.key_source.htouhui_public_keys(), profile)
        if failure is not None:
            field = protocol.SIGN_TYPE_FIELD if protocol.SIGN_TYPE_FIELD in failure else protocol.SIGN_FIELD
            raise NotificationRejected(RejectionReason.BAD_SIGNATURE, field=field, rule=failure.replace(" ", "_"))
        if fields.get(profile.partner_field) != policy.partner_id:
            raise NotificationRejected(RejectionReason.OTHER_PARTNER, field=profile.partner_field, rule="not_ours")
        return profile.internal(fields)

    def _apply(self, update: StatusUpdate) -> ApplyOutcome:
        try:
            return self.core.store.apply_status(update)
        except UserNotFound:
            raise NotificationRejected(
                RejectionReason.UNKNOWN_USER, field="third_party_user_id", rule="not_registered"
            ) from None
        except HtouhuiUserIdMismatch:
            raise NotificationRejected(
                RejectionReason.USER_MISMATCH, field="htouhui_user_id", rule="not_the_stored_one"
            ) from None


_Message = TypeVar("_Message", Notification, OpenAccountNotification, BrowserReturn)


def _read(model: type[_Message], fields: Mapping[str, str]) -> _Message:
    """A verified message read tolerantly; a field that decides state and breaks its rule refuses it."""
    try:
        return model.read(fields)
    except ValidationError as exc:
        field, rule = field_rules(exc, whole="message")[0]
        raise NotificationRejected(RejectionReason.INVALID_FIELD, field=field, rule=rule) from None
