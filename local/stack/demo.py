"""`make demo` (`python -m stack.demo`): one fresh user walked through the whole onboarding over HTTP.

It uses the stack on the configured ports (STACK_HOST, API_PORT, as `make run`) when one answers
`GET /_local/health`, or starts one (`python -m stack`, stopped again at the end). Then, printing every request,
answer and the stored state: register, the open-account page, the sandbox's pages as a browser would walk them
(the auto-submitting form's fields posted to its action, then "succeed" on every step), the notification (the
stored user reaches status 3 before the browser comes back), the browser's return, the final user view and the
published UserStatusChanged. Exit 0 only if every step did what it should; otherwise 1 and the failed step.

Demo data are synthetic, yet the mobile, id_card and real_name are only ever printed masked.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx

from htouhui.models import id_card_check_character
from onboarding.models import mask_id_card
from stack.runner import LAYER, LOCAL, ROOT, StackConfig, free_port

T = TypeVar("T")
EXPECTED_STEPS = ("open", "password", "authorise")


class StepFailed(Exception):
    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step
        self.message = message


# -- masking and printing ----------------------------------------------------------------------------------------
def mask_mobile(mobile: str) -> str:
    return mobile[:3] + "****" + mobile[-4:] if len(mobile) == 11 else "*" * len(mobile)


def mask_name(name: str) -> str:
    return name[:1] + "*" * (len(name) - 1) if name else ""


class Out:
    """Readable, indented output; every line flushed at once (the demo is watched live)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout

    def line(self, text: str = "", indent: int = 0) -> None:
        self.stream.write(" " * indent + text + "\n")
        self.stream.flush()

    def step(self, number: int, title: str) -> None:
        self.line()
        self.line(f"== {number}. {title} ".ljust(78, "="))

    def request(self, method: str, url: str, note: str = "") -> None:
        self.line(f"> {method} {url}" + (f"  {note}" if note else ""), 2)

    def answer(self, response: httpx.Response, note: str = "") -> None:
        kind = response.headers.get("content-type", "").split(";")[0]
        text = f"< {response.status_code} {response.reason_phrase} {kind}".rstrip()
        self.line(text + (f"  {note}" if note else ""), 2)

    def state(self, view: dict[str, Any]) -> None:
        self.line("stored: " + _view_text(view), 2)


def _view_text(view: dict[str, Any]) -> str:
    keys = ("stage", "status", "htouhui_user_id", "id_card", "bank_card_number", "ready_for_debt_matching")
    return ", ".join(f"{key} {json.dumps(view.get(key), ensure_ascii=False)}" for key in keys)


# -- HTML, read as a browser would -------------------------------------------------------------------------------
@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    buttons: list[tuple[str, str, str]] = field(default_factory=list)  # (name, value, label)
    form_id: str = ""


class PageParser(HTMLParser):
    """The forms of a page (hidden inputs, submit buttons and their labels), its title, h1 and element ids."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.title = ""
        self.h1 = ""
        self.texts: dict[str, str] = {}
        self._in: str | None = None
        self._button: tuple[str, str] | None = None
        self._label = ""
        self._text_id: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            method = attributes.get("method", "get").upper()
            self.forms.append(Form(attributes.get("action", ""), method, form_id=attributes.get("id", "")))
        elif tag == "input" and self.forms and attributes.get("name"):
            if attributes.get("type", "text") not in ("submit", "button", "image", "reset"):
                self.forms[-1].fields[attributes["name"]] = attributes.get("value", "")
        elif tag == "button" and self.forms:
            self._button, self._label = (attributes.get("name", ""), attributes.get("value", "")), ""
        elif tag in ("title", "h1"):
            self._in = tag
        if tag in ("td", "strong", "p") and attributes.get("id"):
            self._text_id = attributes["id"]
            self.texts[self._text_id] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "button" and self._button is not None and self.forms:
            self.forms[-1].buttons.append((*self._button, self._label.strip()))
            self._button = None
        elif tag == self._in:
            self._in = None
        elif tag in ("td", "strong", "p"):
            self._text_id = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._label += data
        if self._in == "title":
            self.title += data
        elif self._in == "h1":
            self.h1 += data
        if self._text_id is not None:
            self.texts[self._text_id] += data


def parse_page(text: str) -> PageParser:
    parser = PageParser()
    parser.feed(text)
    parser.close()
    return parser


# -- the stack: found or started ---------------------------------------------------------------------------------
def health(api_url: str) -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"{api_url}/_local/health", timeout=2)
    except httpx.HTTPError:
        return None
    if answer.status_code != 200:
        return None
    try:
        return dict(answer.json())
    except ValueError:
        return None


@dataclass
class RunningStack:
    api_url: str
    health: dict[str, Any]
    started: subprocess.Popen[bytes] | None
    log: Path | None


@contextmanager
def stack_for_demo(config: StackConfig, out: Out, start_timeout: float) -> Iterator[RunningStack]:
    api_url = f"http://{config.host}:{config.api_port}"
    found = health(api_url) if config.api_port else None
    if found is not None:
        out.line(f"using the stack already running at {api_url} (sandbox {found.get('sandbox')})")
        yield RunningStack(api_url, found, None, None)
        return

    environment = dict(os.environ)
    ports = {
        "API_PORT": config.api_port or free_port(config.host),
        "DYNAMODB_PORT": config.dynamodb_port or free_port(config.host),
        "SANDBOX_PORT": config.sandbox_port or free_port(config.host),
    }
    environment.update({name: str(port) for name, port in ports.items()})
    environment["PYTHONPATH"] = os.pathsep.join(
        part for part in (str(LOCAL), str(LAYER), environment.get("PYTHONPATH", "")) if part
    )
    api_url = f"http://{config.host}:{ports['API_PORT']}"
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    log = config.logs_dir / "demo-stack.log"
    out.line(f"no stack answers at {api_url}/_local/health: starting one (python -m stack; output in {_short(log)})")
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "stack"], cwd=ROOT, env=environment, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + start_timeout
        answered = None
        while answered is None:
            if process.poll() is not None:
                raise StepFailed("start the stack", f"python -m stack exited with {process.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise StepFailed("start the stack", f"not ready within {start_timeout:g} s:\n{_tail(log)}")
            time.sleep(0.2)
            answered = health(api_url)
        out.line(f"stack ready at {api_url} (sandbox {answered.get('sandbox')}); it is stopped when the demo ends")
        yield RunningStack(api_url, answered, process, log)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        out.line(f"stopped the stack the demo started (exit {process.returncode})")


def _short(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# -- the walk ------------------------------------------------------------------------------------------------------
@dataclass
class Person:
    third_party_user_id: str
    mobile: str
    id_card: str
    real_name: str

    @classmethod
    def synthetic(cls) -> Person:
        first17 = "110105" + "1990" + f"{secrets.randbelow(12) + 1:02d}" + f"{secrets.randbelow(28) + 1:02d}"
        first17 += f"{secrets.randbelow(1000):03d}"
        return cls(
            third_party_user_id=f"demo-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}",
            mobile="139" + f"{secrets.randbelow(10**8):08d}",
            id_card=first17 + id_card_check_character(first17),
            real_name="演示用户",
        )


def wait_until(check: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T | None:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class Demo:
    def __init__(self, client: httpx.Client, stack: RunningStack, person: Person, out: Out, wait: float) -> None:
        self.client = client
        self.api = stack.api_url
        self.sandbox = str(stack.health.get("sandbox") or "")
        self.person = person
        self.out = out
        self.wait = wait
        self.step_name = "start"
        self.number = 0

    # helpers
    def begin(self, title: str) -> None:
        self.number += 1
        self.step_name = f"{self.number}. {title}"
        self.out.step(self.number, title)

    def fail(self, message: str) -> StepFailed:
        return StepFailed(self.step_name, message)

    def expect(self, response: httpx.Response, status: int, what: str) -> None:
        if response.status_code != status:
            raise self.fail(f"expected {status} {what}, got {response.status_code}: {_snippet(response)}")

    def view(self) -> dict[str, Any]:
        answer = self.client.get(f"{self.api}/users/{self.person.third_party_user_id}")
        if answer.status_code != 200:
            raise self.fail(f"GET /users/{{id}} answered {answer.status_code}: {_snippet(answer)}")
        return dict(answer.json())

    def user_status_changed(self) -> int:
        answer = self.client.get(f"{self.api}/_local/events")
        if answer.status_code != 200:
            return 0
        return sum(1 for event in answer.json().get("events", []) if event.get("detail-type") == "UserStatusChanged")

    def _at_status_3(self) -> dict[str, Any] | None:
        view = self.view()
        return view if view.get("status") == 3 else None

    def _deliveries(self) -> list[dict[str, Any]]:
        if not self.sandbox:
            return []
        answer = self.client.get(
            f"{self.sandbox}/_sandbox/deliveries", params={"third_party_user_id": self.person.third_party_user_id}
        )
        return list(answer.json().get("deliveries", [])) if answer.status_code == 200 else []

    def _acknowledged(self) -> list[dict[str, Any]] | None:
        deliveries = self._deliveries()
        return deliveries if any(d.get("state") == "delivered" for d in deliveries) else None

    # the walk
    def run(self) -> dict[str, Any]:
        person, out = self.person, self.out
        user_url = f"{self.api}/users/{person.third_party_user_id}"
        out.line(
            f"user {person.third_party_user_id}: mobile {mask_mobile(person.mobile)}, id_card "
            f"{mask_id_card(person.id_card)}, real_name {mask_name(person.real_name)} (synthetic)"
        )
        events_before = self.user_status_changed()

        self.begin("register")
        body = {"third_party_user_id": person.third_party_user_id, "mobile": person.mobile}
        out.request("POST", f"{self.api}/users", json.dumps({**body, "mobile": mask_mobile(person.mobile)}))
        answer = self.client.post(f"{self.api}/users", json=body)
        out.answer(answer)
        self.expect(answer, 201, "Created (registered at Htouhui now)")
        registered = answer.json()
        if not registered.get("htouhui_user_id") or registered.get("stage") != "REGISTERED":
            raise self.fail(f"unexpected user view {_view_text(registered)}")
        out.line(f"Htouhui's user id {registered['htouhui_user_id']}, stage {registered['stage']}", 2)
        out.state(self.view())

        self.begin("open-account page (POST, Accept: text/html)")
        shown = {"id_card": mask_id_card(person.id_card), "real_name": mask_name(person.real_name)}
        out.request("POST", f"{user_url}/open-account", json.dumps(shown, ensure_ascii=False))
        answer = self.client.post(
            f"{user_url}/open-account",
            json={"id_card": person.id_card, "real_name": person.real_name},
            headers={"accept": "text/html"},
        )
        out.answer(answer)
        self.expect(answer, 200, "with the page")
        if not answer.headers.get("content-type", "").startswith("text/html"):
            raise self.fail(f"expected text/html, got {answer.headers.get('content-type')}")
        page = parse_page(answer.text)
        forms = [form for form in page.forms if form.form_id == "htouhui-open-account"] or page.forms
        if not forms or forms[0].method != "POST" or not forms[0].action:
            raise self.fail("the page has no POST form to follow")
        form = forms[0]
        out.line(f"page: {page.title.strip()}", 2)
        out.line(f"auto-submit form: POST {form.action}", 2)
        out.line(f"fields: {', '.join(form.fields)}", 2)
        for name in ("type", "notify_url", "return_url", "sign_type"):
            if name in form.fields:
                out.line(f"  {name} = {form.fields[name]}", 2)
        csp = answer.headers.get("content-security-policy")
        if csp:
            out.line(f"Content-Security-Policy: {csp}", 2)
        expected_notify = f"{self.api}/htouhui/notify"
        if form.fields.get("notify_url") != expected_notify:
            raise self.fail(f"notify_url is {form.fields.get('notify_url')!r}, expected {expected_notify}")
        state = self.view()
        out.state(state)
        if state.get("stage") != "OPEN_REQUESTED":
            raise self.fail(f"expected stage OPEN_REQUESTED, stored {state.get('stage')}")

        self.begin("the sandbox's pages, as the browser walks them")
        out.request("POST", form.action, f"(the auto-submit: {len(form.fields)} form fields)")
        answer = self.client.post(form.action, data=form.fields)
        out.answer(answer)
        walked: list[str] = []
        base = form.action
        while answer.status_code == 200:
            step = parse_page(answer.text)
            forms = [f for f in step.forms if any(value == "success" for _, value, _ in f.buttons)]
            if not forms:
                raise self.fail(f"no step form on the page {step.title.strip()!r}{_htouhui(answer)}")
            step_form = forms[0]
            name = step_form.fields.get("step", "?")
            walked.append(name)
            label = next(label for button, value, label in step_form.buttons if value == "success")
            out.line(f"step page {len(walked)}: {step.h1.strip()} [step={name}]; pressing “{label}”", 2)
            target = str(httpx.URL(base).join(step_form.action))
            fields = {**step_form.fields, "outcome": "success"}
            out.request("POST", _without_query(target), "outcome=success")
            answer = self.client.post(target, data=fields)
            out.answer(answer)
            base = target
            if len(walked) > len(EXPECTED_STEPS):
                raise self.fail(f"more steps than expected: {walked}")
        if answer.status_code != 302:
            raise self.fail(
                f"expected a step page (200) or the return (302), got {answer.status_code}{_htouhui(answer)}"
            )
        if tuple(walked) != EXPECTED_STEPS:
            raise self.fail(f"walked the steps {walked}, expected {list(EXPECTED_STEPS)}")
        return_location = answer.headers.get("location", "")
        returned = dict(parse_qsl(urlsplit(return_location).query))
        out.line(
            f"redirected to {_without_query(return_location)} with {', '.join(returned)} "
            f"(status {returned.get('status')}, code {returned.get('code')})",
            2,
        )
        if not return_location.startswith(f"{self.api}/htouhui/return"):
            raise self.fail(f"the return goes to {_without_query(return_location)}, not our /htouhui/return")
        if returned.get("status") != "3":
            raise self.fail(f"the return says status {returned.get('status')}, expected 3")
        out.line("the browser is held here: the notification alone must bring the user to status 3", 2)

        self.begin("the notification (Htouhui -> POST /htouhui/notify)")
        out.line(f"polling GET {user_url} until status 3 (at most {self.wait:g} s)", 2)
        started = time.monotonic()
        final = wait_until(self._at_status_3, self.wait, 0.25)
        if final is None:
            raise self.fail(f"the stored status is not 3 after {self.wait:g} s: {_view_text(self.view())}")
        out.line(f"status 3 stored {time.monotonic() - started:.1f} s after the last step", 2)
        # The sandbox records the attempt once our answer reached it: wait (briefly) for the acknowledgement.
        deliveries = wait_until(self._acknowledged, 5.0) or self._deliveries()
        for delivery in deliveries:
            attempts = delivery.get("attempts", [])
            answers = ", ".join(
                f"{a.get('http_status') or a.get('error')} {str(a.get('body', '')).strip()!r}" for a in attempts
            )
            out.line(
                f"the sandbox's notification {delivery.get('notify_no')} (status {delivery.get('status')}) to "
                f"{delivery.get('notify_url')}: {delivery.get('state')} after {len(attempts)} attempt(s): {answers}",
                2,
            )
        out.state(final)

        self.begin("the browser comes back (GET /htouhui/return)")
        out.request("GET", _without_query(return_location), f"({len(returned)} signed query fields)")
        answer = self.client.get(return_location)
        out.answer(answer)
        self.expect(answer, 302, "to the merchant's front end")
        landing = answer.headers.get("location", "")
        landed = dict(parse_qsl(urlsplit(landing).query))
        out.line(f"redirected to {_without_query(landing)} with {landed}", 2)
        if landed.get("status") != "3" or landed.get("third_party_user_id") != person.third_party_user_id:
            raise self.fail(f"the front end is told {landed}, expected status 3 for this user")
        out.request("GET", _without_query(landing))
        answer = self.client.get(landing)
        out.answer(answer)
        self.expect(answer, 200, "from the front-end page")
        out.line(f"page: {parse_page(answer.text).h1.strip()}", 2)

        self.begin(f"the user view (GET /users/{person.third_party_user_id})")
        out.request("GET", user_url)
        answer = self.client.get(user_url)
        out.answer(answer)
        self.expect(answer, 200, "with the user view")
        view = dict(answer.json())
        for line in json.dumps(view, indent=2, ensure_ascii=False).splitlines():
            out.line(line, 4)
        if (view.get("status"), view.get("stage"), view.get("ready_for_debt_matching")) != (3, "COMPLETED", True):
            raise self.fail(f"expected status 3, COMPLETED, ready_for_debt_matching true: {_view_text(view)}")
        if person.id_card in json.dumps(view) or person.mobile in json.dumps(view):
            raise self.fail("the user view shows personal data unmasked")

        self.begin("the event (DynamoDB stream -> UserStatusChanged)")
        published = wait_until(lambda: n if (n := self.user_status_changed()) > events_before else None, self.wait)
        if published is None:
            raise self.fail(f"no new UserStatusChanged on the bus within {self.wait:g} s (GET /_local/events)")
        out.line(f"UserStatusChanged published on the bus ({published - events_before} new; GET /_local/events)", 2)
        return view


def _htouhui(response: httpx.Response) -> str:
    """Htouhui's code and message from a sandbox error page (header X-Htouhui-Code, <strong id="code">)."""
    page = parse_page(response.text) if response.headers.get("content-type", "").startswith("text/html") else None
    code = response.headers.get("x-htouhui-code") or (page.texts.get("code", "").strip() if page else "")
    if not code:
        return f": {_snippet(response)}"
    message = page.texts.get("message", "").strip() if page else ""
    return f" (code {code}" + (f": {message})" if message else ")")


def _without_query(url: str) -> str:
    return url.split("?", 1)[0]


def _snippet(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] + ("…" if len(text) > 300 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--user", help="third_party_user_id (default: a fresh demo-<time>-<random>)")
    parser.add_argument("--mobile", help="the user's mobile (default: a random synthetic 139…)")
    parser.add_argument("--id-card", help="the user's id_card (default: a random synthetic, valid check digit)")
    parser.add_argument("--real-name", help="the user's name (default: 演示用户)")
    parser.add_argument("--wait", type=float, default=45.0, help="seconds to wait for the notification (45)")
    parser.add_argument("--start-timeout", type=float, default=90.0, help="seconds for a stack it starts (90)")
    args = parser.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")

    synthetic = Person.synthetic()
    person = Person(
        third_party_user_id=args.user or synthetic.third_party_user_id,
        mobile=args.mobile or synthetic.mobile,
        id_card=args.id_card or synthetic.id_card,
        real_name=args.real_name or synthetic.real_name,
    )
    out = Out()
    config = StackConfig.from_env()
    step = "start the stack"
    started = time.monotonic()
    try:
        with (
            stack_for_demo(config, out, args.start_timeout) as stack,
            httpx.Client(timeout=30, follow_redirects=False) as client,
        ):
            demo = Demo(client, stack, person, out, args.wait)
            try:
                view = demo.run()
            except httpx.HTTPError as error:
                raise demo.fail(f"{type(error).__name__}: {error}") from error
            except (ValueError, KeyError, TypeError, AttributeError) as error:  # e.g. an answer that is not JSON
                raise demo.fail(f"unexpected answer ({type(error).__name__}: {error})") from error
            step = demo.step_name
    except StepFailed as failure:
        out.line()
        out.line(f"DEMO FAILED at step {failure.step}: {failure.message}")
        return 1
    except KeyboardInterrupt:
        out.line()
        out.line(f"DEMO INTERRUPTED after {step}")
        return 130
    out.line()
    out.line(
        f"DEMO OK in {time.monotonic() - started:.1f} s: {person.third_party_user_id} is at status {view['status']} "
        f"({view['stage']}), ready_for_debt_matching: {json.dumps(view['ready_for_debt_matching'])}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
