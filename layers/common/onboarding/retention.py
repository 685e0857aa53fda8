"""How long a notification's history record is kept: NOTIFICATION_HISTORY_DAYS (template NotificationHistoryDays).

DEFAULT_DAYS (three years) unless set: each record gets a DynamoDB TTL attribute `expires_at` that many days after
it was received (docs/privacy.md weighs the record-keeping floor against the minimum necessary). Never fewer than
MINIMUM_DAYS: Htouhui's deliveries of one notification span about 25 hours, and the record is what makes a late
redelivery a duplicate rather than a new event. 0 keeps the records for good, by the merchant's explicit choice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from onboarding.config import SETTINGS, setting

ENVIRONMENT_VARIABLE: Final = SETTINGS["notification_history_days"].variable
MINIMUM_DAYS: Final = 3
DEFAULT_DAYS: Final = 1095
TTL_ATTRIBUTE: Final = "expires_at"


class RetentionError(ValueError):
    """The configured retention is not 0 or a whole number of days from MINIMUM_DAYS."""


def parse_days(text: str) -> int:
    text = text.strip()
    if not text:
        return DEFAULT_DAYS
    if not text.isdigit():
        raise RetentionError(f"{ENVIRONMENT_VARIABLE} must be 0 or a whole number of days, got {text!r}")
    days = int(text)
    if 0 < days < MINIMUM_DAYS:
        raise RetentionError(
            f"{ENVIRONMENT_VARIABLE} must be 0 (keep) or at least {MINIMUM_DAYS} days "
            "(deliveries span about 25 h and deduplication needs the record)"
        )
    return days


def history_days(environ: Mapping[str, str] | None = None) -> int:
    return parse_days(setting("notification_history_days", environ))
