"""The local stack: keys, moto's server with the template's tables, the sandbox, the HTTP API, schedules, streams
and rules, started together and stopped together."""

from __future__ import annotations

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
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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
    def __init__(self, config: StackConfig, console: Console | None = None) -> None:
        self.config = config
        self.console = console or Console()
        self.stop_event = threading.Event()
        self.template: Template | None = None
        self.pools: dict[str, FunctionPool] = {}
        self.moto: Any = None
        self.sandbox: subprocess.Popen[bytes] | None = None
        self.http: ThreadingHTTPServer | None = None
        self.dynamodb_url = ""
        self.sandbox_url = ""
        self.api_url = ""
        self.events: deque[dict[str, Any]] = deque(maxlen=200)
        self._sandbox_log: IO[bytes] | None = None
        self._serving = False

    # -- start -------------------------------------------------------------------------------------------------
    def start(self) -> None:
        started = time.monotonic()
        config = self.config
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        created = ensure_keys(config.keys_dir)
        api_port = config.api_port or free_port(config.host)
        dynamodb_port = config.dynamodb_port or free_port(config.host)
        sandbox_port = config.sandbox_port or free_port(config.host)
        self.api_url = f"http://{config.host}:{api_port}"
        self.dynamodb_url = f"http://{config.host}:{dynamodb_port}"
        self.sandbox_url = f"http://{config.host}:{sandbox_port}"

        # The API socket first: a busy port fails before anything else starts.
        self.http = _Server((config.host, api_port), _Handler, self)

        self.moto = aws.serial_moto_server(config.host, dynamodb_port)
        self.moto.start()

        self.template = load(config.template, parameter_overrides=config.parameter_overrides)
        descriptions = aws.create_tables(self.dynamodb_url, self.template.tables)
        table_names = {logical: table.name for logical, table in self.template.tables.items()}
        queues = sqs.create_queues(self.dynamodb_url, self.template)

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
            self._start_sandbox(sandbox_port)
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

    def _start_sandbox(self, port: int) -> None:
        config = self.config
        assert self.template is not None
        if not (LOCAL / "sandbox" / "__main__.py").exists():
            self.console.line("warning: local/sandbox is missing; Htouhui calls will fail (HTOUHUI_BASE_URL unused)")
            self.sandbox_url = ""
            return
        environment = dict(os.environ)
        environment["PYTHONPATH"] = os.pathsep.join([str(LOCAL), str(LAYER), environment.get("PYTHONPATH", "")])
        environment["HTOUHUI_PARTNER_ID"] = config.partner_id
        environment["SANDBOX_TIME_SCALE"] = f"{config.time_scale:g}"
        config.logs_dir.mkdir(parents=True, exist_ok=True)
        self._sandbox_log = (config.logs_dir / "sandbox.log").open("ab", buffering=0)
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
        self.sandbox = subprocess.Popen(
            command, env=environment, stdout=self._sandbox_log, stderr=subprocess.STDOUT, cwd=str(ROOT)
        )

        def healthy() -> bool:
            if self.sandbox is not None and self.sandbox.poll() is not None:
                return True
            try:
                with urllib.request.urlopen(f"{self.sandbox_url}/_sandbox/health", timeout=1) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        if not aws.wait_for(healthy, 30, 0.1) or self.sandbox.poll() is not None:
            raise RuntimeError(f"the sandbox did not start; see {config.logs_dir / 'sandbox.log'}")

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


def _relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], stack: Stack) -> None:
        self.stack = stack
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        started = time.monotonic()
        stack = self.server.stack
        request = apigw.HttpRequest(
            method=self.command,
            target=self.path,
            headers=[(name, value) for name, value in self.headers.items() if name.lower() != "transfer-encoding"],
            body=self._body(),
            source_ip=self.client_address[0],
            protocol=self.request_version,
            port=self.server.server_address[1],
        )
        try:
            response, note = stack.handle(request)
        except Exception as exc:
            response, note = apigw.internal_error(), f"local stack error {type(exc).__name__}"
        try:
            self.send_response(response.status)
            for name, value in response.headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            self.wfile.write(b"" if self.command == "HEAD" else response.body)
        except (BrokenPipeError, ConnectionResetError):
            note += ", client gone"
            self.close_connection = True
        if not request.raw_path.startswith("/_local/health"):
            stack.console.line(f"{self.command} {request.raw_path} -> {response.status} in {_ms(started)} ms ({note})")

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the stack logs one line per request itself."""


def run(config: StackConfig) -> int:
    stack = Stack(config)
    stopping = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
    except Exception as exc:
        print(f"the local stack could not start: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    try:
        while not stopping.wait(0.5):
            pass
    finally:
        print("stopping ...", flush=True)
        stack.stop()
        print("stopped", flush=True)
    return 0


__all__ = ["ACCOUNT_ID", "REGION", "Stack", "StackConfig", "ensure_keys", "free_port", "run"]
