"""onboarding.observability: masking of personal data in every log line, and the metrics hooks."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from helpers import log_entries
from hypothesis import given
from hypothesis import strategies as st

from htouhui.client import CallRecord
from htouhui.models import id_card_check_character
from onboarding import observability

# Powertools warns when an invocation counted nothing: normal here.
pytestmark = pytest.mark.filterwarnings("ignore:No application metrics to publish:UserWarning")

MOBILE = "13812345678"
ID_CARD = "11010519491231002X"
BANK_CARD = "6222020200112233445"


@pytest.fixture
def lines(log_sink: io.StringIO) -> io.StringIO:
    return log_sink


def _entries(sink: io.StringIO) -> list[dict[str, Any]]:
    return log_entries(sink)


def test_mask_text_patterns() -> None:
    text = observability.mask_text(
        f"mobile={MOBILE}&id_card={ID_CARD}&real_name=张三&password=hunter2 card {BANK_CARD} at 20261128120000"
    )
    for secret in (MOBILE, ID_CARD, "张三", "hunter2", BANK_CARD):
        assert secret not in text
    assert "20261128120000" in text  # a 14-digit Htouhui timestamp is not a card number
    assert "110***********002X" in text and BANK_CARD[-4:] in text
    assert observability.mask_text(f'{{"real_name": "张 三", "phone": "{MOBILE}"}}') == (
        '{"real_name": "***", "phone": "***"}'
    )
    assert observability.mask_text(f"call me on {MOBILE}.") == "call me on 138****5678."


def test_mask_structures_by_key_at_any_depth() -> None:
    masked = observability.mask(
        {
            "mobile": MOBILE,
            "nested": {"id_card": ID_CARD, "list": [{"bank_card_number": BANK_CARD}, f"free {MOBILE}"]},
            "password": "",
            "htouhui_user_id": "13800000001",  # an id, kept as it is when named
            "notify_no": "N20261128120000abc",
        }
    )
    assert masked == {
        "mobile": "***",
        "nested": {
            "id_card": "110***********002X",
            "list": [{"bank_card_number": "****3445"}, "free 138****5678"],
        },
        "password": "",
        "htouhui_user_id": "13800000001",
        "notify_no": "N20261128120000abc",
    }


def test_logger_masks_message_args_extra_and_exception(lines: io.StringIO) -> None:
    observability.logger.info("registering %s", MOBILE, extra={"body": {"mobile": MOBILE, "real_name": "张三"}})
    observability.logger.info({"id_card": ID_CARD, "ok": True})
    try:
        raise ValueError(f"bad card {BANK_CARD} for {ID_CARD}")
    except ValueError:
        observability.logger.exception("failed")
    logging.getLogger("htouhui.somewhere").warning("payload %r", {"password": "s3cret", "mobile": MOBILE})
    text = lines.getvalue()
    for secret in (MOBILE, ID_CARD, "张三", BANK_CARD, "s3cret"):
        assert secret not in text, text
    entries = _entries(lines)
    assert entries[0]["message"] == "registering 138****5678" and entries[0]["body"]["mobile"] == "***"
    assert entries[1]["message"]["id_card"] == "110***********002X"
    assert entries[2]["exception_name"] == "ValueError" and "3445" in entries[2]["exception"]
    assert entries[3]["message"] == "payload {'password': '***', 'mobile': '***'}"


def test_root_handlers_mask_too() -> None:
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        observability.mask_root_handlers()
        logging.getLogger("botocore.somewhere").warning("sending %s", {"mobile": MOBILE, "id_card": ID_CARD})
    finally:
        root.removeHandler(handler)
    assert MOBILE not in sink.getvalue() and ID_CARD not in sink.getvalue()


def test_record_attempt_emits_latency_result_and_a_log(lines: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
    observability.record_attempt(CallRecord("register", 1, 0.0125, "9999"))
    entry = _entries(lines)[-1]
    assert entry["message"] == "htouhui call"
    assert (entry["interface"], entry["attempt"], entry["outcome"], entry["milliseconds"]) == (
        "register",
        1,
        "9999",
        12.5,
    )
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    result = next(item for item in emitted if "HtouhuiResult" in item)
    assert result["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Htouhui"
    assert (result["interface"], result["result"]) == ("register", "9999")
    metrics = observability.metrics.metric_set
    assert metrics["HtouhuiLatency"]["Value"] == [12.5]
    observability.metrics.clear_metrics()


digits17 = st.text(alphabet="0123456789", min_size=17, max_size=17)


@given(first17=digits17, mobile=st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True), name=st.text(min_size=1, max_size=8))
def test_no_identity_number_or_mobile_survives(first17: str, mobile: str, name: str) -> None:
    id_card = first17 + id_card_check_character(first17)
    text = observability.mask_text(f"user {id_card} tel:{mobile} id_card={id_card} real_name={name}")
    assert id_card not in text and mobile not in text
    masked = observability.mask({"real_name": name, "nested": [{"mobile": mobile}]})
    assert masked == {"real_name": "***", "nested": [{"mobile": "***"}]}


def test_grouped_card_numbers_are_masked_but_dates_and_short_groups_are_not() -> None:
    text = observability.mask_text("card 6222 0202 0011 2233 445 and 6222-0202-0011-2233 on 2026-12-02 at 10:00")
    assert "0202 0011" not in text and "0202-0011" not in text
    assert "****3445" in text and "****2233" in text and "2026-12-02" in text
