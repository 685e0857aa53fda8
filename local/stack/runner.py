"""The local stack: keys, moto's server with the template's tables, the sandbox, the HTTP API, schedules, streams
and rules, started together and stopped together."""

from __future__ import annotations

import contextlib
import errno
import html
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl

from stack import apigw, aws, sqs
from stack.lambdas import FunctionPool, InvocationFailure, lambda_environment
from stack.template import ACCOUNT_ID, REGION, Template, load, match

ROOT = Path(__file__).resolve().parents[2]
LOCAL = ROOT / "local"
LAYER = ROOT / "layers" / "common"
DEFAULT_PARTNER_ID = "P2026000001"
KEY_FILES = ("merchant_private.pem", "merchant_public.pem", "htouhui_private.pem", "htouhui_public.pem")
# Key sources the template names in a secret store; locally they are the files under .local/keys/.
LOCAL_KEY_SOURCES = {"MERCHANT_PRIVATE_KEY": "merchant_private.pem", "HTOUHUI_PUBLIC_KEY": "htouhui_public.pem"}


def _env_int(environ: dict[str, str], name: str, default: int) -> int:
    value = environ.get(name, "").strip()
    return int(value) if value else default


def _env_float(environ: dict[str, str], name: str, default: float) -> float:
    value = environ.get(name, "").strip()
    return float(value) if value else default


@dataclass
class StackConfig:
    template: Path = ROOT / "template.yaml"
    host: str = "127.0.0.1"
    api_port: int = 3000
    dynamodb_port: int = 5000
    sandbox_port: int = 3100
    keys_dir: Path = ROOT / ".local" / "keys"
    logs_dir: Path = ROOT / ".local" / "logs"
    partner_id: str = DEFAULT_PARTNER_ID
    profile: str = "default"  # HTOUHUI_PROFILE: both sides, the functions and the sandbox, speak it
    time_scale: float = 1.0
    schedule_seconds: float = 30.0
    sandbox: bool = True
    function_logs: str = "file"  # "file" (.local/logs/<Function>.log) or "console"
    max_concurrency: int = 4
    parameter_overrides: dict[str, str] = field(default_factory=dict)
    env_vars: dict[str, dict[str, str]] = field(default_factory=dict)  # sam's --env-vars shape

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> StackConfig:
        env = dict(os.environ if environ is None else environ)
        config = cls()
        if env.get("STACK_TEMPLATE"):
            config.template = Path(env["STACK_TEMPLATE"])
        config.host = env.get("STACK_HOST") or config.host
        config.api_port = _env_int(env, "API_PORT", config.api_port)
        config.dynamodb_port = _env_int(env, "DYNAMODB_PORT", config.dynamodb_port)
        config.sandbox_port = _env_int(env, "SANDBOX_PORT", config.sandbox_port)
        if env.get("HTOUHUI_KEYS_DIR"):
            config.keys_dir = Path(env["HTOUHUI_KEYS_DIR"])
        if env.get("STACK_LOGS_DIR"):
            config.logs_dir = Path(env["STACK_LOGS_DIR"])
        config.partner_id = env.get("HTOUHUI_PARTNER_ID") or config.partner_id
        config.profile = env.get("HTOUHUI_PROFILE") or config.profile
        config.time_scale = _env_float(env, "SANDBOX_TIME_SCALE", config.time_scale)
        config.schedule_seconds = _env_float(env, "LOCAL_SCHEDULE_SECONDS", config.schedule_seconds)
        config.sandbox = env.get("STACK_SANDBOX", "1").strip().lower() not in ("0", "false", "no", "off")
        config.function_logs = env.get("STACK_FUNCTION_LOGS") or config.function_logs
        config.max_concurrency = _env_int(env, "STACK_MAX_CONCURRENCY", config.max_concurrency)
        return config


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class Listener:
    """One port the stack listens on, and the variable that moves it."""

    what: str
    variable: str
    port: int


class PortUnavailable(RuntimeError):
    """A port the stack needs is taken (or not ours to take): the message names the variable that moves it."""

    def __init__(self, listener: Listener, host: str, reason: str = "is in use") -> None:
        self.listener = listener
        other = next_free_port(host, listener.port)
        example = f"e.g. `{listener.variable}={other} make run`; " if other else ""
        super().__init__(
            f"port {listener.port} ({listener.what}) {reason}: set {listener.variable}=… to use another "
            f"({example}0 picks any free port)"
        )


class StartFailure(RuntimeError):
    """The stack cannot start; the message says why and where to look."""


def port_taken(host: str, port: int) -> str | None:
    """Why host:port cannot be ours ("is in use", "is not ours to take: Permission denied"), or None when free."""
    try:
        aws.listening_socket(host, port).close()
    except OSError as error:
        return "is in use" if error.errno == errno.EADDRINUSE else f"cannot be listened on ({error.strerror})"
    # A specific address can bind beside a wildcard listener on some systems (macOS's AirPlay holds *:5000):
    # whatever answers a connection is someone else's.
    target = "127.0.0.1" if host in ("0.0.0.0", "") else host
    with socket.socket(socket.AF_INET6 if ":" in target else socket.AF_INET) as probe:
        probe.settimeout(0.5)
        return "is in use" if probe.connect_ex((target, port)) == 0 else None


def next_free_port(host: str, after: int) -> int | None:
    """The first free port above `after` (within a few), to suggest instead."""
    for port in range(after + 1, min(after + 20, 65536)):
        if port_taken(host, port) is None:
            return port
    return None


def ensure_keys(folder: Path) -> list[Path]:
    """Both key pairs under `folder`, made on the first run; returns the files it created."""
    from htouhui import protocol

    folder.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    for side in ("merchant", "htouhui"):
        private, public = folder / f"{side}_private.pem", folder / f"{side}_public.pem"
        if private.exists() and public.exists():
            continue
        if private.exists():
            key = protocol.load_private_key(private.read_bytes())
        else:
            key = protocol.generate_private_key()
            private.write_bytes(protocol.private_pem(key))
            private.chmod(0o600)
            created.append(private)
        public.write_bytes(protocol.public_pem(key))
        created.append(public)
    return created


class Console:
    """One line per event on stdout; never bodies, never personal data."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def line(self, text: str) -> None:
        with self.lock:
            stamp = datetime.now().strftime("%H:%M:%S")
            self.stream.write(f"{stamp} {text}\n")
            self.stream.flush()


class Stack:
    def __init__(
        self,
        config: StackConfig,
        console: Console | None = None,
        *,
        spawning: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        self.config = config
        self.console = console or Console()
        self.spawning = spawning  # around each child's start: a signal must not land between fork and bookkeeping
        self.stop_event = threading.Event()
        self.template: Template | None = None
        self.pools: dict[str, FunctionPool] = {}
        self.moto: Any = None
        self.sandbox: subprocess.Popen[bytes] | None = None
        self.http: apigw.ApiServer | None = None
        self.dynamodb_url = ""
        self.sandbox_url = ""
        self.api_url = ""
        self.events: deque[dict[str, Any]] = deque(maxlen=200)
        self.queue_urls: dict[str, str] = {}  # logical id -> URL on moto (health: what `STACK=local` resolves)
        self._sandbox_log: IO[bytes] | None = None
        self._serving = False

    # -- start -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        started = time.monotonic()
        config = self.config
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        # Every port first: a busy one fails before anything starts, naming the variable that moves it.
        api, dynamodb, sandbox = self.check_ports()
        with self.spawning():  # a half-written key would break every later start
            created = ensure_keys(config.keys_dir)
        api_port = api.port or free_port(config.host)
        dynamodb_port = dynamodb.port or free_port(config.host)
        sandbox_port = sandbox.port or free_port(config.host)
        self.api_url = f"http://{config.host}:{api_port}"
        self.dynamodb_url = f"http://{config.host}:{dynamodb_port}"
        self.sandbox_url = f"http://{config.host}:{sandbox_port}"

        with _explained(api, config.host):
            self.http = apigw.ApiServer((config.host, api_port), self.handle, self.console.line)

        self.moto = aws.serial_moto_server(config.host, dynamodb_port)
        with _explained(dynamodb, config.host):
            self.moto.start()  # binds here, in this thread: ours once it returns

        self.template = load(config.template, parameter_overrides=config.parameter_overrides)
        descriptions = aws.create_tables(self.dynamodb_url, self.template.tables)
        table_names = {logical: table.name for logical, table in self.template.tables.items()}
        queues = sqs.create_queues(self.dynamodb_url, self.template)
        self.queue_urls = queues.refs
        aws.create_buckets(self.dynamodb_url, self.template.buckets)

        def attribute(logical: str, name: str) -> Any:
            if logical in queues.by_logical:
                return queues.attribute(logical, name)
            if logical in descriptions and name == "StreamArn":
                return descriptions[logical].get("LatestStreamArn")
            if logical in descriptions and name == "Arn":
                return descriptions[logical].get("TableArn")
            return None

        self.template = load(
            config.template,
            parameter_overrides=config.parameter_overrides,
            table_names=table_names,
            attributes=attribute,
            resource_refs=queues.refs,
        )
        if config.sandbox:
            self._start_sandbox(sandbox, sandbox_port)
        for logical, function in self.template.functions.items():
            environment = lambda_environment(function, self.overrides(logical))
            log_path = None if config.function_logs == "console" else config.logs_dir / f"{logical}.log"
            self.pools[logical] = FunctionPool(
                function, environment, log_path=log_path, max_concurrency=config.max_concurrency
            )

        bus = aws.EventBus(self.dynamodb_url, self.stop_event, on_event=self._on_bus_event)
        for name in {*self.template.buses.values(), *self._bus_names()}:
            bus.observe(name)
        for rule in self.template.rules:
            bus.add_rule(rule, self.pools[rule.function])
        sqs.add_rules(bus, self.template, queues)
        sqs.start(self.dynamodb_url, self.template, queues, self.pools, self.stop_event, on_invoke=self._on_queue)
        for source in self.template.streams:
            arn = descriptions.get(source.table or "", {}).get("LatestStreamArn") or source.stream_arn
            if not arn:
                self.console.line(f"warning: no stream for {source.function}.{source.event}; not fed locally")
                continue
            aws.StreamPoller(
                self.dynamodb_url, source, arn, self.pools[source.function], self.stop_event, on_invoke=self._on_stream
            ).start()
        for schedule in self.template.schedules:
            threading.Thread(target=self._schedule_loop, args=(schedule,), name="schedule", daemon=True).start()

        threading.Thread(target=self.http.serve_forever, name="api", daemon=True).start()
        self._serving = True
        self._banner(created, time.monotonic() - started)

    def check_ports(self) -> tuple[Listener, Listener, Listener]:
        """The API's, DynamoDB's and the sandbox's ports, each free (or 0: any free port) and distinct."""
        config = self.config
        listeners = (
            Listener("the API", "API_PORT", config.api_port),
            Listener("DynamoDB, moto", "DYNAMODB_PORT", config.dynamodb_port),
            Listener("the sandbox", "SANDBOX_PORT", config.sandbox_port),
        )
        needed = [listener for listener in listeners[: 3 if config.sandbox else 2] if listener.port]
        seen: dict[int, Listener] = {}
        for listener in needed:
            if listener.port in seen:
                raise StartFailure(
                    f"{seen[listener.port].variable} and {listener.variable} are both {listener.port}: "
                    "set one of them to another port"
                )
            seen[listener.port] = listener
            reason = port_taken(config.host, listener.port)
            if reason:
                raise PortUnavailable(listener, config.host, reason)
        return listeners

    def overrides(self, logical: str) -> dict[str, str]:
        """The local values that replace the cloud's in every function's environment."""
        config = self.config
        assert self.template is not None
        function = self.template.functions[logical]
        values = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_ENDPOINT_URL": self.dynamodb_url,
            "AWS_ENDPOINT_URL_DYNAMODB": self.dynamodb_url,
            "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": self.dynamodb_url,
            "AWS_ENDPOINT_URL_EVENTS": self.dynamodb_url,
            "HTOUHUI_PARTNER_ID": config.partner_id,
            "HTOUHUI_PROFILE": config.profile,
            "HTOUHUI_BASE_URL": self.sandbox_url,
            "SANDBOX_TIME_SCALE": f"{config.time_scale:g}",
            "PUBLIC_BASE_URL": self.api_url,
            "FRONTEND_RETURN_URL": f"{self.api_url}/_local/return",
            "ALLOWED_RETURN_HOSTS": f"{config.host},localhost",
            "LOCAL_STACK": "1",
        }
        for name, file_name in LOCAL_KEY_SOURCES.items():
            values[name] = f"file:{(config.keys_dir / file_name).resolve()}"
        for name, value in function.environment.items():
            if name not in values and value.startswith(("secretsmanager:", "ssm:")):
                values[name] = ""  # e.g. HTOUHUI_PUBLIC_KEY_NEXT: no second key locally
        values.update(config.env_vars.get("Parameters", {}))
        values.update(config.env_vars.get(logical, {}))
        return values

    def _bus_names(self) -> set[str]:
        assert self.template is not None
        names = {rule.bus or "default" for rule in self.template.rules}
        for function in self.template.functions.values():
            if function.environment.get("EVENT_BUS_NAME"):
                names.add(function.environment["EVENT_BUS_NAME"].rsplit("/", 1)[-1])
        return names or {"default"}

    def _start_sandbox(self, listener: Listener, port: int) -> None:
        config = self.config
        assert self.template is not None
        if not (LOCAL / "sandbox" / "__main__.py").exists():
            self.console.line("warning: local/sandbox is missing; Htouhui calls will fail (HTOUHUI_BASE_URL unused)")
            self.sandbox_url = ""
            return
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join([str(LOCAL), str(LAYER), environment.get("PYTHONPATH", "")])
        environment["HTOUHUI_PARTNER_ID"] = config.partner_id
        environment["HTOUHUI_PROFILE"] = config.profile
        environment["SANDBOX_TIME_SCALE"] = f"{config.time_scale:g}"
        config.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = config.logs_dir / "sandbox.log"
        self._sandbox_log = log_path.open("ab", buffering=0)
        log_start = self._sandbox_log.tell()  # this start's lines only: earlier runs' are in the file too
        query_paths = {
            f.environment["HTOUHUI_QUERY_PATH"]
            for f in self.template.functions.values()
            if "HTOUHUI_QUERY_PATH" in f.environment
        }
        command = [
            sys.executable, "-m", "sandbox", "serve",
            "--host", config.host, "--port", str(port),
            "--keys-dir", str(config.keys_dir.resolve()),
            "--partner-id", config.partner_id,
            "--time-scale", f"{config.time_scale:g}",
            *(["--query-path", query_paths.pop()] if len(query_paths) == 1 else []),
        ]  # fmt: skip
        with self.spawning():
            self.sandbox = subprocess.Popen(
                command, env=environment, stdout=self._sandbox_log, stderr=subprocess.STDOUT, cwd=str(ROOT)
            )
        child = self.sandbox
        # Ours once our child says it listens (it prints its URL after binding) and the URL answers: a health
        # answer alone may come from someone else's sandbox on that port.
        banner = f"Htouhui sandbox on {self.sandbox_url}".encode()

        def our_child_answers() -> bool:
            if child.poll() is not None:
                return True  # done waiting: it died
            if banner not in _read_from(log_path, log_start):
                return False
            try:
                with urllib.request.urlopen(f"{self.sandbox_url}/_sandbox/health", timeout=1) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        answered = aws.wait_for(our_child_answers, 30, 0.05)
        if child.poll() is not None:
            output = _read_from(log_path, log_start).decode("utf-8", "replace")
            if "Address already in use" in output:
                raise PortUnavailable(listener, config.host)
            last = output.strip().splitlines()[-1:] or ["no output"]
            raise StartFailure(
                f"the sandbox exited at start (status {child.returncode}: {last[0][:200]}); see {_relative(log_path)}"
            )
        if not answered:
            raise StartFailure(f"the sandbox did not answer within 30 s; see {_relative(log_path)}")

    # -- loops ---------------------------------------------------------------------------------------------------
    def _schedule_loop(self, schedule: Any) -> None:
        while not self.stop_event.wait(self.config.schedule_seconds):
            self.fire_schedule(schedule)

    def fire_schedule(self, schedule: Any) -> str:
        event = (
            json.loads(schedule.input)
            if schedule.input
            else aws.scheduled_event(schedule.kind, schedule.name or f"{schedule.function}-{schedule.event}")
        )
        started = time.monotonic()
        try:
            self.pools[schedule.function].invoke(event)
            outcome = "ok"
        except InvocationFailure as failure:
            outcome = f"failed ({failure.error_type})"
        self.console.line(f"schedule {schedule.event} -> {schedule.function} {outcome} in {_ms(started)} ms")
        return outcome

    def _on_stream(self, function: str, count: int, outcome: str) -> None:
        self.console.line(f"stream -> {function} {count} record(s) {outcome}")

    def _on_queue(self, function: str, queue: str, count: int, outcome: str) -> None:
        self.console.line(f"queue {queue} -> {function} {count} message(s) {outcome}")

    def _on_bus_event(self, where: str, source: str, detail_type: str) -> None:
        if where.startswith("rule "):
            self.console.line(f"{where} -> {source} {detail_type}")
        else:
            self.events.append({"bus": where, "source": source, "detail-type": detail_type})
            self.console.line(f"event on {where}: {source} {detail_type}")

    # -- report and stop -----------------------------------------------------------------------------------------
    def _banner(self, created: list[Path], seconds: float) -> None:
        assert self.template is not None
        config = self.config
        relative = _relative
        lines = [f"local stack from {relative(self.template.path)}"]
        lines.append(f"  API       {self.api_url}  ({len(self.template.routes)} routes; IAM auth not enforced locally)")
        for route in self.template.routes:
            function = self.template.functions[route.function]
            lines.append(
                f"    {route.method:<6} {route.path:<44} -> {route.function} "
                f"({relative(function.code_uri)}/{function.handler}, auth {route.auth})"
            )
        tables = ", ".join(f"{table.name}" for table in self.template.tables.values()) or "none"
        lines.append(f"  DynamoDB  {self.dynamodb_url}  (moto; also events, sqs) tables: {tables}")
        if self.sandbox_url:
            lines.append(
                f"  sandbox   {self.sandbox_url}  (partner {config.partner_id}, time scale {config.time_scale:g}; "
                f"notifications go to {self.api_url}/htouhui/notify)"
            )
        for schedule in self.template.schedules:
            lines.append(
                f"  schedule  {schedule.function} every {config.schedule_seconds:g} s (template: {schedule.expression})"
            )
        for source in self.template.streams:
            lines.append(f"  stream    {source.table} -> {source.function} (batch {source.batch_size})")
        for rule in self.template.rules:
            lines.append(
                f"  rule      {json.dumps(rule.pattern, separators=(',', ':'))} on {rule.bus or 'default'} "
                f"-> {rule.function}"
            )
        lines.extend(sqs.banner(self.template))
        lines.append(f"  keys      {relative(config.keys_dir)}/" + (" (created now)" if created else ""))
        where = "this console" if config.function_logs == "console" else f"{relative(config.logs_dir)}/<Function>.log"
        lines.append(f"  logs      function logs in {where}")
        unresolved = [
            item
            for item in self.template.unresolved
            if item.split(".", 1)[1] not in self.overrides(item.split(".", 1)[0])
        ]
        if unresolved:
            lines.append(f"  note      unresolved locally: {', '.join(unresolved)}")
        lines.append(f"ready in {seconds:.1f} s; Ctrl-C stops everything")
        for line in lines:
            self.console.stream.write(line + "\n")
        self.console.stream.flush()

    def stop(self) -> None:
        self.stop_event.set()
        if self.http is not None:
            if self._serving:
                self.http.shutdown()  # waits for serve_forever to return: only when it runs
            self.http.server_close()
        for pool in self.pools.values():
            pool.close()
        if self.sandbox is not None and self.sandbox.poll() is None:
            self.sandbox.terminate()
            try:
                self.sandbox.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.sandbox.kill()
                self.sandbox.wait()
        if self._sandbox_log is not None:
            self._sandbox_log.close()
        if self.moto is not None:
            self.moto.stop()

    def reset(self) -> dict[str, Any]:
        """Forget every user, on both sides: the sandbox first (nothing left to deliver), then every item of the
        template's tables (their streams' REMOVE records match no function's filter)."""
        assert self.template is not None
        sandbox = "not running"
        if self.sandbox_url:
            request = urllib.request.Request(f"{self.sandbox_url}/_sandbox/reset", data=b"", method="POST")
            with urllib.request.urlopen(request, timeout=10) as answer:
                sandbox = "reset" if answer.status == 200 else f"answered {answer.status}"
        dynamodb = aws.client("dynamodb", self.dynamodb_url)
        removed = {table.name: _empty_table(dynamodb, table) for table in self.template.tables.values()}
        self.events.clear()
        self.console.line(f"reset: sandbox {sandbox}; removed {sum(removed.values())} item(s)")
        return {"sandbox": sandbox, "removed": removed}

    def health(self) -> dict[str, Any]:
        assert self.template is not None
        return {
            "status": "ok",
            "template": str(self.template.path),
            "api": self.api_url,
            "dynamodb": self.dynamodb_url,
            "sandbox": self.sandbox_url or None,
            "partner_id": self.config.partner_id,
            "routes": [route.route_key for route in self.template.routes],
            "tables": {logical: table.name for logical, table in self.template.tables.items()},
            "queues": dict(self.queue_urls),
            "buckets": dict(self.template.buckets),
            "event_bus": next(
                (
                    f.environment["EVENT_BUS_NAME"]
                    for f in self.template.functions.values()
                    if "EVENT_BUS_NAME" in f.environment
                ),
                "default",
            ),
            "region": REGION,
            "functions": {
                logical: {"invocations": pool.invocations, "errors": pool.errors, "cold_starts": pool.cold_starts}
                for logical, pool in sorted(self.pools.items())
            },
        }

    # -- HTTP ------------------------------------------------------------------------------------------------------
    def handle(self, request: apigw.HttpRequest) -> tuple[apigw.HttpResponse, str]:
        """Answer one request; returns the response and a note for the log line (the function, cold start)."""
        assert self.template is not None
        path = request.raw_path
        if path.startswith("/_local/"):
            return self._local(request), "local"
        found = match(self.template.routes, request.method, path)
        if found is None:
            return apigw.not_found(), "no route"
        route, parameters = found
        request_id = apigw.new_request_id()
        event = apigw.build_event(request, route, parameters, request_id=request_id)
        pool = self.pools[route.function]
        cold = pool.cold_starts
        try:
            result = pool.invoke(event, trace_id=event["headers"].get("x-amzn-trace-id", ""))
            response = apigw.to_http(result)
            note = route.function
        except InvocationFailure as failure:
            response = apigw.service_unavailable() if failure.kind == "timeout" else apigw.internal_error()
            note = f"{route.function} {failure.kind}: {failure.error_type}"
        if pool.cold_starts != cold:
            note += ", cold start"
        response.headers.append(("apigw-requestid", request_id))
        return response, note

    def _local(self, request: apigw.HttpRequest) -> apigw.HttpResponse:
        path = request.raw_path
        if path == "/_local/health":
            return _json(200, self.health())
        if path == "/_local/reset" and request.method == "POST":
            return _json(200, self.reset())
        if path == "/_local/events" and request.method == "GET":
            return _json(200, {"events": list(self.events)})
        if path == "/_local/schedules" and request.method == "POST":
            assert self.template is not None
            fired = [
                {"function": schedule.function, "outcome": self.fire_schedule(schedule)}
                for schedule in self.template.schedules
            ]
            return _json(200, {"fired": fired})
        if path == "/_local/return" and request.method == "GET":
            query = dict(parse_qsl(request.raw_query, keep_blank_values=True))
            rows = "".join(
                f"<tr><th>{html.escape(name)}</th><td id='{html.escape(name)}'>{html.escape(value)}</td></tr>"
                for name, value in query.items()
            )
            page = (
                "<!doctype html><html><head><meta charset='utf-8'><title>Back at the merchant</title></head><body>"
                "<h1>Back at the merchant</h1><p>The local stand-in for FRONTEND_RETURN_URL. Htouhui's return was "
                f"verified and stored; the merchant's page would show:</p><table>{rows}</table></body></html>"
            )
            return apigw.HttpResponse(200, [("content-type", "text/html; charset=utf-8")], page.encode("utf-8"))
        return apigw.not_found()


def _json(status: int, body: Any) -> apigw.HttpResponse:
    return apigw.HttpResponse(status, [("content-type", "application/json")], json.dumps(body).encode("utf-8"))


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _empty_table(dynamodb: Any, table: Any) -> int:
    """Delete every item of `table` (a template table); returns how many."""
    keys = [key["AttributeName"] for key in table.properties["KeySchema"]]
    names = {f"#k{n}": key for n, key in enumerate(keys)}
    request: dict[str, Any] = {
        "TableName": table.name,
        "ConsistentRead": True,
        "ProjectionExpression": ", ".join(names),
        "ExpressionAttributeNames": names,
    }
    removed = 0
    while True:
        page = dynamodb.scan(**request)
        items = page.get("Items", [])
        for start in range(0, len(items), 25):
            deletes = [{"DeleteRequest": {"Key": item}} for item in items[start : start + 25]]
            unprocessed: dict[str, Any] = {table.name: deletes}
            while unprocessed:
                unprocessed = dynamodb.batch_write_item(RequestItems=unprocessed).get("UnprocessedItems") or {}
        removed += len(items)
        if "LastEvaluatedKey" not in page:
            return removed
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _read_from(path: Path, offset: int) -> bytes:
    with path.open("rb") as file:
        file.seek(offset)
        return file.read()


@contextlib.contextmanager
def _explained(listener: Listener, host: str) -> Iterator[None]:
    """A failed bind of `listener`'s port, as a message naming the variable that moves it."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        reason = "is in use" if error.errno == errno.EADDRINUSE else f"cannot be listened on ({error.strerror})"
        raise PortUnavailable(listener, host, reason) from error


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class StartInterrupted(BaseException):
    """SIGINT or SIGTERM arrived during start-up (a BaseException: no `except Exception` on the way swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class _Signals:
    """SIGINT and SIGTERM: during start-up they interrupt it at once (StartInterrupted), except while a child is
    being spawned (`spawning()`: then as soon as it is recorded, so that stop() can end it); once the stack
    runs, they ask it to stop; while it stops, they are only noted."""

    def __init__(self) -> None:
        self.phase = "starting"
        self.stop_requested = threading.Event()
        self._spawning = 0
        self._pending: int | None = None

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stop_requested.set()
        if self.phase != "starting":
            return
        if self._spawning:
            self._pending = signum
            return
        self.phase = "stopping"
        raise StartInterrupted(signum)

    @contextlib.contextmanager
    def spawning(self) -> Iterator[None]:
        self._spawning += 1
        try:
            yield
        finally:
            self._spawning -= 1
            if not self._spawning and self._pending is not None and self.phase == "starting":
                self.phase = "stopping"
                raise StartInterrupted(self._pending)


def run(config: StackConfig) -> int:
    signals = _Signals()
    signals.install()
    stack = Stack(config, spawning=signals.spawning)
    try:
        try:
            stack.start()
        except StartInterrupted:
            raise
        except Exception as exc:
            signals.phase = "stopping"
            print(f"the local stack could not start: {exc}", file=sys.stderr, flush=True)
            return 1
        signals.phase = "running"
        while not signals.stop_requested.wait(0.5):
            pass
        print("stopping ...", flush=True)
        return 0
    except StartInterrupted as interrupted:
        print(f"{interrupted} during start-up: stopping ...", file=sys.stderr, flush=True)
        return 128 + interrupted.signum
    finally:
        signals.phase = "stopping"
        stack.stop()
        print("stopped", flush=True)


__all__ = [
    "ACCOUNT_ID",
    "REGION",
    "PortUnavailable",
    "Stack",
    "StackConfig",
    "StartFailure",
    "ensure_keys",
    "free_port",
    "run",
]
