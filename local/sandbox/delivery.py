"""Notification delivery (PROTOCOL.md §6): a form POST to notify_url, retried on a fixed schedule.

Success is HTTP 200 with the body the profile's `ack` (whitespace stripped); anything else, or no answer in
time, is a failed delivery, retried after 15 s, 30 s, 1 min, … 15 h (twelve deliveries at most),
every delay multiplied by the time scale. Every retry sends the very same body (same notify_no,
same signature). Every attempt is recorded.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

import httpx

from htouhui import protocol
from sandbox.state import mask, now_iso

RETRY_DELAYS: Final = (15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 54000)
MAX_DELIVERIES: Final = len(RETRY_DELAYS) + 1
RESPONSE_TIMEOUT: Final = 5.0
MIN_RESPONSE_TIMEOUT: Final = 0.2
BODY_SNIPPET: Final = 200


def response_timeout(time_scale: float) -> float:
    """5 s; scaled down with a time scale below 1, but never below 0.2 s."""
    if time_scale >= 1:
        return RESPONSE_TIMEOUT
    return max(MIN_RESPONSE_TIMEOUT, RESPONSE_TIMEOUT * time_scale)


@dataclass
class Attempt:
    number: int
    at: str
    seconds: float
    http_status: int | None
    error: str | None
    body: str
    acknowledged: bool
    duplicate: bool = False

    def view(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Delivery:
    id: int
    notify_no: str
    notify_url: str
    third_party_user_id: str
    status: str
    fields: dict[str, str]
    state: str = "pending"  # pending, held, delivering, delivered, failed, dropped, cancelled
    attempts: list[Attempt] = field(default_factory=list)
    due: float | None = None  # monotonic time of the next attempt
    after: Delivery | None = None  # released from a reorder hold: wait until this one was tried
    duplicates: int = 0
    corrupted: bool = False
    created_at: str = field(default_factory=now_iso)

    @property
    def body(self) -> bytes:
        return urlencode(self.fields).encode("utf-8")

    def view(self) -> dict[str, Any]:
        shown = dict(self.fields)
        if "bank_card_number" in shown:
            shown["bank_card_number"] = mask(shown["bank_card_number"], 0, 4) or ""
        return {
            "id": self.id,
            "notify_no": self.notify_no,
            "notify_url": self.notify_url,
            "third_party_user_id": self.third_party_user_id,
            "status": self.status,
            "state": self.state,
            "corrupted_signature": self.corrupted,
            "duplicates": self.duplicates,
            "created_at": self.created_at,
            "fields": shown,
            "attempts": [attempt.view() for attempt in self.attempts],
        }


class Deliverer:
    """A worker thread that sends due notifications, each attempt in its own short-lived thread."""

    def __init__(
        self,
        time_scale: float,
        reorder_hold: Callable[[], int],
        stop_reorder: Callable[[], None],
        ack: str = protocol.DEFAULT.ack,
    ) -> None:
        self.time_scale = time_scale
        self.ack = ack
        self.timeout = response_timeout(time_scale)
        self._reorder_hold = reorder_hold
        self._stop_reorder = stop_reorder
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self.deliveries: list[Delivery] = []
        self._held: list[Delivery] = []
        self._stopping = False
        self._thread: threading.Thread | None = None

    # --- queueing ------------------------------------------------------------------------------

    def queue(
        self,
        *,
        notify_no: str,
        notify_url: str,
        third_party_user_id: str,
        status: str,
        fields: dict[str, str],
        drop: bool = False,
        duplicates: int = 0,
        corrupted: bool = False,
    ) -> Delivery:
        with self._cond:
            delivery = Delivery(
                id=next(self._ids),
                notify_no=notify_no,
                notify_url=notify_url,
                third_party_user_id=third_party_user_id,
                status=status,
                fields=fields,
                duplicates=duplicates,
                corrupted=corrupted,
            )
            self.deliveries.append(delivery)
            hold = self._reorder_hold()
            if drop:
                delivery.state = "dropped"
            elif hold:
                delivery.state = "held"
                self._held.append(delivery)
                if hold >= 2 and len(self._held) >= hold:
                    self._stop_reorder()
                    self._release_locked()
            else:
                delivery.due = time.monotonic()
            self._cond.notify_all()
            return delivery

    def release_held(self) -> int:
        """Deliver the held notifications, the latest first, each after the one before was tried."""
        with self._cond:
            return self._release_locked()

    def _release_locked(self) -> int:
        held, self._held = self._held, []
        previous: Delivery | None = None
        now = time.monotonic()
        for delivery in reversed(held):
            delivery.state = "pending"
            delivery.due = now
            delivery.after = previous
            previous = delivery
        self._cond.notify_all()
        return len(held)

    def list(self, third_party_user_id: str | None = None, notify_no: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [
                delivery.view()
                for delivery in self.deliveries
                if (third_party_user_id is None or delivery.third_party_user_id == third_party_user_id)
                and (notify_no is None or delivery.notify_no == notify_no)
            ]

    def reset(self) -> None:
        with self._cond:
            for delivery in self.deliveries:
                if delivery.state in ("pending", "held"):
                    delivery.state = "cancelled"
                    delivery.due = None
            self.deliveries = []
            self._held = []
            self._cond.notify_all()

    # --- the worker ----------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sandbox-deliverer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        with self._cond:
            while not self._stopping:
                now = time.monotonic()
                next_due: float | None = None
                for delivery in self.deliveries:
                    if delivery.state != "pending" or delivery.due is None:
                        continue
                    waiting = delivery.after is not None and not delivery.after.attempts
                    if waiting and delivery.after is not None and delivery.after.state in ("pending", "delivering"):
                        continue
                    if delivery.due <= now:
                        delivery.state = "delivering"
                        delivery.due = None
                        threading.Thread(
                            target=self._attempt, args=(delivery,), name=f"sandbox-notify-{delivery.id}", daemon=True
                        ).start()
                    elif next_due is None or delivery.due < next_due:
                        next_due = delivery.due
                self._cond.wait(timeout=None if next_due is None else max(next_due - now, 0.0))

    def _attempt(self, delivery: Delivery) -> None:
        attempt = self._send(delivery, len(delivery.attempts) + 1, duplicate=False)
        with self._cond:
            if delivery.state == "cancelled":
                return
            delivery.attempts.append(attempt)
            if attempt.acknowledged:
                delivery.state = "delivered"
            elif len(delivery.attempts) >= MAX_DELIVERIES:
                delivery.state = "failed"
            else:
                delivery.state = "pending"
                delivery.due = time.monotonic() + RETRY_DELAYS[len(delivery.attempts) - 1] * self.time_scale
            self._cond.notify_all()
        if attempt.acknowledged:
            for extra in range(delivery.duplicates):
                copy = self._send(delivery, len(delivery.attempts) + 1 + extra, duplicate=True)
                with self._cond:
                    delivery.attempts.append(copy)

    def _send(self, delivery: Delivery, number: int, *, duplicate: bool) -> Attempt:
        started = time.monotonic()
        at = now_iso()
        status: int | None = None
        error: str | None = None
        text = full = ""
        try:
            with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
                response = client.post(
                    delivery.notify_url,
                    content=delivery.body,
                    headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                )
            status = response.status_code
            full = response.text
            text = full[:BODY_SNIPPET]
        except httpx.TimeoutException:
            error = f"no answer within {self.timeout:g}s"
        except httpx.HTTPError as exc:
            error = type(exc).__name__
        acknowledged = status == 200 and full.strip() == self.ack
        return Attempt(
            number=number,
            at=at,
            seconds=round(time.monotonic() - started, 4),
            http_status=status,
            error=error,
            body=text,
            acknowledged=acknowledged,
            duplicate=duplicate,
        )
