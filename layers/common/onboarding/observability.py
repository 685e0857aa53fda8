"""Logs and metrics, in one place: the Powertools Logger that masks personal data, and the EMF metrics.

Every function logs through `logger` (a Powertools Logger whose formatter masks personal data) and
counts through `metrics` (Powertools EMF, namespace "Htouhui"). Masking works twice over:
  * by key: a field called mobile, id_card, real_name, password or bank_card_number (at any depth of
    a structured log line) is replaced by its masked form;
  * by pattern: any text (messages, exception traces, values of other keys) is searched for mobile
    numbers, resident identity numbers, bank card numbers and `key=value` / `"key": "value"` pairs of
    the personal keys.
The same masking filter is put on the `htouhui` library loggers and on the root logger's handlers, so
that a log line written by any module of the layer, or by a library, goes through it too.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Mapping
from typing import Any, Final

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from htouhui.options import CallRecord
from htouhui.protocol import REQUEST_FIELD, Profile, ambiguous_fields
from onboarding.config import setting
from onboarding.view import mask_bank_card, mask_id_card  # one masking rule for logs and the user view

# Read at import (the logger and the metrics are module objects), each on its own: the settings need not be valid yet.
SERVICE: Final[str] = setting("service_name")
NAMESPACE: Final[str] = setting("metrics_namespace")

# --- masking ----------------------------------------------------------------------------------------

PERSONAL_KEYS: Final = frozenset(
    {"mobile", "id_card", "real_name", "password", "bank_card_number", "bank_card", "card_no", "phone", "id_no"}
)
REDACTED: Final = "***"
# Identifiers that look like numbers but are not personal data: logged as they are when logged by name.
SAFE_KEYS: Final = frozenset(
    {"htouhui_user_id", REQUEST_FIELD, "notify_no", "timestamp", "status", "code", "htouhui_code", "outcome"}
)
_KEY_ALTERNATION: Final = "|".join(sorted(PERSONAL_KEYS, key=len, reverse=True))
# `mobile=138...`, `"mobile": "138..."`, `'mobile': '138...'`, `mobile: 138...` (canonical strings, reprs, JSON)
_KEY_VALUE: Final = re.compile(
    rf"""(?P<key>\b(?:{_KEY_ALTERNATION})\b)(?P<sep>["']?\s*[:=]\s*)"""
    rf"""(?:(?P<quote>["'])(?P<quoted>[^"'\n]*)|(?P<value>[^&"',;\s}}\]\)]+))"""
)
_ID_CARD: Final = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_MOBILE: Final = re.compile(r"(?<![0-9])1[3-9][0-9]{9}(?![0-9])")
# Bank cards are 15 to 19 digits in practice (up to 30 allowed): 14-digit runs are Htouhui timestamps.
_BANK_CARD: Final = re.compile(r"(?<![0-9])[0-9]{15,30}(?![0-9])")
# The same number grouped by spaces or hyphens, as banks print it (§9: taken as sent).
_GROUPED_CARD: Final = re.compile(r"(?<![0-9])[0-9]{4,6}(?:[ -][0-9]{3,6}){2,5}(?![0-9])")


def mask_field(key: str, value: Any) -> Any:
    """The masked form of one named value: personal keys by their rule, everything else by pattern."""
    name = key.lower()
    if name in PERSONAL_KEYS:
        if value is None or value == "":
            return value
        text = str(value)
        if name in ("id_card", "id_no"):
            return mask_id_card(text) or REDACTED
        if name in ("bank_card_number", "bank_card", "card_no"):
            return mask_bank_card(text) or REDACTED
        return REDACTED
    if name in SAFE_KEYS and isinstance(value, str) and len(value) <= 32 and value.isalnum():
        return value
    return mask(value)


def mask_text(text: str) -> str:
    """Personal data found by pattern in free text, replaced (identity numbers before mobiles and cards)."""
    text = _KEY_VALUE.sub(_masked_pair, text)
    text = _ID_CARD.sub(lambda m: mask_id_card(m.group()) or REDACTED, text)
    text = _BANK_CARD.sub(lambda m: mask_bank_card(m.group()) or REDACTED, text)
    text = _GROUPED_CARD.sub(_masked_grouped_card, text)
    return _MOBILE.sub(lambda m: m.group()[:3] + "****" + m.group()[-4:], text)


def _masked_grouped_card(match: re.Match[str]) -> str:
    digits = sum(character.isdigit() for character in match.group())
    return (mask_bank_card(match.group()) or REDACTED) if 15 <= digits <= 30 else match.group()


def _masked_pair(match: re.Match[str]) -> str:
    quote = match["quote"] or ""
    value = match["quoted"] if match["quote"] else match["value"]
    # An empty or already masked value (stars inside) stays as it is.
    masked = value if not value or "*" in value else str(mask_field(match["key"], value))
    return f"{match['key']}{match['sep']}{quote}{masked}"


def mask(value: Any) -> Any:
    """A copy of a log value with personal data masked at any depth (dicts by key, strings by pattern)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {key: mask_field(str(key), item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [mask(item) for item in value]
    return value


class MaskingFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON formatter, with every key and value of the line masked before it is written."""

    def __init__(self, **options: Any) -> None:
        super().__init__(json_default=_masked_default, **options)

    def serialize(self, log: dict[str, Any]) -> str:  # type: ignore[override]
        return super().serialize({key: bounded(key, mask_field(key, value)) for key, value in log.items()})


# A log value is a fact, not a copy of what a caller sent: at most this many characters (issue 19: a 16,000
# character notify_no made a 16.5 KB line per refused request). The code's own text and tracebacks keep theirs.
MAX_LOG_VALUE: Final = 128
UNBOUNDED_KEYS: Final = frozenset({"message", "exception", "stack_trace", "exception_name", "timestamp", "location"})
# JSON leaves these raw with ensure_ascii off, and some log readers break lines at them.
_LINE_BREAKERS: Final = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"})


def bounded(key: str, value: Any) -> Any:
    """A log value with U+2028, U+2029 and U+0085 escaped and, but for the code's own text, truncated."""
    if isinstance(value, str):
        value = value.translate(_LINE_BREAKERS)
        if key not in UNBOUNDED_KEYS and len(value) > MAX_LOG_VALUE:
            return f"{value[:MAX_LOG_VALUE]}...(+{len(value) - MAX_LOG_VALUE})"
        return value
    if isinstance(value, list):
        return [bounded(key, item) for item in value]
    if isinstance(value, dict):
        return {name: bounded(str(name), item) for name, item in value.items()}
    return value


def _masked_default(value: Any) -> str:
    """Objects JSON cannot write (exceptions, models, dates) become their masked text."""
    return mask_text(str(value))


_STANDARD_RECORD_ATTRIBUTES: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


class MaskingFilter(logging.Filter):
    """Masks a record in place: its message (args merged in), its extra fields and its exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, Mapping):
            record.msg = mask(record.msg)
        else:
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                message = str(record.msg)
            record.msg = mask_text(message)
            record.args = None
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_RECORD_ATTRIBUTES:
                setattr(record, key, mask_field(key, value))
        if record.exc_info and not record.exc_text:
            record.exc_text = mask_text(logging.Formatter().formatException(record.exc_info))
        return True


MASKING_FILTER: Final = MaskingFilter()

# A request that counted nothing is normal here (a query, a refused request): not worth a warning line.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

logger = Logger(service=SERVICE, logger_formatter=MaskingFormatter(utc=True))
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def _install_masking() -> None:
    """The layer's own loggers write through the Powertools handler; every handler masks."""
    powertools_handler: logging.Handler = logger.registered_handler
    if MASKING_FILTER not in powertools_handler.filters:
        powertools_handler.addFilter(MASKING_FILTER)
    library = logging.getLogger("htouhui")
    if powertools_handler not in library.handlers:
        library.addHandler(powertools_handler)
    library.setLevel(logger.log_level)
    library.propagate = False
    mask_root_handlers()


def mask_root_handlers() -> None:
    """Put the masking filter on every handler of the root logger (the Lambda runtime's, a test's)."""
    for handler in logging.getLogger().handlers:
        if MASKING_FILTER not in handler.filters:
            handler.addFilter(MASKING_FILTER)


_install_masking()

# --- metrics ----------------------------------------------------------------------------------------

REGISTRATIONS: Final = "Registrations"
NOTIFICATIONS_ACCEPTED: Final = "NotificationsAccepted"
NOTIFICATIONS_REJECTED: Final = "NotificationsRejected"
NOTIFICATIONS_DUPLICATE: Final = "NotificationsDuplicate"
NOTIFICATIONS_UNHANDLED: Final = "NotificationsUnhandled"  # verified, of another notify_type: kept, not applied
RETURNS_REJECTED: Final = "BrowserReturnsRejected"
USERS_RECONCILED: Final = "UsersReconciled"
RECONCILE_FAILURES: Final = "ReconcileFailures"  # a step skipped after its last failed attempt, or a rejection
RECONCILE_RETRIES: Final = "ReconcileRetries"  # a failed attempt that goes back to the queue with backoff
RECONCILE_DISPATCHED: Final = "ReconcileDispatched"
OLDEST_DUE_CHECK_AGE: Final = "OldestDueCheckAgeSeconds"  # the dispatcher, every run: the oldest due check's wait
STATUS_EVENTS_PUBLISHED: Final = "StatusEventsPublished"
REFRESHES_REFUSED: Final = "RefreshesRefused"  # GET ?refresh=true over REFRESH_RATE_BUDGET (onboarding.refresh)
HTOUHUI_LATENCY: Final = "HtouhuiLatency"
HTOUHUI_RESULT: Final = "HtouhuiResult"
# The onboarding funnel, counted from the users table's stream (stored changes, not requests: status_events)
FUNNEL_REGISTERED: Final = "FunnelRegistered"  # registration became DONE
FUNNEL_FORMS: Final = "FunnelFormsHandedOut"  # a user's first open-account form
FUNNEL_STATUS: Final = "FunnelStatusReached"  # dimension `status`: 1, 2 or 3 (every level a change crosses)
FUNNEL_FORM_TO_COMPLETED: Final = "FunnelFormToCompletedSeconds"  # first form to status 3, one value per user
# A verified value holding a separator of the canonical string (§9 accepts it): counted, its field logged.
SEPARATOR_IN_VERIFIED_VALUE: Final = "VerifiedValuesWithSeparator"


def count(name: str, value: float = 1) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def count_by(name: str, dimension: str, value: str, amount: float = 1) -> None:
    """One count with one dimension besides `service` (its own EMF line, as the dimension sets differ)."""
    with single_metric(
        name=name, unit=MetricUnit.Count, value=amount, namespace=NAMESPACE, default_dimensions={"service": SERVICE}
    ) as metric:
        metric.add_dimension(name=dimension, value=value)


def seconds(name: str, value: float) -> None:
    metrics.add_metric(name=name, unit=MetricUnit.Seconds, value=value)


def count_rejection(name: str, reason: str) -> None:
    """A refusal, counted twice: without a dimension (the alarm's total) and with `reason` (errors.RejectionReason)."""
    count(name)
    with single_metric(
        name=name, unit=MetricUnit.Count, value=1, namespace=NAMESPACE, default_dimensions={"service": SERVICE}
    ) as metric:
        metric.add_dimension(name="reason", value=reason)


def note_separators(what: str, fields: Mapping[str, str], profile: Profile) -> None:
    """Count and log (field names only, never values) the verified fields that hold a canonical separator."""
    names = ambiguous_fields(fields, profile)
    if names:
        count(SEPARATOR_IN_VERIFIED_VALUE, len(names))
        logger.warning(f"{what}: verified value holds a canonical separator", extra={"fields": names})


def record_attempt(record: CallRecord) -> None:
    """The client's `on_attempt` hook: latency of every attempt, and its result code as a dimension."""
    milliseconds = round(record.seconds * 1000, 3)
    metrics.add_metric(name=HTOUHUI_LATENCY, unit=MetricUnit.Milliseconds, value=milliseconds)
    with single_metric(
        name=HTOUHUI_RESULT,
        unit=MetricUnit.Count,
        value=1,
        namespace=NAMESPACE,
        default_dimensions={"service": SERVICE},
    ) as metric:
        metric.add_dimension(name="interface", value=record.interface)
        metric.add_dimension(name="result", value=record.outcome)
    logger.info(
        "htouhui call",
        extra={
            "interface": record.interface,
            "attempt": record.attempt,
            "milliseconds": milliseconds,
            "outcome": record.outcome,
        },
    )
