"""An in-process Htouhui for tests: an httpx.MockTransport that speaks PROTOCOL.md's register and query.

It verifies the merchant's signature, answers signed with Htouhui's test key, keeps users, and lets a
test make a call fail (`fail`), slow a call down (`delay`), or set what Htouhui knows (`set_status`).
It counts every call, so a test can say "one call to Htouhui". Import: `from htouhui_fake import FakeHtouhui`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

import httpx

from htouhui import protocol
from htouhui.client import DEFAULT_QUERY_PATH, REGISTER_PATH


@dataclass
class FakeUser:
    third_party_user_id: str
    mobile: str
    htouhui_user_id: str
    status: int = 0
    id_card: str | None = None
    bank_card_number: str | None = None
    borrower: str = "0"


class FakeHtouhui:
    def __init__(
        self,
        partner_id: str,
        htouhui_private_key: protocol.PrivateKey,
        merchant_public_key: protocol.PublicKey,
        *,
        query_path: str = DEFAULT_QUERY_PATH,
    ) -> None:
        self.partner_id = partner_id
        self._key = htouhui_private_key
        self._merchant = merchant_public_key
        self.query_path = query_path
        self.users: dict[str, FakeUser] = {}
        self.calls: Counter[str] = Counter()
        self.failures: dict[str, list[str]] = defaultdict(list)  # interface -> codes to answer next
        self.user_failures: dict[str, str] = {}  # third_party_user_id -> code for every query of that user
        self.delay: dict[str, float] = {}  # interface -> seconds to wait before answering
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._next_id = 10000
        self.transport = httpx.MockTransport(self.handle)

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
        interface = {REGISTER_PATH: "register", self.query_path: "query"}.get(request.url.path)
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
            fields: dict[str, str] = json.loads(request.content)
            if planned == "http_500":
                return httpx.Response(500, text="oops")
            if not protocol.verify(fields, self._merchant):
                return self._answer(fields, "1001", "signature invalid")
            if fields.get("partner_id") != self.partner_id:
                return self._answer(fields, "1002", "partner_id")
            if planned is not None:
                return self._answer(fields, planned, "planned failure", {"third_party_user_id": ""})
            if interface == "register":
                return self._register(fields)
            return self._query(fields)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _register(self, fields: dict[str, str]) -> httpx.Response:
        user, mobile = fields["third_party_user_id"], fields["mobile"]
        with self._lock:
            known = self.users.get(user)
            if known is not None and known.mobile != mobile:
                return self._answer(fields, "2001", "registered with another mobile", {"third_party_user_id": user})
            if known is None:
                if any(other.mobile == mobile for other in self.users.values()):
                    return self._answer(fields, "2003", "mobile taken", {"third_party_user_id": user})
                self._next_id += 1
                known = self.users[user] = FakeUser(user, mobile, str(self._next_id))
        return self._answer(
            fields, "0000", "ok", {"third_party_user_id": user, "htouhui_user_id": known.htouhui_user_id}
        )

    def _query(self, fields: dict[str, str]) -> httpx.Response:
        user = fields["third_party_user_id"]
        if user in self.user_failures:
            return self._answer(fields, self.user_failures[user], "planned failure", {"third_party_user_id": user})
        known = self.users.get(user)
        if known is None:
            return self._answer(fields, "0000", "ok", {"third_party_user_id": user, "status": "0", "borrower": "0"})
        if known.id_card is not None and known.id_card != fields["id_card"]:
            return self._answer(fields, "2004", "id_card mismatch", {"third_party_user_id": user})
        extra = {
            "third_party_user_id": user,
            "htouhui_user_id": known.htouhui_user_id,
            "status": str(known.status),
            "borrower": known.borrower,
        }
        if known.status >= 1 and known.bank_card_number:
            extra["bank_card_number"] = known.bank_card_number
        return self._answer(fields, "0000", "ok", extra)

    def _answer(
        self, request: dict[str, str], code: str, message: str, extra: dict[str, str] | None = None
    ) -> httpx.Response:
        body = {
            "code": code,
            "message": message,
            "partner_id": request.get("partner_id", ""),
            "request_no": request.get("request_no", ""),
            "timestamp": protocol.china_timestamp(),
            **(extra or {}),
        }
        return httpx.Response(200, json=protocol.signed(body, self._key))

    # --- what Htouhui sends the merchant ------------------------------------------------------------

    def notification(self, user: str, status: int, notify_no: str, **overrides: str) -> dict[str, str]:
        known = self.users[user]
        fields = {
            "partner_id": self.partner_id,
            "notify_no": notify_no,
            "notify_type": "OPEN_ACCOUNT",
            "timestamp": protocol.china_timestamp(),
            "htouhui_user_id": known.htouhui_user_id,
            "third_party_user_id": user,
            "status": str(status),
        }
        if status >= 1 and known.bank_card_number:
            fields["bank_card_number"] = known.bank_card_number
        fields.update(overrides)
        return protocol.signed(fields, self._key)

    def browser_return(self, user: str, status: int, *, code: str = "0000") -> dict[str, str]:
        known = self.users[user]
        fields = {
            "code": code,
            "message": "ok",
            "partner_id": self.partner_id,
            "request_no": protocol.new_request_no("RT"),
            "timestamp": protocol.china_timestamp(),
            "htouhui_user_id": known.htouhui_user_id,
            "third_party_user_id": user,
            "status": str(status),
        }
        return protocol.signed(fields, self._key)
