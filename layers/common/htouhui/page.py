"""The open-account page (开户设置交易密码及授权): a signed form the user's browser POSTs to Htouhui.

The page submits itself on load and still works without JavaScript (a visible button). Personal
data travels only in the POST body, never in a URL, and every value is HTML-escaped.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Final
from urllib.parse import urlsplit

from htouhui import protocol
from htouhui.models import OpenAccountForm

HTML: Final = "text/html; charset=utf-8"  # the content type of every page html_document builds
FORM_ID: Final = "htouhui-open-account"
_SUBMIT_SCRIPT: Final = f'document.getElementById("{FORM_ID}").submit();'
_SCRIPT_HASH: Final = base64.b64encode(hashlib.sha256(_SUBMIT_SCRIPT.encode()).digest()).decode()


@dataclass(frozen=True)
class OpenAccountPage:
    method: str
    action: str
    fields: dict[str, str]
    html: str
    content_security_policy: str


def build_open_account_page(
    form: OpenAccountForm,
    *,
    partner_id: str,
    action: str,
    merchant_key: protocol.PrivateKey,
    profile: protocol.Profile = protocol.DEFAULT,
    request_no: str | None = None,
    now: datetime | None = None,
) -> OpenAccountPage:
    number = request_no or protocol.new_request_no("OA")
    common = protocol.request_common_fields(partner_id, profile=profile, request_no=number, now=now)
    ambiguous = protocol.ambiguous_fields(form.fields(), profile)
    if ambiguous:  # the user's browser could regroup the fields under the same signature
        raise ValueError(f"not signed: {', '.join(ambiguous)} holds a separator of the canonical string")
    fields = protocol.signed({**form.fields(), **common}, merchant_key, profile)
    return OpenAccountPage(
        method="POST",
        action=action,
        fields=fields,
        html=render_auto_submit_page(action, fields),
        content_security_policy=_content_security_policy(action),
    )


def html_document(title: str, body: str, *, head: str = "") -> str:
    """Every HTML page of the bundle and its sandbox: Chinese first, no referrer, `body` as given (escaped by
    the caller), `head` added after the title."""
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="referrer" content="no-referrer">
  <title>{escape(title)}</title>{head}
</head>
<body>
{body}
</body>
</html>
"""


def render_auto_submit_page(action: str, fields: dict[str, str]) -> str:
    inputs = "\n".join(
        f'    <input type="hidden" name="{escape(name)}" value="{escape(value)}">' for name, value in fields.items()
    )
    body = f"""  <form id="{FORM_ID}" method="post" action="{escape(action)}" accept-charset="UTF-8">
{inputs}
    <p>正在前往海投汇开户页面… · Taking you to Htouhui to open your account…</p>
    <button type="submit">继续 · Continue</button>
  </form>
  <script>{_SUBMIT_SCRIPT}</script>"""
    return html_document("正在前往海投汇 · Continuing to Htouhui", body)


def _content_security_policy(action: str) -> str:
    # form-action names Htouhui's origin *and* https: browsers (Chromium) also apply form-action to the
    # redirects that follow the POST, and Htouhui may hand the user on to the depository bank's pages.
    parts = urlsplit(action)
    origin = f"{parts.scheme}://{parts.netloc}"
    return (
        f"default-src 'none'; script-src 'sha256-{_SCRIPT_HASH}'; form-action {origin} https:; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
