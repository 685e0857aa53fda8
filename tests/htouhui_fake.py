"""An in-process Htouhui for tests: an httpx.MockTransport over the sandbox's own rules (`sandbox.rules`).

Register and query are decided exactly as the sandbox decides them (signature, partner, timestamp window,
replays, codes), on the sandbox's memory (`sandbox.state.Store`), without a socket. On top, what a test
needs: make the next calls fail (`fail`), slow calls down (`delay`), fail every query of one user
(`user_failures`), set what Htouhui knows (`set_status`); every call is counted, so a test can say "one call
to Htouhui". Import: `from htouhui_fake import FakeHtouhui`.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime

import httpx
from sandbox import rules
from sandbox.state import Store, User

from htouhui import protocol
from htouhui.client import DEFAULT_QUERY_PATH, REGISTER_PATH


class FakeHtouhui:
    def __init__(
        self,
        partner_id: str,
        htouhui_private_key: protocol.PrivateKey,
        merchant_public_key: protocol.PublicKey,
        *,
        query_path: str = DEFAULT_QUERY_PATH,
        state: Store | None = None,
        profile: protocol.Profile = protocol.DEFAULT,
    ) -> None:
        self.partner_id = partner_id
        self._key = htouhui_private_key
        self._merchant = rules.Merchant(partner_id, merchant_public_key, profile)
        self.state = state or Store(partner_id)
        self.interfaces = {REGISTER_PATH: "register", query_path: "query"}
        self.calls: Counter[str] = Counter()
        self.failures: dict[str, list[str]] = defaultdict(list)  # interface -> codes to answer next
        self.user_failures: dict[str, str] = {}  # third_party_user_id -> code for every query of that user
        self.delay: dict[str, float] = {}  # interface -> seconds to wait before answering
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self.transport = httpx.MockTransport(self.handle)

    @property
    def users(self) -> dict[str, User]:
        return self.state.users

    # --- controls -----------------------------------------------------------------------------------

    def fail(self, interface: str, *codes: str) -> None:
        """The next calls of `interface` answer these codes ("9999", "2003", ..., or "http_500")."""
        self.failures[interface].extend(codes)

    def set_status(
        self, user: str, status: int, *, id_card: str | None = None, bank_card_number: str | None = None
    ) -> None:
        record = self.users[user]
        record.status = status
        if id_card is not None:
            record.id_card = id_card
        if bank_card_number is not None:
            record.bank_card_number = bank_card_number

    # --- the transport ------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        interface = self.interfaces.get(request.url.path)
        if interface is None:
            return httpx.Response(404)
        with self._lock:
            self.calls[interface] += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            planned = self.failures[interface].pop(0) if self.failures[interface] else None
        try:
            if interface in self.delay:
                time.sleep(self.delay[interface])
            return self._answer(interface, request.content, planned)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, interface: str, body: bytes, planned: str | None) -> httpx.Response:
        if planned == "http_500":
            return httpx.Response(500, text="oops")
        fields = rules.request_fields(body, self._merchant.profile) or {}
        user = fields.get("third_party_user_id", "")
        if planned is None and interface == "query":
            planned = self.user_failures.get(user)
        if planned is not None:  # as the sandbox's `busy` fault: answered before any rule is applied
            extra = {"third_party_user_id": user}
            return self._signed(
                rules.request_no_of(fields, self._merchant.profile),
                planned,
                rules.MESSAGES.get(planned, "planned"),
                extra,
            )
        now = datetime.now(UTC)
        with self.state.lock:
            decision = rules.decide(self.state, interface, body, self._merchant, now)
            if decision.replay is not None:
                return httpx.Response(200, content=decision.replay.body, headers=decision.replay.headers)
            response = self._signed(decision.request_no, decision.code, decision.message, decision.extra)
            rules.remember(self.state, decision, 200, list(response.headers.items()), response.content)
        return response

    def _signed(self, request_no: str | None, code: str, message: str, extra: dict[str, str]) -> httpx.Response:
        now = datetime.now(UTC)
        return httpx.Response(200, json=rules.answer(self._key, self._merchant, request_no, code, message, extra, now))

    # --- what Htouhui sends the merchant ------------------------------------------------------------

    def notification(self, user: str, status: int, notify_no: str, **overrides: str) -> dict[str, str]:
        return rules.notification(
            self._key, self._merchant, self.users[user], status, notify_no, datetime.now(UTC), overrides
        )

    def browser_return(self, user: str, status: int, *, code: str = "0000") -> dict[str, str]:
        now = datetime.now(UTC)
        request_no = protocol.new_request_no("RT")
        return rules.browser_return(
            self._key, self._merchant, self.users[user], request_no, now, code=code, message="ok", status=status
        )
