"""The open-account page: hostile values, parsed back with html.parser into exactly the signed fields."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import pytest

from htouhui import protocol
from htouhui.client import ClientOptions
from htouhui.models import OpenAccountForm
from htouhui.page import OpenAccountPage, build_open_account_page

PARTNER = "P2026000001"
ACTION = ClientOptions(PARTNER, "https://new-uat.test.htouhui.com").open_account_url
# No '&' or '=': a value we sign holds no separator of the canonical string (issue 19; refused below).
HOSTILE_NAMES = [
    '"><script>alert(1)</script>',
    'O\'Brien "the" <b>bold</b> co',
    "张三 ;amp; 李四 <",
    "阿卜杜勒·买买提😀",
    "</form><form action https://evil.example>",
    "#x3C;script#x3E;",
]
HOSTILE_RETURN_URL = 'https://www.example.com/done?a"2"\'3\'<x>%3Cscript%3E#"><script>alert(2)</script>'


class PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, str | None]] = []
        self.inputs: list[dict[str, str | None]] = []
        self.buttons: list[dict[str, str | None]] = []
        self.scripts: list[str] = []
        self.urls: list[str] = []
        self._in_script = False
        self._tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self._tags.append(tag)
        if tag == "form":
            self.forms.append(attributes)
        elif tag == "input":
            self.inputs.append(attributes)
        elif tag == "button":
            self.buttons.append(attributes)
        elif tag == "script":
            self._in_script = True
            self.scripts.append("")
        for name in ("href", "src", "action", "formaction"):
            if attributes.get(name):
                self.urls.append(attributes[name] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def build(merchant_key: protocol.PrivateKey, **overrides: str) -> tuple[OpenAccountPage, OpenAccountForm]:
    values = {
        "htouhui_user_id": "10000000001",
        "id_card": "11010519491231002x",
        "type": "0",
        "real_name": "张三",
        "third_party_user_id": "u-10001",
        "notify_url": "https://api.example.com/htouhui/notify",
        "return_url": "https://www.example.com/done",
        **overrides,
    }
    form = OpenAccountForm.model_validate(values)
    page = build_open_account_page(form, partner_id=PARTNER, action=ACTION, merchant_key=merchant_key)
    return page, form


def parse(page: OpenAccountPage) -> PageParser:
    parser = PageParser()
    parser.feed(page.html)
    parser.close()
    return parser


@pytest.mark.parametrize("real_name", HOSTILE_NAMES)
def test_hostile_values_come_back_as_exactly_the_signed_fields(
    real_name: str, merchant_private_key: protocol.PrivateKey, merchant_public_key: protocol.PublicKey
) -> None:
    page, form = build(merchant_private_key, real_name=real_name, return_url=HOSTILE_RETURN_URL)
    parsed = parse(page)

    (form_tag,) = parsed.forms
    assert form_tag["method"] == "post" and page.method == "POST"
    assert form_tag["action"] == ACTION == page.action
    assert form_tag.get("accept-charset", "").upper() == "UTF-8"

    hidden = [i for i in parsed.inputs if i.get("type") == "hidden"]
    assert len(hidden) == len(parsed.inputs), "only hidden inputs, nothing the user could edit"
    names = [i["name"] for i in hidden]
    assert len(names) == len(set(names)), "no field twice"
    submitted = {str(i["name"]): str(i["value"]) for i in hidden}
    assert submitted == page.fields
    assert submitted["real_name"] == real_name
    assert submitted["return_url"] == HOSTILE_RETURN_URL
    assert submitted["id_card"] == "11010519491231002X"
    assert {k: submitted[k] for k in form.fields()} == form.fields()
    assert protocol.verify(submitted, merchant_public_key)


@pytest.mark.parametrize("real_name", HOSTILE_NAMES)
def test_only_the_one_submit_script_and_its_hash_is_in_the_csp(
    real_name: str, merchant_private_key: protocol.PrivateKey
) -> None:
    page, _ = build(merchant_private_key, real_name=real_name, return_url=HOSTILE_RETURN_URL)
    parsed = parse(page)
    (script,) = parsed.scripts
    assert "alert" not in script and "submit()" in script
    assert page.html.lower().count("<script") == 1
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    directives = dict(part.strip().split(" ", 1) for part in page.content_security_policy.split(";"))
    assert directives["script-src"] == f"'sha256-{digest}'"
    assert directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'"
    assert "https://new-uat.test.htouhui.com" in directives["form-action"].split()


def test_a_visible_submit_button_for_browsers_without_javascript(merchant_private_key: protocol.PrivateKey) -> None:
    page, _ = build(merchant_private_key)
    parsed = parse(page)
    submits = [b for b in parsed.buttons if b.get("type") == "submit"]
    assert submits
    for button in submits:
        assert "hidden" not in button and "display:none" not in (button.get("style") or "").replace(" ", "")


def test_no_personal_value_in_any_url(merchant_private_key: protocol.PrivateKey) -> None:
    page, _ = build(merchant_private_key, real_name="张三丰")
    parsed = parse(page)
    personal = ["11010519491231002X", "11010519491231002x", "张三丰", "10000000001"]
    for url in [page.action, *parsed.urls]:
        decoded = unquote(url)
        for value in personal:
            assert value not in decoded, url
    assert urlsplit(page.action).query == ""
    assert 'name="referrer" content="no-referrer"' in page.html


def test_the_common_fields_are_present_and_fresh(merchant_private_key: protocol.PrivateKey) -> None:
    first, _ = build(merchant_private_key)
    second, _ = build(merchant_private_key)
    for page in (first, second):
        assert page.fields["partner_id"] == PARTNER
        assert page.fields["version"] == "1.0" and page.fields["sign_type"] == "RSA2"
        assert re.fullmatch(r"OA[0-9A-Za-z_-]{1,30}", page.fields["request_no"])
        protocol.parse_china_timestamp(page.fields["timestamp"])
    assert first.fields["request_no"] != second.fields["request_no"]


def test_type_2_without_real_name_sends_no_empty_field(merchant_private_key: protocol.PrivateKey) -> None:
    form = OpenAccountForm.model_validate(
        {
            "htouhui_user_id": "10000000001",
            "id_card": "11010519491231002X",
            "type": "2",
            "third_party_user_id": "u-10001",
            "notify_url": "https://api.example.com/htouhui/notify",
            "return_url": "https://www.example.com/done",
        }
    )
    page = build_open_account_page(form, partner_id=PARTNER, action=ACTION, merchant_key=merchant_private_key)
    assert "real_name" not in page.fields
    assert 'name="real_name"' not in page.html


def test_request_no_and_time_can_be_pinned(
    merchant_private_key: protocol.PrivateKey, merchant_public_key: protocol.PublicKey
) -> None:
    page, _ = build(merchant_private_key)
    form = OpenAccountForm.model_validate({k: v for k, v in page.fields.items() if k in OpenAccountForm.model_fields})
    pinned = build_open_account_page(
        form,
        partner_id=PARTNER,
        action=ACTION,
        merchant_key=merchant_private_key,
        request_no="OA20261128000002",
        now=datetime(2026, 11, 28, 7, 35, tzinfo=UTC),
    )
    assert pinned.fields["request_no"] == "OA20261128000002"
    assert pinned.fields["timestamp"] == "20261128153500"  # China Standard Time, whatever the machine's zone
    assert protocol.verify(pinned.fields, merchant_public_key)


def test_the_local_sandbox_action_is_allowed_by_the_csp(merchant_private_key: protocol.PrivateKey) -> None:
    form = build(merchant_private_key)[1]
    page = build_open_account_page(
        form,
        partner_id=PARTNER,
        action="http://127.0.0.1:3100/openapi/user/openAccount",
        merchant_key=merchant_private_key,
    )
    assert "form-action http://127.0.0.1:3100 " in page.content_security_policy


@pytest.mark.parametrize("real_name", ["张三 &amp; 李四", "A=B", "A&request_no=Q0&return_url=https://x.io&sz"])
def test_a_value_holding_a_canonical_separator_is_never_signed(
    merchant_private_key: protocol.PrivateKey, real_name: str
) -> None:
    with pytest.raises(ValueError, match="real_name holds a separator"):
        build(merchant_private_key, real_name=real_name)
