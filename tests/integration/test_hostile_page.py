"""The open-account page and the redirects, attacked: HTML in every free field, return_url games, and a
hunt for personal data in every URL, log line, error answer, DynamoDB request and Htouhui request.

The password may travel in exactly one place: the register call to Htouhui.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from helpers import Stack, dump, header, json_body, valid_id_card

from onboarding import runtime

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

MOBILE = "13698765432"
PASSWORD = "Zq9-hostile!"
REAL_NAME = '"><script>alert(1)</script>'  # no '&' or '=': a signed value holds no separator (issue 19)
PLAIN_NAME = "欧阳娜娜"
ID_CARD = valid_id_card("51010819770707707")
EVIL = "<script>alert(1)</script>"


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, str]] = []
        self.inputs: dict[str, str] = {}
        self.scripts: list[str] = []
        self.tags: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.tags.append(tag)
        if tag == "form":
            self.forms.append(values)
        if tag == "input":
            self.inputs[values.get("name", "")] = values.get("value", "")
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_html_in_every_free_field_is_escaped(stack: Stack) -> None:
    assert stack.register("u-page-1", MOBILE)["statusCode"] == 201
    # Our own host, not our /htouhui/return (which takes no query of its own): the query is kept and must be escaped.
    # (no '&' or '=': a signed value holds no separator of the canonical string, issue 19)
    return_url = f'{stack.bridge.url}/welcome?next%22%3E"><img/src:x/onerror:alert(1)>{EVIL}'
    for accept in ("application/json", "text/html"):
        answer = stack.open_account(
            "u-page-1",
            {"id_card": ID_CARD, "real_name": REAL_NAME, "type": "0", "return_url": return_url},
            headers={"accept": accept},
        )
        assert answer["statusCode"] == 200, answer
        if accept == "text/html":
            html = answer["body"]
            fields = None
            csp = header(answer, "Content-Security-Policy") or ""
            assert "default-src 'none'" in csp and "script-src 'sha256-" in csp and "frame-ancestors 'none'" in csp
            assert header(answer, "Referrer-Policy") == "no-referrer"
            assert header(answer, "X-Content-Type-Options") == "nosniff"
        else:
            body = json_body(answer)
            html, fields = body["html"], body["fields"]
            assert fields["real_name"] == REAL_NAME and fields["return_url"] == return_url
        page = _parse(html)
        assert len(page.forms) == 1 and page.forms[0]["action"].endswith("/openapi/user/openAccount")
        assert page.scripts == ['document.getElementById("htouhui-open-account").submit();']
        assert page.tags.count("script") == 1 and "img" not in page.tags
        assert page.inputs["real_name"] == REAL_NAME and page.inputs["return_url"] == return_url
        if fields is not None:
            assert {name: page.inputs[name] for name in fields} == fields  # what the browser posts is what we signed
        assert EVIL not in html and "<img" not in html


def test_return_url_allow_list(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_RETURN_HOSTS", "shop.example.com, m.shop.example.com")
    runtime.reset()
    assert stack.register("u-page-2", "13698765433")["statusCode"] == 201
    body = {"id_card": ID_CARD, "real_name": PLAIN_NAME}
    allowed = [
        "https://shop.example.com/onboarding/done",
        "https://SHOP.example.com/x?y#z",
        "https://m.shop.example.com/done",
        f"{stack.bridge.url}/htouhui/return",  # our own host is always allowed
    ]
    refused = [
        "https://evil.shop.example.com/done",
        "https://shop.example.com.evil.net/done",
        "https://shop.example.com@evil.net/done",
        "https://evil.net/https://shop.example.com/",
        "https://evil.net/?https://shop.example.com",
        "https://shop.example.com/x?y=1",  # a separator of the canonical string (issue 19)
        "https://shop.example.com:8443/done",  # an allow-list entry without a port means the default port
        "http://shop.example.com/done",
        "ftp://shop.example.com/done",
        "https://shop.example.com:evil@evil.net/",
        "https://shop.example.com\\@evil.net/",
        "https:shop.example.com/done",
        "//shop.example.com/done",
        "https://xn--shop-example-com.evil/",
    ]
    for url in allowed:
        answer = stack.open_account("u-page-2", {**body, "return_url": url})
        assert answer["statusCode"] == 200, (url, answer)
        assert json_body(answer)["fields"]["return_url"] == url
    before = dump(stack)
    for url in refused:
        answer = stack.open_account("u-page-2", {**body, "return_url": url})
        assert answer["statusCode"] == 400, (url, answer)
        assert [entry["field"] for entry in json_body(answer)["error"]["fields"]] == ["return_url"], url
    assert dump(stack) == before


def test_notify_url_is_always_ours(stack: Stack) -> None:
    assert stack.register("u-page-3", "13698765434")["statusCode"] == 201
    answer = stack.open_account(
        "u-page-3",
        {"id_card": ID_CARD, "real_name": PLAIN_NAME},
        headers={"x-forwarded-host": "evil.example.net", "forwarded": "host=evil.example.net;proto=https"},
    )
    assert json_body(answer)["fields"]["notify_url"] == f"{stack.bridge.url}/htouhui/notify"


# --- where personal data may go -------------------------------------------------------------------------


@dataclass
class Wiretap:
    """Every HTTP request httpx sends in this process, and every request body the store sends to DynamoDB."""

    http: list[tuple[str, str, str]] = field(default_factory=list)  # (method, url, body)
    dynamodb: list[str] = field(default_factory=list)

    def htouhui_calls(self, path: str) -> list[str]:
        return [body for method, url, body in self.http if method == "POST" and url.endswith(path)]


@pytest.fixture
def frontend(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    monkeypatch.setenv("FRONTEND_RETURN_URL", "https://shop.example.com/onboarding/done")
    runtime.reset()
    return stack


@pytest.fixture
def wiretap(frontend: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Wiretap]:
    tap = Wiretap()
    original = httpx.Client.send

    def send(self: httpx.Client, request: httpx.Request, **options: Any) -> httpx.Response:
        body = request.content.decode("utf-8", errors="replace") if request.content else ""
        tap.http.append((request.method, str(request.url), body))
        return original(self, request, **options)

    monkeypatch.setattr(httpx.Client, "send", send)
    client = runtime.onboarding().store.client()

    def record(request: Any, **_: Any) -> None:
        payload = request.body
        tap.dynamodb.append(payload.decode("utf-8") if isinstance(payload, bytes) else str(payload))

    client.meta.events.register("before-send.dynamodb", record, unique_id="hostile-wiretap")
    try:
        yield tap
    finally:
        client.meta.events.unregister("before-send.dynamodb", unique_id="hostile-wiretap")


def _variants(value: str) -> set[str]:
    """A value as it may appear anywhere: raw, JSON-escaped, URL-encoded, base64."""
    from urllib.parse import quote, quote_plus

    return {
        value,
        json.dumps(value)[1:-1],
        quote(value, safe=""),
        quote_plus(value),
        base64.b64encode(value.encode()).decode().rstrip("="),
    }


def _leaks(haystack: str, secrets: dict[str, str]) -> list[str]:
    return [name for name, value in secrets.items() if any(form in haystack for form in _variants(value))]


def test_personal_data_only_where_it_must_go(
    frontend: Stack,
    wiretap: Wiretap,
    captured_logs: io.StringIO,
) -> None:
    stack = frontend
    user = "u-pii-1"
    answers: list[dict[str, Any]] = []

    answers.append(stack.register(user, MOBILE, PASSWORD))
    assert answers[-1]["statusCode"] == 201
    # failures on the way, each of which could echo a value
    answers.append(stack.register(user, "13698765400", PASSWORD))  # another mobile: 409
    answers.append(stack.register("u-pii-2", MOBILE, PASSWORD))  # Htouhui 2003: mobile of another user
    answers.append(stack.register("u-pii-3", MOBILE + "9", PASSWORD + "x" * 10))  # 400
    answers.append(stack.open_account(user, {"id_card": ID_CARD[:-1] + "Y", "real_name": PLAIN_NAME}))  # 400
    page_answer = stack.open_account(user, {"id_card": ID_CARD, "real_name": PLAIN_NAME})
    assert page_answer["statusCode"] == 200
    page = json_body(page_answer)
    finished = stack.walk_pages(page)
    assert finished.status_code == 302
    location = finished.headers["location"]
    stack.wait_deliveries(user, lambda items: any(item["state"] == "delivered" for item in items))
    with httpx.Client(follow_redirects=False) as browser:
        shown = browser.get(location)
    assert shown.status_code == 302
    frontend = shown.headers["location"]
    assert frontend.startswith("https://shop.example.com/onboarding/done?")
    answers.append(stack.query(user, refresh=True))
    assert json_body(answers[-1])["status"] == 3
    bank_card = str(stack.user_item(user)["bank_card_number"]["S"])

    personal = {"mobile": MOBILE, "password": PASSWORD, "real_name": PLAIN_NAME, "id_card": ID_CARD}
    personal_and_card = {**personal, "bank_card_number": bank_card}

    # URLs: the page's action, every URL any browser or client asked for, both redirects
    urls = [page["action"], location, frontend, *(url for _, url, _ in wiretap.http)]
    for url in urls:
        assert _leaks(unquote(url), personal_and_card) == [], url
    assert frontend.split("?", 1)[1].split("&")[0].startswith("third_party_user_id=")

    # error answers and every JSON answer of ours: masked views and errors only
    for answer in answers:
        assert _leaks(answer["body"], personal_and_card) == [], answer

    # logs (every logger, plus EMF)
    assert _leaks(captured_logs.getvalue(), personal_and_card) == []

    # server to server: the password only in the register call; the mobile only there too
    registers = wiretap.htouhui_calls("/openapi/user/register")
    queries = wiretap.htouhui_calls("/openapi/user/query")
    assert registers and queries
    others = [
        body
        for method, url, body in wiretap.http
        if not url.endswith(("/openapi/user/register", "/_sandbox/users"))
        and "/_sandbox/" not in url  # the test's own control calls
    ]
    assert all(PASSWORD in body for body in registers[:1])
    for body in others:
        assert PASSWORD not in body, "the password went somewhere other than the register call"
        assert MOBILE not in body, "the mobile went somewhere other than the register call"
    for body in queries:
        assert ID_CARD in body and PLAIN_NAME not in body  # the query needs the id_card, nothing more

    # DynamoDB: never the password, the mobile or the name (the mobile is kept as a digest only)
    assert wiretap.dynamodb
    for body in wiretap.dynamodb:
        assert _leaks(body, {"mobile": MOBILE, "password": PASSWORD, "real_name": PLAIN_NAME}) == [], body
    for item in dump(stack).values():
        assert _leaks(json.dumps(item, ensure_ascii=False), {"mobile": MOBILE, "password": PASSWORD}) == []
