"""The open-account pages walked in a real browser: Debian's headless Chromium, driven by Playwright, against the real
local stack (`python -m stack` on free ports, the real handlers, the sandbox).

How the browser gets the open-account page. In production the route is IAM-signed and JSON-only: the merchant's
backend calls it for the user and hands the page to the user's browser. Here the browser itself fetches the page from
the local stack (which does not enforce IAM): a tiny merchant page, served from a stdlib server on a free port,
has the form the user fills in and submits (a real POST navigation, with the browser's own headers, Accept:
text/html among them); because an HTML form cannot send JSON, Playwright's request interception re-encodes that
one request's form body as the JSON the merchant's backend would send. Everything else is the browser's own: it
receives the stack's answer (the page and its Content-Security-Policy), runs the auto-submit script under that
policy, posts the signed form to the sandbox, clicks each step's button, follows the redirects to
/htouhui/return and on to /_local/return (the merchant's front-end stand-in). The stored state is then read over
HTTP (GET /users/{id}).

Every page is kept as a screenshot under test-artifacts/browser/<run>/NN-<step>.png (gitignored; CI uploads it).
Without Chromium the test fails when CI=true and is skipped elsewhere; `playwright install` is never used.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from helpers import ROOT, serve
from stack.apigw import HttpRequest, HttpResponse
from stack_process import StackProcess, running_stack

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ID_CARD = "11010519491231002X"
REAL_NAME = "张三"
STEP_TIMEOUT_MS = 30_000


def chromium_path() -> str | None:
    """CHROMIUM_PATH when set (and only it), else Debian's /usr/bin/chromium, else chromium on PATH."""
    given = os.environ.get("CHROMIUM_PATH")
    for candidate in (given,) if given else ("/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if path is None:
        message = (
            f"Chromium not found at {os.environ.get('CHROMIUM_PATH') or '/usr/bin/chromium (nor chromium on PATH)'}: "
            "the browser test needs "
            "Debian's chromium package (`apt-get install chromium`; .ci/run installs it)"
        )
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackProcess]:
    with running_stack(tmp_path_factory.mktemp("browser-stack")) as process:
        yield process


class MerchantSite:
    """The merchant's own web page: a form the user submits to open the account (served on a free port)."""

    def __init__(self, stack_url: str) -> None:
        self.stack = stack_url
        self.server = serve(self._page)
        self.url = self.server.url

    def _page(self, request: HttpRequest) -> tuple[HttpResponse, str]:
        user, stack = request.raw_path.rsplit("/", 1)[-1], self.stack
        page = f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>Merchant · open your account</title></head>
<body>
  <h1>Merchant · 开通存管账户 · Open your account</h1>
  <p>User <code id="user">{escape(user)}</code></p>
  <form id="open" method="post" action="{escape(stack)}/users/{escape(user)}/open-account">
    <label>身份证 · ID card <input name="id_card" value="{escape(ID_CARD)}"></label>
    <label>姓名 · Name <input name="real_name" value="{escape(REAL_NAME)}"></label>
    <button id="go" type="submit">开户 · Open account</button>
  </form>
</body></html>""".encode()
        return HttpResponse(200, [("Content-Type", "text/html; charset=utf-8")], page), "page"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def merchant(stack: StackProcess) -> Iterator[MerchantSite]:
    site = MerchantSite(stack.url)
    try:
        yield site
    finally:
        site.close()


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


class Shots:
    """Numbered screenshots of one run, NN-<step>.png, in a folder emptied first."""

    def __init__(self, run: str) -> None:
        self.folder = ARTIFACTS / run
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self.count = 0

    def take(self, page: Any, step: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def take_mid_navigation(self, page: Any, step: str) -> Path:
        """Playwright's screenshot waits while a navigation is pending; Chromium's own capture does not."""
        self.count += 1
        path = self.folder / f"{self.count:02d}-{step}.png"
        session = page.context.new_cdp_session(page)  # not detached here (that waits too): the context ends it
        path.write_bytes(base64.b64decode(session.send("Page.captureScreenshot", {"format": "png"})["data"]))
        return path


def register(stack: StackProcess, user: str, mobile: str) -> None:
    answer = httpx.post(f"{stack.url}/users", json={"third_party_user_id": user, "mobile": mobile}, timeout=30)
    assert answer.status_code == 201, answer.text


def stored_status(stack: StackProcess, user: str, status: int, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        view = dict(httpx.get(f"{stack.url}/users/{user}", timeout=10).json())
        if view.get("status") == status or time.monotonic() > deadline:
            return view
        time.sleep(0.2)


def walk(
    browser: Any, stack: StackProcess, merchant: MerchantSite, user: str, run: str, outcomes: list[str]
) -> tuple[Any, Path]:
    """Open the merchant page, submit it, and answer each sandbox step with `outcomes` (success/fail) in turn.
    Returns the page, left where the browser finally lands, and the screenshots' folder."""
    shots = Shots(run)
    context = browser.new_context(locale="zh-CN", viewport={"width": 900, "height": 700})
    page = context.new_page()
    page.set_default_timeout(STEP_TIMEOUT_MS)
    page.set_default_navigation_timeout(STEP_TIMEOUT_MS)
    seen: dict[str, Any] = {}

    def as_merchant_backend(route: Any) -> None:
        """The merchant backend's encoding of the user's form: JSON; every header else is the browser's own."""
        request = route.request
        assert request.method == "POST" and request.is_navigation_request()
        seen["accept"] = request.headers.get("accept", "")
        body = json.dumps(dict(parse_qsl(request.post_data or "", keep_blank_values=True)), ensure_ascii=False)
        headers = {**request.headers, "content-type": "application/json"}
        route.continue_(headers=headers, post_data=body.encode("utf-8"))

    held: list[Any] = []

    def hold_for_screenshot(route: Any) -> None:
        """The auto-submit page leaves at once: its POST to the sandbox is held until it is photographed."""
        if route.request.method == "POST" and route.request.is_navigation_request() and not held:
            held.append(route)
            return
        route.continue_()

    page.route(f"{stack.url}/users/{user}/open-account", as_merchant_backend)
    page.route(f"{stack.sandbox_url}/openapi/user/openAccount", hold_for_screenshot)

    page.goto(f"{merchant.url}/onboard/{user}")
    shots.take(page, "merchant-page")
    with page.expect_response(f"{stack.url}/users/{user}/open-account") as opened:
        page.click("#go", no_wait_after=True)  # the auto-submit that follows is held below: do not wait for it
    answer = opened.value
    assert answer.status == 200, answer.text()
    assert answer.headers["content-type"].startswith("text/html")
    assert "form-action" in answer.headers["content-security-policy"]
    assert "text/html" in seen["accept"]
    deadline = time.monotonic() + STEP_TIMEOUT_MS / 1000
    while not held:  # the auto-submit script posts the signed form to the sandbox
        assert time.monotonic() < deadline, "the auto-submit page never posted to the sandbox"
        page.wait_for_timeout(50)
    shots.take_mid_navigation(page, "auto-submit-page")
    form = dict(parse_qsl(held[0].request.post_data or ""))
    assert form["notify_url"] == f"{stack.url}/htouhui/notify" and form["third_party_user_id"] == user
    held[0].continue_()

    for number, outcome in enumerate(outcomes, start=1):
        page.wait_for_selector("main#step", state="visible")
        step = page.get_attribute("main#step", "data-step")
        assert page.url.startswith(stack.sandbox_url), page.url
        shots.take(page, f"step{number}-{step}")
        page.click(f'button[name="outcome"][value="{outcome}"]')

    page.wait_for_url(f"{stack.url}/_local/return?**")
    page.wait_for_load_state("load")
    shots.take(page, "return-page")
    return page, shots.folder


def test_a_user_opens_the_account_in_the_browser_and_reaches_status_3(
    browser: Any, stack: StackProcess, merchant: MerchantSite
) -> None:
    user = "browser-complete"
    register(stack, user, "13700137001")
    page, shots = walk(browser, stack, merchant, user, "complete", ["success", "success", "success"])
    try:
        assert page.inner_text("td#third_party_user_id") == user
        assert page.inner_text("td#status") == "3"
        steps = sorted(path.name for path in shots.glob("*.png"))
        assert steps == [
            "01-merchant-page.png",
            "02-auto-submit-page.png",
            "03-step1-open.png",
            "04-step2-password.png",
            "05-step3-authorise.png",
            "06-return-page.png",
        ]
        assert all(path.stat().st_size > 1000 for path in shots.glob("*.png"))
    finally:
        page.context.close()

    view = stored_status(stack, user, 3)
    assert view["status"] == 3, view
    assert view["stage"] == "COMPLETED" and view["ready_for_debt_matching"] is True
    assert view["id_card"] != ID_CARD and view["id_card"].endswith(ID_CARD[-4:])


def test_a_user_who_fails_the_password_step_stays_at_status_1(
    browser: Any, stack: StackProcess, merchant: MerchantSite
) -> None:
    user = "browser-fail-password"
    register(stack, user, "13700137002")
    page, shots = walk(browser, stack, merchant, user, "fail-at-password", ["success", "fail"])
    try:
        assert page.inner_text("td#third_party_user_id") == user
        assert page.inner_text("td#status") == "1"
        steps = sorted(path.name for path in shots.glob("*.png"))
        assert steps == [
            "01-merchant-page.png",
            "02-auto-submit-page.png",
            "03-step1-open.png",
            "04-step2-password.png",
            "05-return-page.png",
        ]
    finally:
        page.context.close()

    view = stored_status(stack, user, 1)
    assert view["status"] == 1, view
    assert view["stage"] == "ACCOUNT_OPENED" and view["ready_for_debt_matching"] is False

    # The notification of level 1 was delivered and acknowledged; nothing later raises the level.
    def deliveries() -> list[tuple[str, str]]:
        answer = httpx.get(f"{stack.sandbox_url}/_sandbox/deliveries", params={"third_party_user_id": user}, timeout=10)
        return [(str(d["status"]), d["state"]) for d in answer.json()["deliveries"]]

    deadline = time.monotonic() + 30
    while deliveries() != [("1", "delivered")] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert deliveries() == [("1", "delivered")]
    assert stored_status(stack, user, 1)["status"] == 1
