"""PROTOCOL.md §9 through the notify handler: what a real Htouhui may legitimately send is acknowledged and
recorded; what decides state stays strict; every refusal logs its reason, field and rule, and is counted.

Each case starts from a notification (or browser return) signed with the test Htouhui key exactly as a
gateway would send it, then varies it the way real gateways do: empty fields, masked or spaced card numbers,
extra signed fields, empty pairs in the form, another notify_type. Every case asserts the acknowledgement
and the stored state.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from helpers import PARTNER_ID, Stack, http_event, json_body, log_entries

from htouhui import protocol
from onboarding import runtime

pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

USER = "u-tolerant-1"
FULL_CARD = "6222020200112233445"
MASKED_CARD = "622202******3445"
SPACED_CARD = "6222 0202 0011 2233 445"
STAGES = {0: "OPEN_FAILED", 1: "ACCOUNT_OPENED", 2: "PASSWORD_SET", 3: "COMPLETED"}
Sign = Callable[[dict[str, str]], dict[str, str]]


@pytest.fixture
def registered(stack: Stack) -> Stack:
    assert stack.register(USER, "13812349001")["statusCode"] == 201
    return stack


@pytest.fixture
def sign(htouhui_private_key: Any) -> Sign:
    return lambda fields: protocol.signed(fields, htouhui_private_key)


def notification(stack: Stack, status: int, **extra: str) -> dict[str, str]:
    """The fields of an OPEN_ACCOUNT notification before signing (no card: cases add what they need)."""
    return {
        "partner_id": PARTNER_ID,
        "notify_no": "N" + uuid.uuid4().hex[:20],
        "notify_type": "OPEN_ACCOUNT",
        "timestamp": protocol.china_timestamp(),
        "htouhui_user_id": stack.user_item(USER)["htouhui_user_id"]["S"],
        "third_party_user_id": USER,
        "status": str(status),
        **extra,
    }


def stored(stack: Stack) -> tuple[int | None, str | None]:
    item = stack.user_item(USER)
    status = item.get("status", {}).get("N")
    return (int(status) if status is not None else None), item.get("bank_card_number", {}).get("S")


def answer_of(result: dict[str, Any]) -> tuple[int, str]:
    return result["statusCode"], result["body"]


def log_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


# --- notifications that must be acknowledged and recorded -----------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    """A variation: the body Htouhui sends (from the fields and the signer), the level and card then stored."""

    body: Callable[[Stack, Sign], str]
    status: int
    card: str | None


def _signed_then(status: int, signed_extra: dict[str, str], after: str = "", **unsigned: str) -> Callable[..., str]:
    """The notification with `signed_extra` signed, the `unsigned` pairs added after signing, `after` appended."""

    def build(stack: Stack, sign: Sign) -> str:
        fields = notification(stack, status, **signed_extra)
        signed = sign({name: value for name, value in fields.items() if name not in unsigned})
        return urlencode({**signed, **unsigned}) + after

    return build


ACCEPTED = {
    # the first case: status 0 with bank_card_number= present but empty (dropped from the canonical string)
    "status-0-empty-card": Accepted(_signed_then(0, {}, bank_card_number=""), 0, None),
    "status-1-empty-card": Accepted(_signed_then(1, {}, bank_card_number=""), 1, None),
    "masked-card": Accepted(_signed_then(1, {"bank_card_number": MASKED_CARD}), 1, MASKED_CARD),
    "spaced-card": Accepted(_signed_then(2, {"bank_card_number": SPACED_CARD}), 2, SPACED_CARD),
    "hyphenated-card": Accepted(_signed_then(2, {"bank_card_number": "6222-0202-0011-2233"}), 2, "6222-0202-0011-2233"),
    "card-over-30-ignored": Accepted(_signed_then(3, {"bank_card_number": "6" * 31}), 3, None),
    "extra-signed-fields": Accepted(
        _signed_then(3, {"bank_card_number": FULL_CARD, "memo": "开户成功", "sub_code": "X-1", "version": "1.0"}),
        3,
        FULL_CARD,
    ),
    "extra-empty-fields": Accepted(_signed_then(1, {}, memo="", error_code="", bank_card_number=""), 1, None),
    "empty-timestamp": Accepted(_signed_then(1, {}, timestamp=""), 1, None),
    "other-timestamp-format": Accepted(_signed_then(1, {"timestamp": "2026-11-28 15:40:00"}), 1, None),
    "trailing-ampersand": Accepted(_signed_then(2, {}, after="&"), 2, None),
    "empty-pairs-everywhere": Accepted(
        lambda stack, sign: "&&" + urlencode(sign(notification(stack, 2))).replace("&", "&&") + "&", 2, None
    ),
    "trailing-crlf": Accepted(_signed_then(3, {}, after="\r\n"), 3, None),
    "notify_no-printable": Accepted(
        lambda stack, sign: urlencode(sign(notification(stack, 1, notify_no="通知#1 (重试)/2"))), 1, None
    ),
    "shuffled-order": Accepted(
        lambda stack, sign: urlencode(dict(reversed(list(sign(notification(stack, 1)).items())))), 1, None
    ),
    "lowercase-escapes": Accepted(
        lambda stack, sign: urlencode(sign(notification(stack, 1, memo="张三 /=&"))).replace("%E5", "%e5"), 1, None
    ),
}


@pytest.mark.parametrize("case", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_variations_a_real_gateway_sends_are_acknowledged_and_recorded(
    registered: Stack, sign: Sign, case: Accepted
) -> None:
    body = case.body(registered, sign)
    assert answer_of(registered.notify(body)) == (200, "SUCCESS")
    assert stored(registered) == (case.status, case.card)
    [record] = registered.history()
    assert record["status"]["N"] == str(case.status) and "unhandled" not in record
    assert record["raw"]["M"]["sign"]["S"]  # kept as received: it can be verified again
    view = json_body(registered.query(USER))
    assert view["status"] == case.status
    assert view["stage"] == STAGES[case.status]
    if case.card:
        assert view["bank_card_number"] == "****" + case.card.replace(" ", "").replace("-", "")[-4:]


def test_a_redelivery_of_a_tolerated_notification_is_a_duplicate(registered: Stack, sign: Sign) -> None:
    body = urlencode({**sign(notification(registered, 0)), "bank_card_number": ""})
    assert answer_of(registered.notify(body)) == (200, "SUCCESS")
    assert answer_of(registered.notify(body)) == (200, "SUCCESS")
    assert len(registered.history()) == 1 and stored(registered) == (0, None)


# --- another notify_type: acknowledged, kept as unhandled, counted, no status changed ---------------------------------


@pytest.mark.parametrize("notify_type", ["WITHDRAW", "BIND_CARD_CHANGED", None])
def test_a_notification_of_another_type_is_kept_and_changes_nothing(
    registered: Stack, sign: Sign, notify_type: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    fields = notification(registered, 3, bank_card_number=FULL_CARD)
    del fields["notify_type"]
    if notify_type:
        fields["notify_type"] = notify_type
    signed = sign(fields)
    capsys.readouterr()
    assert answer_of(registered.notify(signed)) == (200, "SUCCESS")
    assert stored(registered) == (None, None)
    [record] = registered.history()
    assert record["unhandled"] == {"BOOL": True} and record["notify_no"]["S"] == signed["notify_no"]
    assert record["raw"]["M"]["sign"]["S"] == signed["sign"]
    assert record.get("notify_type", {}).get("S") == notify_type
    assert answer_of(registered.notify(signed)) == (200, "SUCCESS")  # a redelivery: still one record
    assert len(registered.history()) == 1
    metrics = [line for line in log_lines(capsys.readouterr().out) if "_aws" in line]
    assert any("NotificationsUnhandled" in line for line in metrics)


# --- what stays strict: refused with 400 FAIL, nothing changed, reason/field/rule logged, counted twice -------------


@dataclass(frozen=True)
class Refused:
    body: Callable[[Stack, Sign], str]
    reason: str
    field: str


def _without(name: str, status: int = 1) -> Callable[..., str]:
    def build(stack: Stack, sign: Sign) -> str:
        fields = notification(stack, status)
        del fields[name]
        return urlencode(sign(fields))

    return build


REFUSED = {
    "status-missing": Refused(_without("status"), "invalid_field", "status"),
    "status-empty": Refused(
        lambda st, sign: urlencode({**sign(notification(st, 1)), "status": ""}), "bad_signature", "sign"
    ),
    "status-4": Refused(lambda st, sign: urlencode(sign(notification(st, 4))), "invalid_field", "status"),
    "status-padded": Refused(
        lambda st, sign: urlencode(sign({**notification(st, 1), "status": " 1"})), "invalid_field", "status"
    ),
    "notify_no-missing": Refused(_without("notify_no"), "invalid_field", "notify_no"),
    "user-id-missing": Refused(_without("third_party_user_id"), "invalid_field", "third_party_user_id"),
    "htouhui-id-missing": Refused(_without("htouhui_user_id"), "invalid_field", "htouhui_user_id"),
    "partner-missing": Refused(_without("partner_id"), "other_partner", "partner_id"),
    "other-partner": Refused(
        lambda st, sign: urlencode(sign({**notification(st, 1), "partner_id": "P2026000009"})),
        "other_partner",
        "partner_id",
    ),
    "unknown-user": Refused(
        lambda st, sign: urlencode(sign({**notification(st, 1), "third_party_user_id": "u-nobody"})),
        "unknown_user",
        "third_party_user_id",
    ),
    "other-htouhui-id": Refused(
        lambda st, sign: urlencode(sign({**notification(st, 1), "htouhui_user_id": "99999999999"})),
        "user_mismatch",
        "htouhui_user_id",
    ),
    "sign_type-other": Refused(
        lambda st, sign: urlencode({**sign(notification(st, 1)), "sign_type": "RSA"}), "bad_signature", "sign_type"
    ),
    "tampered": Refused(
        lambda st, sign: urlencode({**sign(notification(st, 1)), "status": "3"}), "bad_signature", "sign"
    ),
    "repeated-name": Refused(
        lambda st, sign: urlencode(sign(notification(st, 1))) + "&status=1", "malformed", "status"
    ),
    "bad-escape": Refused(lambda st, sign: urlencode(sign(notification(st, 1))) + "&memo=%G0", "malformed", "memo"),
    "bad-utf8": Refused(lambda st, sign: urlencode(sign(notification(st, 1))) + "&memo=%FF", "malformed", "memo"),
    "empty-name": Refused(lambda st, sign: urlencode(sign(notification(st, 1))) + "&=x", "malformed", "body"),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_what_decides_state_stays_strict(
    registered: Stack, sign: Sign, case: Refused, capsys: pytest.CaptureFixture[str], log_sink: io.StringIO
) -> None:
    body = case.body(registered, sign)
    capsys.readouterr()
    assert answer_of(registered.notify(body)) == (400, "FAIL")
    assert stored(registered) == (None, None) and registered.history() == []
    [refusal] = [line for line in log_entries(log_sink) if line.get("message") == "notification rejected"]
    assert (refusal["reason"], refusal["field"]) == (case.reason, case.field) and refusal["rule"]
    emf = [line for line in log_lines(capsys.readouterr().out) if "NotificationsRejected" in json.dumps(line)]
    dimension_sets = [line["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0] for line in emf]
    assert any("reason" not in dims for dims in dimension_sets)  # the total, for the alarm
    assert any("reason" in dims for dims in dimension_sets) and any(line.get("reason") == case.reason for line in emf)


def test_no_refusal_log_carries_a_value(registered: Stack, sign: Sign, log_sink: io.StringIO) -> None:
    secret = "SECRET-VALUE-42"
    fields = {**notification(registered, 1), "third_party_user_id": "u-" + secret}
    assert answer_of(registered.notify(urlencode(sign(fields)))) == (400, "FAIL")
    assert answer_of(registered.notify(urlencode(sign(notification(registered, 1))) + "&memo=" + secret + "%G0")) == (
        400,
        "FAIL",
    )
    logged = log_sink.getvalue()
    assert "notification rejected" in logged and secret not in logged


# --- the stored card: masked fills a gap, full replaces masked or a different full (§9) ---------------------


def test_card_numbers_follow_the_replacement_rule(registered: Stack, sign: Sign) -> None:
    def deliver(status: int, card: str) -> None:
        assert answer_of(registered.notify(sign(notification(registered, status, bank_card_number=card)))) == (
            200,
            "SUCCESS",
        )

    deliver(1, MASKED_CARD)
    assert stored(registered) == (1, MASKED_CARD)
    deliver(1, FULL_CARD)  # stale level, but a full number replaces the masked one
    assert stored(registered) == (1, FULL_CARD)
    deliver(2, MASKED_CARD)  # a rise with a masked number keeps the full one
    assert stored(registered) == (2, FULL_CARD)
    deliver(2, "6222 0202 0011 2233 445")  # the same number, spaced: nothing to replace
    assert stored(registered) == (2, FULL_CARD)
    deliver(3, "6217000010001234567")  # another full number (a new card) replaces it
    assert stored(registered) == (3, "6217000010001234567")
    deliver(3, MASKED_CARD)
    assert stored(registered) == (3, "6217000010001234567")


# --- the browser return --------------------------------------------------------------------------------------------


def return_fields(
    stack: Stack, sign: Sign, status: int | None, code: str = "0000", *, omit: tuple[str, ...] = (), **extra: str
) -> dict[str, str]:
    fields = {
        "code": code,
        "message": "开户失败：张三 13812349001",  # Htouhui's free text may echo values: never shown
        "partner_id": PARTNER_ID,
        "request_no": "OA" + uuid.uuid4().hex[:20],
        "timestamp": protocol.china_timestamp(),
        "htouhui_user_id": stack.user_item(USER)["htouhui_user_id"]["S"],
        "third_party_user_id": USER,
        **({"status": str(status)} if status is not None else {}),
        **extra,
    }
    return sign({name: value for name, value in fields.items() if name not in omit})


def browser(stack: Stack, query: str) -> dict[str, Any]:
    event = http_event("GET", "/htouhui/return", query=query, headers={"accept": "text/html"}, iam=False)
    return stack.invoke("notify", event)


def location_query(result: dict[str, Any]) -> dict[str, list[str]]:
    assert result["statusCode"] == 302, result
    return parse_qs(urlsplit(result["headers"]["Location"]).query)


@pytest.mark.parametrize(
    "variation",
    [
        lambda q: q,
        lambda q: q + "&",
        lambda q: "&" + q.replace("&", "&&"),
        lambda q: q + "&message=",
    ],
    ids=["plain", "trailing-ampersand", "empty-pairs", "empty-unsigned-message"],
)
def test_a_successful_return_read_tolerantly_applies_its_level(registered: Stack, sign: Sign, variation: Any) -> None:
    fields = return_fields(registered, sign, 2, omit=("message",), memo="extra signed field")
    page = browser(registered, variation(urlencode(fields)))
    assert page["statusCode"] == 200 and "status 2" in page["body"]
    assert stored(registered) == (2, None)


@pytest.mark.parametrize("code", ["3001", "1002", "9999", "5555"])
def test_a_signed_return_with_another_code_shows_the_code_and_its_meaning(
    registered: Stack, sign: Sign, code: str
) -> None:
    page = browser(registered, urlencode(return_fields(registered, sign, None, code=code)))
    assert page["statusCode"] == 200 and "could not be verified" not in page["body"]
    assert code in page["body"]
    meaning = {"3001": "step out of order", "1002": "parameter invalid", "9999": "system busy", "5555": "unknown"}
    assert meaning[code] in page["body"]
    assert "张三" not in page["body"] and "13812349001" not in page["body"]  # never Htouhui's message
    assert stored(registered) == (None, None)


def test_the_redirect_carries_only_the_returns_own_signed_level_and_code(
    registered: Stack, sign: Sign, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRONTEND_RETURN_URL", "https://shop.example.com/onboarding/done?from=htouhui")
    runtime.reset()
    assert answer_of(registered.notify(sign(notification(registered, 3)))) == (200, "SUCCESS")
    query = location_query(browser(registered, urlencode(return_fields(registered, sign, 1))))
    # the return's own 1, not the stored 3: a replayed old return discloses nothing of today (issue 19)
    assert query == {"from": ["htouhui"], "third_party_user_id": [USER], "status": ["1"]}
    assert stored(registered)[0] == 3  # and it lowered nothing
    failed = location_query(browser(registered, urlencode(return_fields(registered, sign, None, code="3001"))))
    assert failed == {"from": ["htouhui"], "third_party_user_id": [USER], "htouhui_code": ["3001"]}


def test_with_the_store_unavailable_the_redirect_carries_the_returns_verified_level(
    registered: Stack, sign: Sign, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = urlencode(return_fields(registered, sign, 2))
    monkeypatch.setenv("FRONTEND_RETURN_URL", "https://shop.example.com/done")
    monkeypatch.setenv("USERS_TABLE", "no-such-table")
    runtime.reset()
    assert location_query(browser(registered, query))["status"] == ["2"]


# --- the merchant API's edges (§9's item 5 of the issue) ---------------------------------------------------------


@pytest.mark.parametrize("user", [".", ".."])
def test_a_user_id_that_is_a_dot_segment_is_a_400_naming_the_field(stack: Stack, user: str) -> None:
    answers = [
        stack.register(user, "13812349002"),
        stack.query(user),
        stack.open_account(user, {"id_card": "11010519491231002X", "real_name": "张三"}),
    ]
    for answer in answers:
        assert answer["statusCode"] == 400, answer
        fields = json_body(answer)["error"]["fields"]
        assert [entry["field"] for entry in fields] == ["third_party_user_id"], fields


@pytest.mark.parametrize("suffix", ["?next=1", "#top", "?", "?status=3&sign=x"])
def test_our_own_return_url_with_its_own_query_is_refused_at_open_account(registered: Stack, suffix: str) -> None:
    before = registered.user_item(USER)
    return_url = f"{registered.bridge.url}/htouhui/return{suffix}"
    answer = registered.open_account(
        USER, {"id_card": "11010519491231002X", "real_name": "张三", "return_url": return_url}
    )
    assert answer["statusCode"] == 400, answer
    assert json_body(answer)["error"]["fields"] == [
        {"field": "return_url", "reason": "own_return_url_takes_no_query_or_fragment"}
    ]
    assert registered.user_item(USER) == before


def test_another_allowed_page_keeps_a_query_without_separators(registered: Stack) -> None:
    return_url = f"{registered.bridge.url}/welcome?spring"
    answer = registered.open_account(
        USER, {"id_card": "11010519491231002X", "real_name": "张三", "return_url": return_url}
    )
    assert answer["statusCode"] == 200 and json_body(answer)["fields"]["return_url"] == return_url
    separated = registered.open_account(
        USER, {"id_card": "11010519491231002X", "real_name": "张三", "return_url": return_url + "=1"}
    )
    assert separated["statusCode"] == 400
    assert json_body(separated)["error"]["fields"] == [
        {"field": "return_url", "reason": "contains_canonical_separator"}
    ]


@pytest.mark.parametrize(
    ("name", "reason"),
    [(" 张三", "real_name must not start or end with spaces"), ("张\u200b三", "zero-width")],
)
def test_real_name_with_invisible_differences_is_refused_clearly(registered: Stack, name: str, reason: str) -> None:
    answer = registered.open_account(USER, {"id_card": "11010519491231002X", "real_name": name})
    assert answer["statusCode"] == 400
    [entry] = json_body(answer)["error"]["fields"]
    assert entry["field"] == "real_name" and reason in entry["reason"]
    assert "open_requested" not in registered.user_item(USER)


def test_an_unverified_notify_no_reaches_the_log_only_as_its_length(
    registered: Stack, sign: Sign, log_sink: io.StringIO
) -> None:
    """Issue 19: a 16,000-character notify_no with a bad signature wrote ~16.5 KB per refused request."""
    fields = sign(notification(registered, 1))
    fields["notify_no"] = "N" * 15_000  # within the 16 KiB body limit: it reaches the verifier
    assert answer_of(registered.notify(urlencode(fields))) == (400, "FAIL")
    [refusal] = [line for line in log_entries(log_sink) if line.get("message") == "notification rejected"]
    assert refusal["reason"] == "bad_signature" and refusal["notify_no_length"] == 15_000 and "notify_no" not in refusal
    assert max(len(line) for line in log_sink.getvalue().splitlines()) < 2_000


def test_a_verified_value_with_a_canonical_separator_is_accepted_counted_and_named_not_shown(
    registered: Stack, sign: Sign, log_sink: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    card = "6222020200112233445"
    fields = notification(registered, 1, bank_card_number=card, memo="a=b&c\u2028d")
    capsys.readouterr()
    assert answer_of(registered.notify(urlencode(sign(fields)))) == (200, "SUCCESS")
    assert stored(registered)[0] == 1
    [note] = [line for line in log_entries(log_sink) if "canonical separator" in str(line.get("message"))]
    assert note["fields"] == ["memo"]
    assert "a=b&c" not in log_sink.getvalue() and "\u2028" not in log_sink.getvalue()
    emf = [line for line in log_lines(capsys.readouterr().out) if "VerifiedValuesWithSeparator" in json.dumps(line)]
    assert emf and emf[0]["VerifiedValuesWithSeparator"] == [1.0]
