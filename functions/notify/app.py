"""Htouhui's two routes: POST /htouhui/notify (the status notification) and GET /htouhui/return (the browser).

No authorizer: the RSA signature is the authentication. A notification is verified and recorded, then
acknowledged with `200 SUCCESS`; a bad signature, another partner_id or a malformed body is `400 FAIL`
with nothing changed; a storage failure is `500`, so Htouhui delivers again. A field given twice is a
malformed body (which of the two was signed is not for us to guess).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from html import escape
from typing import Any, Final
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from htouhui import runtime
from htouhui.api import HTML, NOTIFY_PATH, RETURN_PATH, create_resolver
from htouhui.errors import NotificationRejected, StoreUnavailable
from htouhui.observability import (
    NOTIFICATIONS_ACCEPTED,
    NOTIFICATIONS_DUPLICATE,
    NOTIFICATIONS_REJECTED,
    count,
    logger,
    metrics,
)
from htouhui.source_ip import notify_source_allowed

TEXT: Final = content_types.TEXT_PLAIN + "; charset=utf-8"
MAX_BODY_BYTES: Final = 16 * 1024

app = create_resolver(enable_validation=False)


class MalformedMessage(ValueError):
    """The body or query string is not a well-formed form of unique fields."""


def parse_form(text: str) -> dict[str, str]:
    """Form fields of an x-www-form-urlencoded text; a malformed pair or a repeated field is refused."""
    try:
        parsed = parse_qs(text, keep_blank_values=True, strict_parsing=True, encoding="utf-8", errors="strict")
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage("not a well-formed form") from exc
    repeated = sorted(name for name, values in parsed.items() if len(values) != 1)
    if repeated:
        raise MalformedMessage(f"fields given more than once: {', '.join(repeated)}")
    return {name: values[0] for name, values in parsed.items()}


def event_body_text(event: Mapping[str, Any]) -> str:
    """The request body as UTF-8 text, base64-decoded when API Gateway encoded it (payload 2.0)."""
    body = event.get("body") or ""
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else str(body).encode("utf-8")
    except (binascii.Error, ValueError) as exc:
        raise MalformedMessage("body is not valid base64") from exc
    if len(raw) > MAX_BODY_BYTES:
        raise MalformedMessage("body too large")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessage("body is not UTF-8") from exc


def _text(status: int, body: str) -> Response[str]:
    return Response(status_code=status, content_type=TEXT, body=body, headers={"Cache-Control": "no-store"})


@app.post(NOTIFY_PATH, include_in_schema=False)
def notify() -> Response[str]:
    if not notify_source_allowed(app.current_event.raw_event):  # Htouhui's addresses only, when configured
        logger.warning("notification refused", extra={"reason": "source address not allowed"})
        return _text(403, "FAIL")
    try:
        fields = parse_form(event_body_text(app.current_event.raw_event))
    except MalformedMessage as exc:
        count(NOTIFICATIONS_REJECTED)
        logger.warning("notification rejected", extra={"reason": "malformed", "detail": str(exc)})
        return _text(400, "FAIL")
    try:
        outcome = runtime.onboarding().accept_notification(fields)
    except NotificationRejected as exc:
        count(NOTIFICATIONS_REJECTED)
        logger.warning("notification rejected", extra={"reason": exc.reason, "notify_no": fields.get("notify_no")})
        return _text(400, "FAIL")
    except StoreUnavailable:
        logger.exception("notification not recorded: storage unavailable", extra={"notify_no": fields.get("notify_no")})
        return _text(500, "ERROR")
    name = getattr(outcome, "name", str(outcome))
    count(NOTIFICATIONS_DUPLICATE if name == "DUPLICATE" else NOTIFICATIONS_ACCEPTED)
    logger.info(
        "notification accepted",
        extra={"outcome": name, "notify_no": fields.get("notify_no"), "status": fields.get("status")},
    )
    return _text(200, "SUCCESS")


@app.get(RETURN_PATH, include_in_schema=False)
def browser_return() -> Response[str]:
    try:
        fields = parse_form(app.current_event.raw_event.get("rawQueryString") or "")
    except MalformedMessage:
        logger.warning("browser return rejected", extra={"reason": "malformed"})
        return _page(400, "无法确认 · Could not confirm", "链接无效。· This link is not valid.")
    try:
        answer = runtime.onboarding().accept_return(fields)
    except NotificationRejected as exc:
        logger.warning("browser return rejected", extra={"reason": exc.reason})
        return _page(400, "无法确认 · Could not confirm", "签名校验失败。· This link could not be verified.")
    except StoreUnavailable:
        # The return only informs the page (the notification is authoritative): the verified status is shown.
        logger.exception("browser return not recorded: storage unavailable")
        answer = None
    third_party_user_id = answer.third_party_user_id if answer else fields.get("third_party_user_id", "")
    status = answer.status if answer else fields.get("status", "")
    logger.info("browser return", extra={"status": status})
    frontend = runtime.settings().frontend_return_url
    if frontend:
        location = with_query(frontend, {"third_party_user_id": third_party_user_id, "status": status})
        return Response(status_code=302, headers={"Location": location, "Cache-Control": "no-store"}, body="")
    return _page(200, "开户进度 · Onboarding status", _status_text(status))


STATUS_TEXT: Final = {
    "0": "开户未完成。· The account was not opened.",
    "1": "已开户。· Account opened.",
    "2": "已开户，交易密码已设置。· Account opened and trading password set.",
    "3": "已开户，交易密码已设置，已授权。· Account opened, trading password set, fees authorised.",
}


def _status_text(status: str) -> str:
    return f"status {status}: " + STATUS_TEXT.get(status, "")


def with_query(url: str, extra: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(extra)) if part)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def _page(status: int, title: str, text: str) -> Response[str]:
    html = f"""<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer"><title>{escape(title)}</title></head>
<body><h1>{escape(title)}</h1><p id="status">{escape(text)}</p></body>
</html>
"""
    return Response(
        status_code=status,
        content_type=HTML,
        body=html,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; base-uri 'none'; frame-ancestors 'none'",
            "Referrer-Policy": "no-referrer",
        },
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
