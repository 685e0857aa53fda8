"""Helpers for tests that drive the Htouhui sandbox over real HTTP (fixtures: `sandbox_fixtures`).

`Receiver` is a notify_url that records posts and answers as told; `signed_request`,
`open_account_form` and `post_json` build and send merchant-signed messages; `valid_id_card` makes
resident identity numbers with a correct check digit. Importing this module puts `local/` on sys.path.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx
from conftest import ROOT

LOCAL = ROOT / "local"
if str(LOCAL) not in sys.path:
    sys.path.insert(0, str(LOCAL))

from sandbox.server import RunningSandbox, Sandbox, SandboxConfig  # noqa: E402

from htouhui import protocol  # noqa: E402
from htouhui.client import ClientOptions, HtouhuiClient, RetryPolicy, Timeouts  # noqa: E402
from htouhui.models import id_card_check_character  # noqa: E402

PARTNER_ID = "P2026000001"

__all__ = [
    "PARTNER_ID",
    "Post",
    "Receiver",
    "RunningSandbox",
    "Sandbox",
    "SandboxConfig",
    "make_client",
    "open_account_form",
    "post_json",
    "signed_request",
    "valid_id_card",
]


def valid_id_card(first17: str = "11010519491231002") -> str:
    return first17 + id_card_check_character(first17)


@dataclass
class Post:
    at: float
    fields: dict[str, str]
    body: bytes


class Receiver:
    """A tiny notify_url: records every POST; answers with `answer(post_number)` -> (status, body)."""

    def __init__(self, answer: Callable[[int], tuple[int, str]] | None = None) -> None:
        self.posts: list[Post] = []
        self.answer = answer or (lambda _n: (200, "SUCCESS"))
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.posts.append(
                        Post(time.monotonic(), dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)), body)
                    )
                    number = len(receiver.posts)
                    receiver._cond.notify_all()
                status, text = receiver.answer(number)
                payload = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=lambda: self._httpd.serve_forever(poll_interval=0.05), daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/htouhui/notify"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Post]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.posts) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"expected {count} notification posts, got {len(self.posts)}")
                self._cond.wait(remaining)
            return list(self.posts)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def make_client(
    url: str,
    merchant_key: protocol.PrivateKey,
    htouhui_key: protocol.PublicKey,
    *,
    attempts: int = 1,
    read_timeout: float = 5.0,
) -> HtouhuiClient:
    options = ClientOptions(
        partner_id=PARTNER_ID,
        base_url=url,
        timeouts=Timeouts(connect=2.0, read=read_timeout),
        retry=RetryPolicy(max_attempts=attempts, total_seconds=30, base_delay=0.01, max_delay=0.02),
    )
    return HtouhuiClient(options, merchant_key, [htouhui_key])


def signed_request(
    business: dict[str, str], key: protocol.PrivateKey, *, request_no: str | None = None, **common: str
) -> dict[str, str]:
    fields = {**business, **protocol.request_common_fields(PARTNER_ID, request_no=request_no)}
    fields.update(common)
    return protocol.signed(fields, key)


def post_json(url: str, fields: dict[str, str]) -> httpx.Response:
    return httpx.post(url, content=json.dumps(fields).encode(), headers={"Content-Type": "application/json"})


def open_account_form(
    key: protocol.PrivateKey,
    *,
    htouhui_user_id: str,
    third_party_user_id: str,
    notify_url: str,
    type: str = "0",
    id_card: str | None = None,
    return_url: str = "http://127.0.0.1:9/htouhui/return?from=sandbox",
    request_no: str | None = None,
) -> dict[str, str]:
    business = {
        "htouhui_user_id": htouhui_user_id,
        "id_card": id_card or valid_id_card(),
        "real_name": "张三",
        "type": type,
        "third_party_user_id": third_party_user_id,
        "notify_url": notify_url,
        "return_url": return_url,
    }
    if type == "2":
        del business["real_name"]
    return signed_request(business, key, request_no=request_no)
