"""The sandbox's memory: users, replayed answers and open-account sessions (optionally saved to a file)."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from htouhui import protocol

STEPS: Final = ("open", "password", "authorise")
STEP_LEVEL: Final = {"open": 1, "password": 2, "authorise": 3}
STEP_TITLES: Final = {
    "open": ("开户", "Open the bank account"),
    "password": ("设置交易密码", "Set the trading password"),
    "authorise": ("缴费授权", "Authorise the fees"),
}
START_STEP: Final = {"0": 0, "1": 1, "2": 2}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def htouhui_user_id_for(partner_id: str, third_party_user_id: str, mobile: str, salt: int = 0) -> str:
    """11 digits, stable for the same merchant user and mobile (also across restarts and resets)."""
    digest = hashlib.sha256(f"{partner_id}|{third_party_user_id}|{mobile}|{salt}".encode()).digest()
    return "1" + f"{int.from_bytes(digest[:8], 'big') % 10**10:010d}"


def luhn_check_digit(digits: str) -> str:
    total = 0
    for index, character in enumerate(reversed(digits)):
        value = int(character)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def bank_card_for(htouhui_user_id: str) -> str:
    """A plausible 19-digit UnionPay debit card number (Luhn-valid), stable per user."""
    digest = hashlib.sha256(f"card|{htouhui_user_id}".encode()).digest()
    body = "621700" + f"{int.from_bytes(digest[:8], 'big') % 10**12:012d}"
    return body + luhn_check_digit(body)


def mobile_for(third_party_user_id: str) -> str:
    """A plausible mobile for a seeded user that did not name one."""
    digest = hashlib.sha256(f"mobile|{third_party_user_id}".encode()).digest()
    return "139" + f"{int.from_bytes(digest[:8], 'big') % 10**8:08d}"


def mask(value: str | None, keep_start: int, keep_end: int) -> str | None:
    if value is None:
        return None
    if len(value) <= keep_start + keep_end:
        return "*" * len(value)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[len(value) - keep_end :]


@dataclass
class User:
    third_party_user_id: str
    mobile: str
    htouhui_user_id: str
    status: int = 0
    borrower: str = "0"
    id_card: str | None = None
    real_name: str | None = None
    bank_card_number: str | None = None
    notify_url: str | None = None
    fail_next_step: str | None = None
    created_at: str = field(default_factory=now_iso)
    updated_at: str = field(default_factory=now_iso)

    def raise_to(self, level: int) -> None:
        """A level never goes down; the bank card appears once the account is opened."""
        if level > self.status:
            self.status = level
        if self.status >= 1 and self.bank_card_number is None:
            self.bank_card_number = bank_card_for(self.htouhui_user_id)
        self.updated_at = now_iso()

    def view(self) -> dict[str, Any]:
        """What `GET /_sandbox/users` shows: personal values masked."""
        return {
            "third_party_user_id": self.third_party_user_id,
            "htouhui_user_id": self.htouhui_user_id,
            "status": str(self.status),
            "borrower": self.borrower,
            "mobile": mask(self.mobile, 3, 4),
            "id_card": mask(self.id_card, 3, 4),
            "bank_card_number": mask(self.bank_card_number, 0, 4),
            "notify_url": self.notify_url,
            "fail_next_step": self.fail_next_step,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass
class Session:
    """One walk through the open-account pages; the token is the only thing in the step URL."""

    token: str
    third_party_user_id: str
    request_no: str
    steps: tuple[str, ...]
    notify_url: str
    return_url: str
    id_card: str
    real_name: str | None
    index: int = 0
    finished: bool = False
    redirect: str | None = None
    return_fault: str | None = None  # "unsigned" or "bad_signature": the openAccount fault for the return

    @property
    def step(self) -> str:
        return self.steps[self.index]


@dataclass
class Replay:
    content: str
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    session_token: str | None = None


class Store:
    """Everything the sandbox remembers, behind one lock."""

    def __init__(self, partner_id: str, state_file: Path | None = None) -> None:
        self.partner_id = partner_id
        self.state_file = state_file
        self.lock = threading.RLock()
        self.users: dict[str, User] = {}
        self.by_mobile: dict[str, str] = {}
        self.by_htouhui_id: dict[str, str] = {}
        self.replays: dict[str, Replay] = {}
        self.sessions: dict[str, Session] = {}
        self.load()

    # --- users ---------------------------------------------------------------------------------

    def add_user(self, third_party_user_id: str, mobile: str) -> User:
        salt = 0
        while True:
            candidate = htouhui_user_id_for(self.partner_id, third_party_user_id, mobile, salt)
            if candidate not in self.by_htouhui_id:
                break
            salt += 1
        user = User(third_party_user_id=third_party_user_id, mobile=mobile, htouhui_user_id=candidate)
        self.users[third_party_user_id] = user
        self.by_mobile[mobile] = third_party_user_id
        self.by_htouhui_id[candidate] = third_party_user_id
        return user

    def new_session(self, **values: Any) -> Session:
        session = Session(token=secrets.token_urlsafe(24), **values)
        self.sessions[session.token] = session
        return session

    def reset(self) -> None:
        with self.lock:
            self.users.clear()
            self.by_mobile.clear()
            self.by_htouhui_id.clear()
            self.replays.clear()
            self.sessions.clear()
            self.save()

    # --- persistence (users only: replays and sessions are short-lived) --------------------------

    def load(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        data = json.loads(self.state_file.read_text(encoding="utf-8"))
        for record in data.get("users", []):
            user = User(**record)
            self.users[user.third_party_user_id] = user
            self.by_mobile[user.mobile] = user.third_party_user_id
            self.by_htouhui_id[user.htouhui_user_id] = user.third_party_user_id

    def save(self) -> None:
        if self.state_file is None:
            return
        with self.lock:
            data = {protocol.PARTNER_FIELD: self.partner_id, "users": [asdict(user) for user in self.users.values()]}
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.state_file.with_suffix(self.state_file.suffix + ".tmp")
            temporary.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
            os.replace(temporary, self.state_file)
