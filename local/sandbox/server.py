"""The sandbox server: Htouhui's register, query and openAccount interfaces, its notifications, and
the test controls under `/_sandbox/`, on a threaded standard-library HTTP server.

The sandbox holds its own private key and the merchant's *public* key only: it can verify what the
merchant signs and sign what it answers, and it can never sign as the merchant.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Final
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from htouhui import protocol
from htouhui.client import DEFAULT_QUERY_PATH, OPEN_ACCOUNT_PATH, REGISTER_PATH
from htouhui.models import MOBILE_PATTERN, THIRD_PARTY_USER_ID_PATTERN, OpenAccountForm, QueryRequest
from sandbox import DEFAULT_PARTNER_ID, rules
from sandbox.delivery import Deliverer, Delivery
from sandbox.faults import FaultError, Faults, InterfaceFault
from sandbox.pages import error_page, index_page, step_page
from sandbox.state import START_STEP, STEP_LEVEL, STEPS, Replay, Session, Store, User, mobile_for

logger = logging.getLogger("sandbox")

STEP_PATH: Final = OPEN_ACCOUNT_PATH + "/step/"
CONTROL_PREFIX: Final = "/_sandbox/"
JSON_TYPE: Final = "application/json; charset=utf-8"
HTML_TYPE: Final = "text/html; charset=utf-8"
ERROR_STATUS: Final = {"9999": 503}


@dataclass(frozen=True, kw_only=True)
class SandboxConfig:
    """What the sandbox is given. Note what is absent: the merchant's private key."""

    merchant_public_key: protocol.PublicKey
    htouhui_private_key: protocol.PrivateKey
    partner_id: str = DEFAULT_PARTNER_ID
    time_scale: float = 1.0
    state_file: str | Path | None = None
    public_url: str | None = None
    query_path: str = DEFAULT_QUERY_PATH
    profile: protocol.Profile = protocol.DEFAULT

    def __post_init__(self) -> None:
        if not isinstance(self.merchant_public_key, rsa.RSAPublicKey):
            raise TypeError("merchant_public_key must be an RSA *public* key; the sandbox never holds the merchant's")
        if not isinstance(self.htouhui_private_key, rsa.RSAPrivateKey):
            raise TypeError("htouhui_private_key must be the sandbox's own RSA private key")
        if protocol.fingerprint(self.htouhui_private_key) == protocol.fingerprint(self.merchant_public_key):
            raise ValueError("the sandbox's key pair must not be the merchant's key pair")
        if not self.time_scale > 0:
            raise ValueError("time_scale must be > 0")
        if not re.fullmatch(r"[0-9A-Za-z_-]{1,32}", self.partner_id):
            raise ValueError("partner_id must be 1 to 32 of [0-9A-Za-z_-]")


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: list[tuple[str, str]] = field(default_factory=list)
    code: str | None = None
    drop_connection: bool = False


class _ControlError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(status: int, data: Any) -> Answer:
    return Answer(status, JSON_TYPE, json.dumps(data, ensure_ascii=False).encode("utf-8"))


def _html(status: int, text: str, code: str | None = None) -> Answer:
    headers = [("Cache-Control", "no-store")]
    if code is not None:
        headers.append(("X-Htouhui-Code", code))
    return Answer(status, HTML_TYPE, text.encode("utf-8"), headers, code)


class Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self._key = config.htouhui_private_key
        self.public_key = config.htouhui_private_key.public_key()
        self._merchant = rules.Merchant(config.partner_id, config.merchant_public_key, config.profile)
        state_file = Path(config.state_file) if config.state_file is not None else None
        self.store = Store(config.partner_id, state_file)
        self.faults = Faults()
        self.deliverer = Deliverer(
            config.time_scale, self.faults.reorder_hold, self.faults.stop_reorder, config.profile.ack
        )
        self.clock: Callable[[], float] = time.time
        self.stopping = threading.Event()
        self._running: RunningSandbox | None = None

    # --- serving -------------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> RunningSandbox:
        if self._running is not None:
            raise RuntimeError("this sandbox is already serving")
        handler = type("SandboxHandler", (_Handler,), {"sandbox": self})
        httpd = _Server((host, port), handler)
        self.stopping.clear()
        self.deliverer.start()
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="sandbox-http", daemon=True
        )
        thread.start()
        self._running = RunningSandbox(self, httpd, thread)
        return self._running

    def _stopped(self) -> None:
        self._running = None

    def handle(self, method: str, target: str, body: bytes) -> Answer:
        """One HTTP request to one answer; the handler only moves bytes."""
        parts = urlsplit(target)
        path = parts.path
        try:
            if path.startswith(CONTROL_PREFIX):
                return self._control(method, path[len(CONTROL_PREFIX) :], parse_qs(parts.query), body)
            if method == "POST" and path == REGISTER_PATH:
                return self._api("register", body)
            if method == "POST" and path == self.config.query_path:
                return self._api("query", body)
            if method == "POST" and path == OPEN_ACCOUNT_PATH:
                return self._open_account(body)
            if path.startswith(STEP_PATH) and method in ("GET", "POST"):
                return self._step(path[len(STEP_PATH) :], body if method == "POST" else None)
            if method == "GET" and path in ("/", ""):
                return _html(200, index_page(self._describe()))
        except _ControlError as exc:
            return _json(exc.status, {"error": exc.message})
        return _json(404, {"error": f"no such route: {method} {path}"})

    def _describe(self) -> list[str]:
        return [
            f"POST {REGISTER_PATH}",
            f"POST {self.config.query_path}",
            f"POST {OPEN_ACCOUNT_PATH}",
            f"partner_id {self.config.partner_id}",
            f"sandbox key {protocol.fingerprint(self.public_key)}",
            f"merchant key {protocol.fingerprint(self.config.merchant_public_key)}",
            "controls under /_sandbox/ (see docs/sandbox.md)",
        ]

    # --- signing ------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def _signed_answer(self, request_no: str | None, code: str, message: str, extra: dict[str, str]) -> bytes:
        fields = rules.answer(self._key, self._merchant, request_no, code, message, extra, self._now())
        return json.dumps(fields, ensure_ascii=False).encode("utf-8")

    def _broken_signature(self, fields: dict[str, str]) -> str:
        """A well-formed RSA2 signature, by the sandbox's key, over other content: must fail to verify."""
        return protocol.sign({**fields, "_tampered": "1"}, self._key, self.config.profile)

    # --- register and query ---------------------------------------------------------------------

    def _api(self, interface: str, body: bytes) -> Answer:
        fault = self.faults.take(interface)
        if fault is not None:
            early = self._before(fault, interface, body)
            if early is not None:
                return early
        answer = self._api_answer(interface, body)
        return self._after(fault, answer) if fault is not None else answer

    def _api_answer(self, interface: str, body: bytes) -> Answer:
        with self.store.lock:
            decision = rules.decide(self.store, interface, body, self._merchant, self._now())
            if decision.replay is not None:
                replay = decision.replay
                return Answer(replay.status, JSON_TYPE, replay.body, list(replay.headers), code="replay")
            answer = self._json_answer(decision.request_no, decision.code, decision.message, decision.extra)
            rules.remember(self.store, decision, answer.status, answer.headers, answer.body)
        if decision.code == protocol.SUCCESS:
            self.store.save()
        return answer

    def _json_answer(self, request_no: str | None, code: str, message: str, extra: dict[str, str]) -> Answer:
        return Answer(200, JSON_TYPE, self._signed_answer(request_no, code, message, extra), code=code)

    # --- faults ----------------------------------------------------------------------------------

    def _before(self, fault: InterfaceFault, interface: str, body: bytes) -> Answer | None:
        if fault.latency_ms:
            self.stopping.wait(fault.latency_ms / 1000)
        if fault.timeout:
            self.stopping.wait(fault.timeout)
            return Answer(0, "", b"", drop_connection=True, code="timeout")
        if Faults.roll(fault.error_rate):
            return Answer(503, "text/plain; charset=utf-8", b"503 Service Unavailable", code="http_503")
        if fault.busy:
            if interface == "openAccount":
                return _html(503, error_page("9999", rules.MESSAGES["9999"]), "9999")
            return self._json_answer(_request_no_of(body, self.config.profile), "9999", rules.MESSAGES["9999"], {})
        return None

    def _after(self, fault: InterfaceFault, answer: Answer) -> Answer:
        if answer.drop_connection or answer.content_type != JSON_TYPE:
            return answer
        if fault.not_json:
            return Answer(200, HTML_TYPE, b"<html><body><h1>502 Bad Gateway</h1></body></html>", code="not_json")
        if fault.unsigned or fault.bad_signature:
            fields: dict[str, str] = json.loads(answer.body)
            if fault.unsigned:
                fields.pop("sign", None)
                fields.pop("sign_type", None)
            else:
                fields["sign"] = self._broken_signature(fields)
            return Answer(answer.status, JSON_TYPE, json.dumps(fields, ensure_ascii=False).encode(), code=answer.code)
        return answer

    # --- the open-account pages ----------------------------------------------------------------

    def _open_account(self, body: bytes) -> Answer:
        fault = self.faults.take("openAccount")
        if fault is not None:
            early = self._before(fault, "openAccount", body)
            if early is not None:
                return early
        try:
            fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError:
            return self._page_error("1002", "body: must be UTF-8 form fields")
        try:
            fields = rules.check_common(fields, self._merchant, self._now())
        except rules.Rejected as rejected:
            return self._page_error(rejected.code, rejected.message)
        request_no = fields[protocol.REQUEST_FIELD]
        content = rules.content_of("openAccount", fields)
        with self.store.lock:
            replay = self.store.replays.get(request_no)
            if replay is not None:
                if replay.content != content:
                    return self._page_error("1003", rules.MESSAGES["1003"])
                session = self.store.sessions.get(replay.session_token or "")
                if session is None:
                    return Answer(replay.status, HTML_TYPE, replay.body, list(replay.headers), code="replay")
                return self._session_page(session)
            try:
                session = self._start_session(fields, fault)
            except rules.Rejected as rejected:
                answer = self._page_error(rejected.code, rejected.message)
                self.store.replays[request_no] = Replay(content, answer.status, answer.headers, answer.body)
                return answer
            self.store.replays[request_no] = Replay(content, 200, [], b"", session.token)
            return self._session_page(session)

    def _start_session(self, fields: dict[str, str], fault: InterfaceFault | None) -> Session:
        form: OpenAccountForm = rules.business(fields, OpenAccountForm)
        user = self.store.users.get(form.third_party_user_id)
        if user is None or user.htouhui_user_id != form.htouhui_user_id:
            raise rules.Rejected("2002")
        if user.id_card is not None and user.id_card != form.id_card:
            raise rules.Rejected("2004")
        start = START_STEP[form.type]
        if user.status < start:
            raise rules.Rejected("3001", f"step out of order: type={form.type} needs status >= {start}")
        session = self.store.new_session(
            third_party_user_id=user.third_party_user_id,
            request_no=fields[protocol.REQUEST_FIELD],
            steps=STEPS[start:],
            notify_url=form.notify_url,
            return_url=form.return_url,
            id_card=form.id_card,
            real_name=form.real_name,
        )
        if fault is not None:
            session.return_fault = "unsigned" if fault.unsigned else "bad_signature" if fault.bad_signature else None
        return session

    def _step_action(self, session: Session) -> str:
        path = STEP_PATH + session.token
        return (self.config.public_url.rstrip("/") + path) if self.config.public_url else path

    def _session_page(self, session: Session, status: int = 200) -> Answer:
        if session.finished and session.redirect:
            return Answer(302, HTML_TYPE, b"", [("Location", session.redirect), ("Cache-Control", "no-store")])
        return _html(status, step_page(session, self._step_action(session)))

    def _page_error(self, code: str, message: str) -> Answer:
        return _html(ERROR_STATUS.get(code, 400), error_page(code, message), code)

    def _step(self, token: str, body: bytes | None) -> Answer:
        with self.store.lock:
            session = self.store.sessions.get(token)
            if session is None:
                return _html(404, error_page("1002", "this open-account session is unknown or over"), "1002")
            if body is None or session.finished:
                return self._session_page(session)
            form = dict(parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True))
            outcome, step = form.get("outcome"), form.get("step")
            if (step and step != session.step) or outcome not in ("success", "fail"):
                return self._session_page(session, 409)
            user = self.store.users.get(session.third_party_user_id)
            if user is None:
                return _html(404, error_page("2002", rules.MESSAGES["2002"]), "2002")
            failed = outcome == "fail"
            if user.fail_next_step == session.step:
                user.fail_next_step = None
                failed = True
            if not failed:
                if session.step == "open":
                    user.id_card = session.id_card
                    if session.real_name:
                        user.real_name = session.real_name
                user.raise_to(STEP_LEVEL[session.step])
                if session.index + 1 < len(session.steps):
                    session.index += 1
                    self.store.save()
                    return self._session_page(session)
            self._finish(session, user, completed=not failed)
        self.store.save()
        return self._session_page(session)

    def _finish(self, session: Session, user: User, *, completed: bool) -> None:
        user.notify_url = session.notify_url
        user.updated_at = datetime.now(UTC).isoformat()
        self.notify(user, session.notify_url)
        message = "success" if completed else f"stopped at step {session.step}: not completed"
        fields = rules.browser_return(self._key, self._merchant, user, session.request_no, self._now(), message=message)
        if session.return_fault == "unsigned":
            fields.pop("sign")
            fields.pop("sign_type")
        elif session.return_fault == "bad_signature":
            fields["sign"] = self._broken_signature(fields)
        session.finished = True
        session.redirect = _append_query(session.return_url, fields)

    # --- notifications ---------------------------------------------------------------------------

    def notify(self, user: User, notify_url: str) -> Delivery:
        """Queue an OPEN_ACCOUNT notification of the user's current level (faults applied)."""
        drop, duplicates, corrupt = self.faults.take_notify()
        status = str(user.status)
        now = self._now()
        notify_no = f"N{protocol.china_timestamp(now)}{secrets.token_hex(6)}"
        message = rules.notification(self._key, self._merchant, user, user.status, notify_no, now)
        if corrupt:
            message["sign"] = self._broken_signature(message)
        return self.deliverer.queue(
            notify_no=message["notify_no"],
            notify_url=notify_url,
            third_party_user_id=user.third_party_user_id,
            status=status,
            fields=message,
            drop=drop,
            duplicates=duplicates,
            corrupted=corrupt,
        )

    # --- controls (/_sandbox/...) ----------------------------------------------------------------

    def _control(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Answer:
        route = path.strip("/")
        data = _control_body(body) if method in ("POST", "PUT") else {}
        if route == "health" and method == "GET":
            return _json(200, self._health())
        if route == "keys" and method == "GET":
            return _json(
                200,
                {
                    "htouhui_public_key": protocol.public_pem(self.public_key).decode("ascii"),
                    "htouhui_public_key_fingerprint": protocol.fingerprint(self.public_key),
                    "merchant_public_key_fingerprint": protocol.fingerprint(self.config.merchant_public_key),
                },
            )
        if route == "faults":
            if method == "GET":
                return _json(200, self.faults.view())
            if method == "DELETE":
                self.faults.reset()
                self.deliverer.release_held()
                return _json(200, self.faults.view())
            if method == "POST":
                try:
                    view = self.faults.set(data)
                except FaultError as exc:
                    raise _ControlError(400, str(exc)) from None
                if data.get("interface") == "notify" and not self.faults.reorder_hold():
                    self.deliverer.release_held()
                return _json(200, view)
        if route == "users":
            if method == "GET":
                with self.store.lock:
                    return _json(200, {"users": [user.view() for user in self.store.users.values()]})
            if method == "POST":
                return _json(201, {"users": self._seed(data)})
        match = re.fullmatch(r"users/([^/]+)(/fail-next-step)?", route)
        if match:
            return self._user_control(method, match.group(1), bool(match.group(2)), data)
        if route == "trigger" and method == "POST":
            return _json(202, self._trigger(data))
        if route == "deliveries" and method == "GET":
            user = query.get("third_party_user_id", [None])[0]
            notify_no = query.get("notify_no", [None])[0]
            return _json(200, {"deliveries": self.deliverer.list(user, notify_no)})
        if route == "deliveries/release" and method == "POST":
            self.faults.stop_reorder()
            return _json(200, {"released": self.deliverer.release_held()})
        if route == "reset" and method == "POST":
            self.reset()
            return _json(200, {"reset": True})
        raise _ControlError(404, f"no such control: {method} /_sandbox/{route}")

    def reset(self) -> None:
        self.faults.reset()
        self.deliverer.reset()
        self.store.reset()

    def _health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            protocol.PARTNER_FIELD: self.config.partner_id,
            "profile": self.config.profile.name,
            "time_scale": self.config.time_scale,
            "query_path": self.config.query_path,
            "users": len(self.store.users),
            "htouhui_public_key_fingerprint": protocol.fingerprint(self.public_key),
            "merchant_public_key_fingerprint": protocol.fingerprint(self.config.merchant_public_key),
        }

    def _user_control(self, method: str, user_id: str, fail_step: bool, data: dict[str, Any]) -> Answer:
        with self.store.lock:
            user = self.store.users.get(user_id)
            if user is None:
                raise _ControlError(404, "no such user")
            if not fail_step:
                if method != "GET":
                    raise _ControlError(405, "GET only")
                return _json(200, user.view())
            if method != "POST":
                raise _ControlError(405, "POST only")
            step = data.get("step")
            if step not in STEPS:
                raise _ControlError(400, f"step must be one of {', '.join(STEPS)}")
            user.fail_next_step = step
            return _json(200, user.view())

    def _seed(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        records = data.get("users", [data]) if isinstance(data, dict) else None
        if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
            raise _ControlError(400, 'body must be a user object or {"users": [...]}')
        seeded = []
        with self.store.lock:
            for number, record in enumerate(records):
                seeded.append(self._seed_one(number, record).view())
        self.store.save()
        return seeded

    def _seed_one(self, number: int, record: dict[str, Any]) -> User:
        user_id = record.get("third_party_user_id")
        if not isinstance(user_id, str) or not THIRD_PARTY_USER_ID_PATTERN.fullmatch(user_id):
            raise _ControlError(400, f"users[{number}].third_party_user_id: 1 to 50 of letters, digits and _.:@-")
        status = _status(record.get("status", 0), f"users[{number}].status")
        id_card = record.get("id_card")
        if id_card is not None:
            try:
                id_card = QueryRequest(id_card=id_card, third_party_user_id=user_id).id_card
            except ValidationError:
                raise _ControlError(400, f"users[{number}].id_card: not a valid resident identity number") from None
        user = self.store.users.get(user_id)
        if user is None:
            mobile = record.get("mobile")
            if mobile is None:
                mobile = _free_mobile(user_id, self.store.by_mobile)
            if not isinstance(mobile, str) or not MOBILE_PATTERN.fullmatch(mobile):
                raise _ControlError(400, f"users[{number}].mobile: 11 digits starting with 13 to 19")
            if mobile in self.store.by_mobile:
                raise _ControlError(409, f"users[{number}].mobile: already registered to another user")
            user = self.store.add_user(user_id, mobile)
        user.status = status
        if id_card is not None:
            user.id_card = id_card
        elif status >= 1 and user.id_card is None:
            raise _ControlError(400, f"users[{number}].id_card: required for a status >= 1")
        if isinstance(record.get("real_name"), str):
            user.real_name = record["real_name"]
        if record.get("borrower") in ("0", "1"):
            user.borrower = record["borrower"]
        if isinstance(record.get("notify_url"), str):
            user.notify_url = record["notify_url"]
        user.raise_to(status)
        return user

    def _trigger(self, data: dict[str, Any]) -> dict[str, Any]:
        with self.store.lock:
            user = self.store.users.get(str(data.get("third_party_user_id")))
            if user is None:
                raise _ControlError(404, "no such user: register or seed it first")
            status = _status(data.get("status", user.status), "status")
            notify_url = data.get("notify_url") or user.notify_url
            if not isinstance(notify_url, str) or urlsplit(notify_url).scheme not in ("http", "https"):
                raise _ControlError(400, "notify_url: required (the user has none on record) and must be http(s)")
            user.raise_to(status)
            user.notify_url = notify_url
            # The event's level is the one asked for (a late status=1 after a 3 is a real case).
            snapshot = User(**{**user.__dict__, "status": status})
            delivery = self.notify(snapshot, notify_url)
        self.store.save()
        return {"delivery_id": delivery.id, "notify_no": delivery.notify_no, "status": delivery.status}


def _status(value: Any, name: str) -> int:
    text = str(value)
    if isinstance(value, bool) or text not in ("0", "1", "2", "3"):
        raise _ControlError(400, f"{name}: one of 0, 1, 2, 3")
    return int(text)


def _request_no_of(body: bytes, profile: protocol.Profile) -> str | None:
    """The request number of a server call, for echoing in an answer given before reading it properly."""
    fields = rules.request_fields(body, profile)
    return rules.request_no_of(fields, profile) if fields is not None else None


def _free_mobile(user_id: str, taken: dict[str, str]) -> str:
    mobile, salt = mobile_for(user_id), 0
    while mobile in taken:
        salt += 1
        mobile = mobile_for(f"{user_id}#{salt}")
    return mobile


def _control_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise _ControlError(400, "body must be JSON") from None
    if not isinstance(data, dict):
        raise _ControlError(400, "body must be a JSON object")
    return data


def _append_query(url: str, fields: dict[str, str]) -> str:
    """return_url with the fields appended, keeping its own query and fragment."""
    parts = urlsplit(url)
    extra = urlencode(fields)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # a reconciler's burst of queries must not overflow the listen backlog


class _Handler(BaseHTTPRequestHandler):
    sandbox: Sandbox
    protocol_version = "HTTP/1.1"
    server_version = "HtouhuiSandbox/1.0"
    # TCP_NODELAY: the headers and the body go out in two writes; with Nagle's algorithm the body would wait
    # for the client's delayed ACK of the headers (40 ms per answer on a kept-alive connection).
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            answer = self.sandbox.handle(method, self.path, body)
        except Exception:
            logger.exception("sandbox error on %s %s", method, urlsplit(self.path).path)
            answer = _json(500, {"error": "sandbox internal error"})
        if answer.drop_connection:
            self.close_connection = True
            logger.info("%s %s -> held and dropped", method, urlsplit(self.path).path)
            return
        self.send_response(answer.status)
        if answer.content_type:
            self.send_header("Content-Type", answer.content_type)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)
        path = urlsplit(self.path).path
        if path.startswith(STEP_PATH):
            path = STEP_PATH + "…"
        logger.info("%s %s -> %s%s", method, path, answer.status, f" {answer.code}" if answer.code else "")

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default access log; `_serve` logs without query strings or tokens."""


class RunningSandbox:
    """A sandbox serving in background threads; `.url`, `.stop()`, and a context manager."""

    def __init__(self, sandbox: Sandbox, httpd: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self.sandbox = sandbox
        self._httpd = httpd
        self._thread = thread
        host, port = httpd.server_address[:2]
        self.host = str(host)
        self.port = int(port)
        self.url = f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.sandbox.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self.sandbox.deliverer.stop()
        self.sandbox._stopped()

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
