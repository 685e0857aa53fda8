"""Notification delivery (PROTOCOL.md §6) over real HTTP: the retry schedule at a test time scale,
acknowledgement rules, identical retries, and the drop / duplicate / reorder / corrupt faults."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable

import httpx
import pytest
from helpers import Receiver, valid_id_card
from sandbox.server import RunningSandbox

from htouhui import protocol

SCHEDULE = (15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 54000)


def seed(sandbox: RunningSandbox, user: str = "alice", status: int = 1, notify_url: str | None = None) -> None:
    record: dict[str, object] = {"third_party_user_id": user, "status": status, "id_card": valid_id_card()}
    if notify_url:
        record["notify_url"] = notify_url
    httpx.post(sandbox.url + "/_sandbox/users", json=record).raise_for_status()


def trigger(sandbox: RunningSandbox, user: str, status: str, notify_url: str | None = None) -> dict[str, object]:
    body = {"third_party_user_id": user, "status": status}
    if notify_url:
        body["notify_url"] = notify_url
    response = httpx.post(sandbox.url + "/_sandbox/trigger", json=body)
    assert response.status_code == 202, response.text
    return dict(response.json())


def fault(sandbox: RunningSandbox, **body: object) -> None:
    response = httpx.post(sandbox.url + "/_sandbox/faults", json={"interface": "notify", **body})
    assert response.status_code == 200, response.text


def deliveries(sandbox: RunningSandbox) -> list[dict[str, object]]:
    return list(httpx.get(sandbox.url + "/_sandbox/deliveries").json()["deliveries"])


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def always(status: int, body: str) -> Receiver:
    return Receiver(lambda _n: (status, body))


def test_retry_spacing_follows_the_schedule_at_time_scale_0_001(
    start_sandbox: Callable[..., RunningSandbox],
) -> None:
    sandbox = start_sandbox(time_scale=0.001)
    receiver = always(500, "boom")
    try:
        seed(sandbox, notify_url=receiver.url)
        trigger(sandbox, "alice", "1")
        posts = receiver.wait_for(8, timeout=15)
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(posts)]
        for gap, expected in zip(gaps, SCHEDULE, strict=False):
            assert expected / 1000 - 0.005 <= gap <= expected / 1000 * 1.25 + 0.3, (gaps, expected)
        attempts = deliveries(sandbox)[0]["attempts"]
        assert isinstance(attempts, list) and len(attempts) >= 7
        assert attempts[0]["http_status"] == 500 and attempts[0]["body"] == "boom"
        assert attempts[0]["acknowledged"] is False and attempts[0]["at"]
    finally:
        receiver.stop()


def test_twelve_deliveries_at_most_and_identical_bodies(start_sandbox: Callable[..., RunningSandbox]) -> None:
    sandbox = start_sandbox(time_scale=0.0001)  # the whole 15 h 57 min schedule in about 9 s
    receiver = always(200, "FAIL")
    try:
        seed(sandbox, notify_url=receiver.url)
        trigger(sandbox, "alice", "1")
        posts = receiver.wait_for(12, timeout=30)
        wait_until(lambda: deliveries(sandbox)[0]["state"] == "failed")
        time.sleep(0.3)
        assert len(receiver.posts) == 12
        assert len({post.body for post in posts}) == 1  # same notify_no, same sign, same bytes
        gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(posts)]
        for gap, expected in zip(gaps, SCHEDULE, strict=True):
            assert expected / 10000 - 0.005 <= gap <= expected / 10000 * 1.25 + 0.3, (gaps, expected)
        assert len(deliveries(sandbox)[0]["attempts"]) == 12  # type: ignore[arg-type]
    finally:
        receiver.stop()


def test_delivery_stops_at_200_success_and_retries_are_identical(
    sandbox: RunningSandbox, htouhui_public_key: protocol.PublicKey
) -> None:
    answers = {1: (500, "x"), 2: (200, "success"), 3: (200, "OK"), 4: (200, " SUCCESS\n")}
    receiver = Receiver(lambda n: answers.get(n, (200, "SUCCESS")))
    try:
        seed(sandbox, notify_url=receiver.url)
        queued = trigger(sandbox, "alice", "1")
        posts = receiver.wait_for(4)
        wait_until(lambda: deliveries(sandbox)[0]["state"] == "delivered")
        time.sleep(0.2)
        assert len(receiver.posts) == 4
        assert len({post.body for post in posts}) == 1
        fields = posts[0].fields
        assert fields["notify_no"] == queued["notify_no"]
        assert protocol.verify(fields, htouhui_public_key)
        assert fields["notify_type"] == "OPEN_ACCOUNT" and fields["status"] == "1"
        assert 16 <= len(fields["bank_card_number"]) <= 19
    finally:
        receiver.stop()


def test_no_answer_within_the_timeout_is_a_failed_delivery(sandbox: RunningSandbox) -> None:
    def slow_then_ok(number: int) -> tuple[int, str]:
        if number == 1:
            time.sleep(0.6)  # the 5 s time-out, scaled down by 0.001 but never below 0.2 s
        return 200, "SUCCESS"

    receiver = Receiver(slow_then_ok)
    try:
        seed(sandbox, notify_url=receiver.url)
        trigger(sandbox, "alice", "1")
        receiver.wait_for(2)
        wait_until(lambda: deliveries(sandbox)[0]["state"] == "delivered")
        attempts = deliveries(sandbox)[0]["attempts"]
        assert isinstance(attempts, list)
        assert attempts[0]["http_status"] is None and "0.2" in attempts[0]["error"]
        assert attempts[1]["acknowledged"] is True
    finally:
        receiver.stop()


def test_duplicate_fault_delivers_the_same_notification_again(sandbox: RunningSandbox, receiver: Receiver) -> None:
    seed(sandbox, notify_url=receiver.url)
    fault(sandbox, duplicate=2)
    trigger(sandbox, "alice", "1")
    posts = receiver.wait_for(3)
    assert len({post.body for post in posts}) == 1
    trigger(sandbox, "alice", "2")
    receiver.wait_for(4)
    time.sleep(0.2)
    assert len(receiver.posts) == 4  # the fault was for the next notification only


def test_reorder_fault_delivers_the_later_notification_first(
    sandbox: RunningSandbox, receiver: Receiver, htouhui_public_key: protocol.PublicKey
) -> None:
    seed(sandbox, notify_url=receiver.url)
    fault(sandbox, reorder=2)
    trigger(sandbox, "alice", "1")
    time.sleep(0.2)
    assert receiver.posts == []
    assert deliveries(sandbox)[0]["state"] == "held"
    trigger(sandbox, "alice", "3")
    posts = receiver.wait_for(2)
    assert [post.fields["status"] for post in posts] == ["3", "1"]
    assert all(protocol.verify(post.fields, htouhui_public_key) for post in posts)


def test_reorder_true_holds_until_switched_off(sandbox: RunningSandbox, receiver: Receiver) -> None:
    seed(sandbox, notify_url=receiver.url)
    fault(sandbox, reorder=True)
    for status in ("1", "2", "3"):
        trigger(sandbox, "alice", status)
    time.sleep(0.2)
    assert receiver.posts == []
    fault(sandbox, reorder=False)
    posts = receiver.wait_for(3)
    assert [post.fields["status"] for post in posts] == ["3", "2", "1"]


def test_drop_fault_loses_the_next_notifications(sandbox: RunningSandbox, receiver: Receiver) -> None:
    seed(sandbox, notify_url=receiver.url)
    fault(sandbox, drop=1)
    dropped = trigger(sandbox, "alice", "2")
    delivered = trigger(sandbox, "alice", "3")
    posts = receiver.wait_for(1)
    time.sleep(0.2)
    assert [post.fields["notify_no"] for post in receiver.posts] == [delivered["notify_no"]]
    assert posts[0].fields["status"] == "3"
    states = {item["notify_no"]: item["state"] for item in deliveries(sandbox)}
    assert states[dropped["notify_no"]] == "dropped"


def test_corrupt_signature_fault(
    sandbox: RunningSandbox, htouhui_public_key: protocol.PublicKey, receiver: Receiver
) -> None:
    def verifying(number: int) -> tuple[int, str]:
        fields = receiver.posts[number - 1].fields
        return (200, "SUCCESS") if protocol.verify(fields, htouhui_public_key) else (400, "FAIL")

    receiver.answer = verifying
    seed(sandbox, notify_url=receiver.url)
    fault(sandbox, corrupt_signature=1)
    trigger(sandbox, "alice", "1")
    posts = receiver.wait_for(3)
    assert not protocol.verify(posts[0].fields, htouhui_public_key)
    assert len({post.body for post in posts}) == 1  # the retries carry the same broken signature
    good = trigger(sandbox, "alice", "2")
    wait_until(lambda: any(post.fields["notify_no"] == good["notify_no"] for post in receiver.posts))
    mine = [post for post in receiver.posts if post.fields["notify_no"] == good["notify_no"]]
    assert protocol.verify(mine[0].fields, htouhui_public_key)


def test_trigger_needs_a_known_user_and_a_notify_url(sandbox: RunningSandbox) -> None:
    response = httpx.post(sandbox.url + "/_sandbox/trigger", json={"third_party_user_id": "ghost", "status": "1"})
    assert response.status_code == 404
    seed(sandbox)
    response = httpx.post(sandbox.url + "/_sandbox/trigger", json={"third_party_user_id": "alice", "status": "1"})
    assert response.status_code == 400 and "notify_url" in response.json()["error"]
    response = httpx.post(sandbox.url + "/_sandbox/trigger", json={"third_party_user_id": "alice", "status": "7"})
    assert response.status_code == 400


@pytest.mark.parametrize("status", ["0", "3"])
def test_trigger_sends_the_asked_status_and_bank_card_only_from_1(
    sandbox: RunningSandbox, receiver: Receiver, status: str
) -> None:
    seed(sandbox, status=0)
    trigger(sandbox, "alice", status, notify_url=receiver.url)
    fields = receiver.wait_for(1)[0].fields
    assert fields["status"] == status
    assert ("bank_card_number" in fields) == (status != "0")
