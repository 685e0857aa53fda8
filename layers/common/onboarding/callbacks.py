"""Htouhui's two callbacks at the HTTP edge: the notification's body and the browser return's page.

The notify function parses the event with these, calls `Onboarding`, and answers with what they build.
Both messages are read with the one form parser of the protocol (`protocol.parse_form`, §9).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any, Final
from urllib.parse import urlencode, urlsplit, urlunsplit

from htouhui.errors import code_meaning
from htouhui.page import HTML, html_document
from htouhui.protocol import MalformedMessage, parse_form
from onboarding.inbound import ReturnOutcome

MAX_BODY_BYTES: Final = 16 * 1024
PAGE_SECURITY_HEADERS: Final = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
}
STATUS_TEXT: Final = {
    0: "开户未完成。· The account was not opened.",
    1: "已开户。· Account opened.",
    2: "已开户，交易密码已设置。· Account opened and trading password set.",
    3: "已开户，交易密码已设置，已授权。· Account opened, trading password set, fees authorised.",
}


def notification_fields(event: Mapping[str, Any]) -> dict[str, str]:
    """The notification's form fields from an API Gateway (payload 2.0) event; MalformedMessage if unreadable."""
    return parse_form(_body_text(event))


def return_fields(event: Mapping[str, Any]) -> dict[str, str]:
    """The browser return's query fields, exactly as the browser sent them (not API Gateway's re-parsed copy)."""
    return parse_form(str(event.get("rawQueryString") or ""))


def _body_text(event: Mapping[str, Any]) -> str:
    body = event.get("body") or ""
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else str(body).encode("utf-8")
    except (binascii.Error, ValueError):
        raise MalformedMessage("bad_base64") from None
    if len(raw) > MAX_BODY_BYTES:
        raise MalformedMessage("too_large")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedMessage("bad_utf8") from None


@dataclass(frozen=True)
class Page:
    """An HTTP answer for the user's browser: an HTML page, or a redirect to the merchant's front end."""

    status_code: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


def return_page(outcome: ReturnOutcome, frontend_return_url: str | None) -> Page:
    """Where the browser goes after Htouhui's pages: the merchant's front end if configured, else our page.

    It shows the return's own signed level (never the stored one) and, for a return that did not succeed,
    Htouhui's result code with §5's meaning of it (never Htouhui's free-text message).
    """
    if frontend_return_url:
        query = {"third_party_user_id": outcome.third_party_user_id, "status": outcome.status}
        if not outcome.succeeded:
            query["htouhui_code"] = outcome.code
        present = {name: str(value) for name, value in query.items() if value is not None}
        return Page(302, "", {"Location": with_query(frontend_return_url, present), "Cache-Control": "no-store"})
    lines = []
    if not outcome.succeeded:
        chinese, english = code_meaning(outcome.code)
        lines.append(f"海投汇结果码 {outcome.code}：{chinese}。· Htouhui answered {outcome.code}: {english}.")
    if outcome.status is not None:
        lines.append(f"status {outcome.status}: {STATUS_TEXT.get(outcome.status, '')}")
    title = "开户进度 · Onboarding status" if outcome.succeeded else "未完成 · Not completed"
    return html_page(200, title, lines)


def refused_return_page(*, malformed: bool) -> Page:
    text = "链接无效。· This link is not valid." if malformed else "签名校验失败。· This link could not be verified."
    return html_page(400, "无法确认 · Could not confirm", [text])


def html_page(status_code: int, title: str, lines: list[str]) -> Page:
    paragraphs = "\n".join(
        f'<p id="{"status" if index == len(lines) - 1 else f"line-{index}"}">{escape(line)}</p>'
        for index, line in enumerate(lines)
    )
    html = html_document(title, f"<h1>{escape(title)}</h1>\n{paragraphs}")
    return Page(status_code, html, {"Content-Type": HTML, **PAGE_SECURITY_HEADERS})


def with_query(url: str, extra: Mapping[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(part for part in (parts.query, urlencode(extra)) if part)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
