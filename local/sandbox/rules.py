"""Htouhui's rules: what it checks in every request, how it registers and answers queries, when it replays an
answer, and what its answers and notifications hold. Pure decisions over the sandbox's memory (`state.Store`):
no HTTP, no threads, no clock of their own (the caller says what time it is and holds `store.lock`).

The sandbox's server (`sandbox.server`) serves them over HTTP; the tests' in-process Htouhui (an httpx transport,
tests/htouhui_fake.py) applies the very same decisions without a socket.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from pydantic import ValidationError

from htouhui import protocol
from htouhui.models import THIRD_PARTY_USER_ID_PATTERN, QueryRequest, RegisterRequest
from sandbox.state import Replay, Store, User

TIMESTAMP_WINDOW_SECONDS: Final = 600
NOTIFY_TYPE: Final = "OPEN_ACCOUNT"
MESSAGES: Final = {
    protocol.SUCCESS: "success",
    "1001": "signature invalid",
    "1003": "request_no reused with different content",
    "1004": "timestamp outside the allowed window",
    "2001": "third_party_user_id already registered with another mobile",
    "2002": "htouhui_user_id unknown or not matching third_party_user_id",
    "2003": "mobile already registered to another third_party_user_id",
    "2004": "id_card does not match the user",
    "3001": "step out of order",
    "9999": "system busy, try again later",
}


class Rejected(Exception):
    """A request Htouhui refuses: its code and message (the code's usual message when none is given)."""

    def __init__(self, code: str, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message or MESSAGES.get(code, "")


@dataclass(frozen=True)
class Merchant:
    """Who may call and how it speaks: the partner id, the public key that verifies what the merchant signs,
    and the protocol profile (PROTOCOL.md §8) both sides use."""

    partner_id: str
    public_key: protocol.PublicKey
    profile: protocol.Profile = protocol.DEFAULT


# --- every request ---------------------------------------------------------------------------------------


def check_common(fields: dict[str, str], merchant: Merchant, now: datetime) -> dict[str, str]:
    """The checks of PROTOCOL.md common to every interface, in Htouhui's order; raises Rejected.

    Returns the request named as the rules read it (`Profile.internal`: partner_id, request_no).
    """
    profile = merchant.profile
    if not fields.get(protocol.SIGN_FIELD):
        raise Rejected("1001", "signature invalid: sign is missing")
    if fields.get(protocol.SIGN_TYPE_FIELD) != profile.sign_type:
        raise Rejected("1001", f"signature invalid: sign_type must be {profile.sign_type}")
    partner_id = fields.get(profile.partner_field)
    if not partner_id:
        raise Rejected("1002", f"{profile.partner_field}: required")
    if partner_id != merchant.partner_id:
        raise Rejected("1002", f"{profile.partner_field}: not a merchant of this sandbox")
    if not protocol.verify(fields, merchant.public_key, profile):
        raise Rejected("1001")
    for name in (profile.request_field, protocol.TIMESTAMP_FIELD, protocol.VERSION_FIELD):
        if not fields.get(name):
            raise Rejected("1002", f"{name}: required")
    if not protocol.REQUEST_NO_PATTERN.fullmatch(fields[profile.request_field]):
        raise Rejected("1002", f"{profile.request_field}: must be 1 to 32 of [0-9A-Za-z_-]")
    if fields[protocol.VERSION_FIELD] != protocol.VERSION:
        raise Rejected("1002", f"version: must be {protocol.VERSION}")
    try:
        sent = profile.parse_timestamp(fields[protocol.TIMESTAMP_FIELD])
    except ValueError:
        raise Rejected("1002", f"timestamp: must be {profile.timestamp_format}") from None
    if abs((sent - now).total_seconds()) > TIMESTAMP_WINDOW_SECONDS:
        raise Rejected("1004")
    return profile.internal(fields)


def content_of(interface: str, fields: dict[str, str]) -> str:
    """What "the same content" means for a replay: every field but the signature and the time of sending."""
    unsigned = (protocol.SIGN_FIELD, protocol.SIGN_TYPE_FIELD, protocol.TIMESTAMP_FIELD)
    kept = {name: value for name, value in fields.items() if name not in unsigned}
    return hashlib.sha256(json.dumps([interface, sorted(kept.items())]).encode("utf-8")).hexdigest()


def business(fields: dict[str, str], model: type[Any]) -> Any:
    """The interface's own fields, validated by the layer's model; the first broken rule is a 1002."""
    names = set(model.model_fields)
    try:
        return model.model_validate({name: value for name, value in fields.items() if name in names})
    except ValidationError as exc:
        error = exc.errors()[0]  # `field: rule`; pydantic's messages never contain the value
        raise Rejected("1002", f"{'.'.join(str(part) for part in error['loc']) or 'body'}: {error['msg']}") from None


def request_fields(body: bytes, profile: protocol.Profile) -> dict[str, str] | None:
    """A server call's fields, JSON or form as the profile says, or None when the body is not that."""
    try:
        text = body.decode("utf-8")
        data: Any = protocol.parse_form(text) if profile.request_encoding == "form" else json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or not all(isinstance(value, str) for value in data.values()):
        return None
    return data


def request_no_of(fields: dict[str, Any], profile: protocol.Profile) -> str | None:
    """The request number to echo, when it is a well-formed one."""
    value = fields.get(profile.request_field)
    return value if isinstance(value, str) and protocol.REQUEST_NO_PATTERN.fullmatch(value) else None


# --- register and query ----------------------------------------------------------------------------------


def register(store: Store, fields: dict[str, str]) -> dict[str, str]:
    """A user per third_party_user_id and per mobile; the same pair again is the same user."""
    request: RegisterRequest = business(fields, RegisterRequest)
    user = store.users.get(request.third_party_user_id)
    if user is not None:
        if user.mobile != request.mobile:
            raise Rejected("2001")
    else:
        if request.mobile in store.by_mobile:
            raise Rejected("2003")
        user = store.add_user(request.third_party_user_id, request.mobile)
    return {"htouhui_user_id": user.htouhui_user_id, "third_party_user_id": user.third_party_user_id}


def query(store: Store, fields: dict[str, str]) -> dict[str, str]:
    """The user's level; an unknown user is at 0; the id_card must be the one the account was opened with."""
    request: QueryRequest = business(fields, QueryRequest)
    user = store.users.get(request.third_party_user_id)
    if user is None:
        return {"third_party_user_id": request.third_party_user_id, "status": "0", "borrower": "0"}
    if user.id_card is not None and user.id_card != request.id_card:
        raise Rejected("2004")
    answer = {
        "htouhui_user_id": user.htouhui_user_id,
        "third_party_user_id": user.third_party_user_id,
        "status": str(user.status),
        "borrower": user.borrower,
    }
    if user.status >= 1 and user.bank_card_number:
        answer["bank_card_number"] = user.bank_card_number
    return answer


INTERFACES: Final = {"register": register, "query": query}


@dataclass
class Decision:
    """Htouhui's answer to one register or query request, before signing.

    `replay`: an earlier answer to send again byte for byte. `content`: set when the answer is to be kept for
    replays of this request_no (`remember`).
    """

    request_no: str | None
    code: str
    message: str
    extra: dict[str, str] = field(default_factory=dict)
    replay: Replay | None = None
    content: str | None = None


def decide(store: Store, interface: str, body: bytes, merchant: Merchant, now: datetime) -> Decision:
    """Register or query (`interface`) on a JSON request body. Hold `store.lock` until the answer is remembered."""
    received = request_fields(body, merchant.profile)
    if received is None:
        return Decision(None, "1002", f"body: must be {merchant.profile.request_encoding} fields")
    echo = {}
    third_party_user_id = received.get("third_party_user_id", "")
    if THIRD_PARTY_USER_ID_PATTERN.fullmatch(third_party_user_id):
        echo["third_party_user_id"] = third_party_user_id
    request_no = request_no_of(received, merchant.profile)
    try:
        fields = check_common(received, merchant, now)
    except Rejected as rejected:
        return Decision(request_no, rejected.code, rejected.message, echo)
    assert request_no is not None
    content = content_of(interface, fields)
    replay = store.replays.get(request_no)
    if replay is not None:
        if replay.content == content:
            return Decision(request_no, "replay", "", replay=replay)
        return Decision(request_no, "1003", MESSAGES["1003"], echo)
    try:
        answer = INTERFACES[interface](store, fields)
        return Decision(request_no, protocol.SUCCESS, MESSAGES[protocol.SUCCESS], answer, content=content)
    except Rejected as rejected:
        return Decision(request_no, rejected.code, rejected.message, echo, content=content)


def remember(store: Store, decision: Decision, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
    """Keep the answer sent for `decision`, for replays of its request_no."""
    if decision.content is not None and decision.request_no is not None:
        store.replays[decision.request_no] = Replay(decision.content, status, list(headers), body)


# --- what Htouhui signs ----------------------------------------------------------------------------------


def answer(
    key: protocol.PrivateKey,
    merchant: Merchant,
    request_no: str | None,
    code: str,
    message: str,
    extra: dict[str, str],
    now: datetime,
) -> dict[str, str]:
    """A signed answer: the business fields, the code and message, and the request's common fields echoed."""
    fields = {
        **extra,
        "code": code,
        "message": message,
        protocol.PARTNER_FIELD: merchant.partner_id,
        protocol.REQUEST_FIELD: request_no or "",
    }
    return signed_as(merchant, fields, key, now)


def signed_as(merchant: Merchant, fields: dict[str, str], key: protocol.PrivateKey, now: datetime) -> dict[str, str]:
    """Fields of the rules' names, named, timed and signed as the merchant's profile says."""
    profile = merchant.profile
    return protocol.signed({protocol.TIMESTAMP_FIELD: profile.timestamp(now), **profile.external(fields)}, key, profile)


def notification(
    key: protocol.PrivateKey,
    merchant: Merchant,
    user: User,
    status: int,
    notify_no: str,
    now: datetime,
    overrides: dict[str, str] | None = None,
) -> dict[str, str]:
    """A signed OPEN_ACCOUNT notification of `status` for `user` (the bank card once the account is open);
    `overrides` replace fields before signing."""
    fields: dict[str, str] = {
        protocol.PARTNER_FIELD: merchant.partner_id,
        "notify_no": notify_no,
        "notify_type": NOTIFY_TYPE,
        "htouhui_user_id": user.htouhui_user_id,
        "third_party_user_id": user.third_party_user_id,
        "status": str(status),
    }
    if status >= 1 and user.bank_card_number:
        fields["bank_card_number"] = user.bank_card_number
    fields.update(overrides or {})
    return signed_as(merchant, fields, key, now)


def browser_return(
    key: protocol.PrivateKey,
    merchant: Merchant,
    user: User,
    request_no: str,
    now: datetime,
    *,
    code: str = protocol.SUCCESS,
    message: str = "success",
    status: int | None = None,
) -> dict[str, str]:
    """The signed fields Htouhui appends to return_url when the open-account pages end."""
    fields = {
        "code": code,
        "message": message,
        protocol.PARTNER_FIELD: merchant.partner_id,
        protocol.REQUEST_FIELD: request_no,
        "htouhui_user_id": user.htouhui_user_id,
        "third_party_user_id": user.third_party_user_id,
        "status": str(user.status if status is None else status),
    }
    return signed_as(merchant, fields, key, now)
