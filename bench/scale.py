"""Reconciliation at scale (`python -m bench --only scale`): a cohort model for a year, the real code for two weeks.

Model (issue 13): 1,000,000 registrations a day, the peak hour (12:00-13:00 UTC) at 10 times the rate of every
other hour; 20 % never ask for a form; of the form users 70 % reach status 3 by notification two minutes after
the form (before the first check), 5 % reach it but the notification is lost, 25 % stall at 0, 1 or 2.

1. The cohort model (numpy, full scale, 365 days, one-minute bins): every form cohort's checks are due at
   `form + step * (1 + U[0, JITTER))` (onboarding.schedule's ladder and jitter), a FIFO fluid queue serves them at
   the scheduled workers' share of the budget (onboarding.reconcile.scheduled_rate), oldest due first. Per day:
   Htouhui queries, peak queries per second, index size, worst delay between due and checked (outside and
   inside the peak hour and the hour after), index writes per shard per second.
2. The real code (a 1:1000 sample, 14 days, simulated clock): onboarding.reconcile.dispatch every minute and
   onboarding.reconcile.work on worker slots, over Onboarding with in-memory stand-ins for the table (the same
   conditions as onboarding.store), the queue and Htouhui. Its per-user query counts are compared with the
   cohort model's; it also checks that no check is lost, no user is checked twice at once, the budget is
   never exceeded in any second and the dispatcher sends the oldest due first.
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import json
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from bench.stats import Figure

if TYPE_CHECKING:
    from onboarding.store import ApplyOutcome, Claim, UserRecord

DAY = 86400
PEAK_HOUR = 12
PEAK_FACTOR = 10
REGISTRATIONS_PER_DAY = 1_000_000
FORM, NOTIFIED, LOST, STALLED = 0.80, 0.70, 0.05, 0.25
NOTIFY_AFTER = 120  # seconds from the form to the notification (before the first check, 5 minutes)
SAMPLE = 1000
EPOCH = datetime(2027, 1, 4, tzinfo=UTC)  # a Monday, midnight UTC


def hourly_share() -> list[float]:
    """Fraction of a day's registrations in each hour."""
    weights = [PEAK_FACTOR if hour == PEAK_HOUR else 1 for hour in range(24)]
    return [weight / sum(weights) for weight in weights]


def in_peak_window(minute_of_day: int) -> bool:
    """The peak hour and the hour after it (where the targets allow the longer delay)."""
    return PEAK_HOUR * 60 <= minute_of_day < (PEAK_HOUR + 2) * 60


# ------------------------------------------------------------------------------------------------ cohort model


def cohort_model(days: int, ladder: tuple[int, ...], jitter: float, rate: float, shards: int) -> dict[str, Any]:
    """The full-scale fluid model; `rate` is the scheduled workers' queries per second."""
    import numpy as np

    minutes = days * 1440
    per_minute = np.repeat(np.array(hourly_share()) * REGISTRATIONS_PER_DAY / 60, 60)  # one day, per minute
    forms = np.tile(per_minute, days) * FORM
    size = 1 << math.ceil(math.log2(minutes + int(ladder[-1] * (1 + jitter) / 60) + 2))

    def shifted(series: Any, offset_s: int) -> Any:
        """`series` spread uniformly over [offset, offset * (1 + jitter)) seconds later, in minute bins."""
        low, high = offset_s / 60, offset_s * (1 + jitter) / 60
        kernel = np.zeros(math.ceil(high) + 2)
        edges = np.arange(kernel.size + 1)
        kernel = np.clip(np.minimum(edges[1:], high) - np.maximum(edges[:-1], low), 0, None) / (high - low)
        out = np.fft.irfft(np.fft.rfft(series, size) * np.fft.rfft(kernel, size), size)[:minutes]
        return np.clip(out, 0, None)

    first = shifted(forms, ladder[0])
    due = first * (LOST + STALLED)
    later = [shifted(forms, step) * STALLED for step in ladder[1:]]
    for series in later:
        due = due + series
    capacity = rate * 60
    arrived = np.cumsum(due)
    served = np.empty(minutes)
    backlog = 0.0
    done = 0.0
    for minute in range(minutes):  # the FIFO fluid queue: at most `capacity` a minute
        backlog += due[minute]
        take = min(capacity, backlog)
        backlog -= take
        done += take
        served[minute] = done
    per_minute_served = np.diff(np.concatenate([[0.0], served]))
    # FIFO: work that became due in minute m is done in the first minute whose cumulative service reaches it
    finished_at = np.searchsorted(served, arrived - 1e-6)
    delay = np.maximum(finished_at - np.arange(minutes), 0) + 1  # + the dispatcher's minute
    backlog_series = arrived - served

    # the index: entries at the form, exits at status 3 (notified, or the first check) and after the last step
    notified_exit = shifted(forms, NOTIFY_AFTER) * NOTIFIED
    exits = notified_exit + first * LOST + later[-1]
    index = np.cumsum(forms - exits)
    # index changes: an entry, a notified exit, and two per check (the dispatch claim, then the next step or exit)
    index_writes = forms + notified_exit + 2 * per_minute_served

    rows = []
    for day in range(days):
        window = slice(day * 1440, (day + 1) * 1440)
        minute_of_day = np.arange(1440)
        peak = np.array([in_peak_window(int(m)) for m in minute_of_day])
        day_delay = delay[window]
        start_of_peak = day * 1440 + PEAK_HOUR * 60 - 1
        rows.append(
            {
                "day": day + 1,
                "queries": round(float(per_minute_served[window].sum())),
                "peak_qps": round(float(per_minute_served[window].max() / 60), 2),
                "index_size": round(float(index[window][-1])),
                "worst_delay_min": int(day_delay.max()),
                "worst_delay_outside_peak_min": int(day_delay[~peak].max()),
                "worst_delay_peak_min": int(day_delay[peak].max()),
                "backlog_max": round(float(backlog_series[window].max())),
                "backlog_before_peak": round(float(backlog_series[start_of_peak])),
                "index_writes_per_shard_per_s": round(float(index_writes[window].max() / 60 / shards), 2),
            }
        )
    per_registration = float(due.sum() / (forms.sum() / FORM))
    return {"rows": rows, "checks_per_registration_due": per_registration}


def expected_queries_per_registration(steps: int) -> float:
    return FORM * (LOST * 1 + STALLED * steps)


# ------------------------------------------------------------------------------------------------ stand-ins


class SimClock:
    def __init__(self, start: datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


class MemoryStore:
    """onboarding.store.UserStore's reconciliation and status rules over dicts, conditions and all."""

    def __init__(self) -> None:
        from onboarding.store import UserRecord

        self._record = UserRecord
        self.items: dict[str, dict[str, Any]] = {}
        self.index: dict[str, list[tuple[int, str]]] = defaultdict(list)  # shard -> sorted (due, user)
        self.index_writes = 0
        self.unhandled: dict[str, dict[str, str]] = {}

    # the sparse index follows the item
    def _unindex(self, item: dict[str, Any]) -> None:
        if "next_check_at" in item and "check_shard" in item:
            rows = self.index[item["check_shard"]]
            position = bisect.bisect_left(rows, (item["next_check_at"], item["third_party_user_id"]))
            assert rows[position] == (item["next_check_at"], item["third_party_user_id"])
            del rows[position]
            self.index_writes += 1

    def _reindex(self, item: dict[str, Any]) -> None:
        if "next_check_at" in item and "check_shard" in item:
            bisect.insort(self.index[item["check_shard"]], (item["next_check_at"], item["third_party_user_id"]))

    def _change(self, user: str, change: Callable[[dict[str, Any]], None]) -> None:
        item = self.items[user]
        self._unindex(item)
        change(item)
        self._reindex(item)

    def add_user(self, user: str, htouhui_user_id: str, id_card: str) -> None:
        self.items[user] = {
            "third_party_user_id": user,
            "htouhui_user_id": htouhui_user_id,
            "registration": "DONE",
            "id_card": id_card,
            "open_requested": True,
        }

    # registration (the bench seeds users with add_user; these keep the Store protocol whole)
    def claim_registration(self, third_party_user_id: str, mobile_digest: str, now: datetime) -> Claim:
        from onboarding.store import Claim, ClaimOutcome

        item = self.items.get(third_party_user_id)
        epoch = int(now.timestamp())
        if item is None or (item.get("registration") == "CLAIMED" and item.get("claim_expires_at", 0) < epoch):
            token = f"t{len(self.items)}-{epoch}"
            self.items[third_party_user_id] = {
                "third_party_user_id": third_party_user_id,
                "registration": "CLAIMED",
                "claim_token": token,
                "claim_expires_at": epoch + 30,
                "mobile_digest": mobile_digest,
            }
            return Claim(ClaimOutcome.CLAIMED, token=token)
        record = self.get(third_party_user_id)
        if item.get("mobile_digest") != mobile_digest:
            return Claim(ClaimOutcome.OTHER_MOBILE, record=record)
        if item.get("registration") == "DONE":
            return Claim(ClaimOutcome.DONE, record=record)
        return Claim(ClaimOutcome.IN_PROGRESS, record=record)

    def complete_registration(self, third_party_user_id: str, htouhui_user_id: str, now: datetime) -> UserRecord:
        item = self.items[third_party_user_id]
        item.update(htouhui_user_id=htouhui_user_id, registration="DONE")
        item.pop("claim_token", None)
        item.pop("claim_expires_at", None)
        return self._required(third_party_user_id)

    def release_claim(self, third_party_user_id: str, token: str | None = None) -> None:
        item = self.items.get(third_party_user_id)
        if item is not None and item.get("registration") == "CLAIMED" and token in (None, item.get("claim_token")):
            del self.items[third_party_user_id]

    def mark_open_requested(self, third_party_user_id: str, id_card: str, now: datetime) -> UserRecord:
        self.items[third_party_user_id].update(id_card=id_card, open_requested=True)
        return self._required(third_party_user_id)

    def record_unhandled(
        self, notify_no: str, received: Mapping[str, str], now: datetime, *, notify_type: str | None
    ) -> ApplyOutcome:
        from onboarding.store import ApplyOutcome

        if notify_no in self.unhandled:
            return ApplyOutcome.DUPLICATE
        self.unhandled[notify_no] = dict(received)
        return ApplyOutcome.UNHANDLED

    def _required(self, user: str) -> UserRecord:
        record = self.get(user)
        if record is None:
            raise KeyError(user)
        return record

    def get(self, user: str) -> UserRecord | None:
        item = self.items.get(user)
        if item is None:
            return None
        fields = {key: value for key, value in item.items() if key in self._record.__dataclass_fields__}
        record: UserRecord = self._record(**fields)
        return record

    def due(self, shard: str, now: int, limit: int, *, newest_first: bool = False) -> list[Any]:
        from onboarding.store import DueUser

        rows = self.index.get(shard, [])
        end = bisect.bisect_right(rows, (now, "\uffff"))
        picked = rows[max(0, end - limit) : end][::-1] if newest_first else rows[: min(end, limit)]
        return [DueUser(user, due, shard) for due, user in picked]

    def claim_dispatch(self, row: Any, until: int) -> bool:
        item = self.items.get(row.third_party_user_id)
        if item is None or item.get("next_check_at") != row.due:
            return False
        self._change(row.third_party_user_id, lambda i: i.update(next_check_at=until))
        return True

    def claim_dispatches(self, rows: Any, until: int) -> list[bool]:
        return [self.claim_dispatch(row, until) for row in rows]  # one thread: the dicts have no lock

    def restart_schedule(self, user: str, slot: Any, shard: str) -> bool:
        item = self.items.get(user)
        if item is None or not item.get("id_card") or (item.get("status") or 0) >= 3:
            return False
        self._change(
            user,
            lambda i: (
                i.update(check_shard=shard, next_check_at=slot.due, check_anchor=slot.anchor, check_step=slot.step)
                or i.update(check_attempts=0)
            ),
        )
        return True

    def begin_check(self, user: str, *, token: str, now: int, lease_until: int, due: int | None = None) -> Any:
        item = self.items.get(user)
        if item is None or (item.get("check_lease") or 0) >= now:
            return None
        if due is not None and item.get("next_check_at") != due:
            return None
        item["check_lease"], item["check_token"] = lease_until, token
        return self.get(user)

    def settle_check(
        self, user: str, *, token: str, taken_on: Any, next_slot: Any, shard: str, attempts: int = 0
    ) -> bool:
        item = self.items[user]
        ok = item.get("check_token") == token
        if ok and taken_on is not None:
            ok = item.get("check_anchor") == taken_on.anchor and item.get("check_step") == taken_on.step
        if ok and next_slot is not None:
            ok = (item.get("status") or 0) < 3
        if not ok:
            self.release_check(user, token)
            return False

        def change(i: dict[str, Any]) -> None:
            for name in ("check_lease", "check_token"):
                i.pop(name, None)
            if next_slot is None:
                for name in ("check_shard", "next_check_at", "check_anchor", "check_step", "check_attempts"):
                    i.pop(name, None)
            else:
                i.update(
                    check_shard=shard,
                    next_check_at=next_slot.due,
                    check_anchor=next_slot.anchor,
                    check_step=next_slot.step,
                    check_attempts=attempts,
                )

        self._change(user, change)
        return True

    def release_check(self, user: str, token: str) -> None:
        item = self.items.get(user)
        if item is not None and item.get("check_token") == token:
            item.pop("check_lease", None)
            item.pop("check_token", None)

    def apply_status(self, update: Any) -> Any:
        from onboarding.store import ApplyOutcome

        item = self.items[update.third_party_user_id]
        if (item.get("status") or -1) >= update.status:
            return ApplyOutcome.STALE

        def change(i: dict[str, Any]) -> None:
            i["status"] = update.status
            if update.status >= 3:
                for name in ("check_shard", "next_check_at", "check_anchor", "check_step", "check_attempts"):
                    i.pop(name, None)

        self._change(update.third_party_user_id, change)
        return ApplyOutcome.APPLIED


class MemoryQueue:
    """An SQS queue: FIFO by send time, a visibility time-out, approximate depth."""

    def __init__(self, visibility: int) -> None:
        self.visibility = visibility
        self.clock: SimClock | None = None
        self.messages: list[tuple[float, int, dict[str, Any]]] = []  # (visible at, sequence, body)
        self._sequence = 0

    def send(self, messages: list[dict[str, Any]]) -> None:
        assert self.clock is not None and 1 <= len(messages) <= 10
        for message in messages:
            self._sequence += 1
            heapq.heappush(self.messages, (self.clock.now, self._sequence, dict(message)))

    def depth(self) -> int:
        return len(self.messages)

    def receive(self, limit: int, now: float) -> list[dict[str, Any]]:
        taken: list[dict[str, Any]] = []
        while self.messages and self.messages[0][0] <= now and len(taken) < limit:
            taken.append(heapq.heappop(self.messages)[2])
        return taken  # deleted on success: the worker reports no failure for scheduled messages

    def next_visible(self) -> float | None:
        return self.messages[0][0] if self.messages else None


class MemoryHtouhui:
    """The query interface: each user's true status; every query's (simulated) second is counted."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.status: dict[str, int] = {}
        self.queries: Counter[str] = Counter()
        self.per_second: Counter[int] = Counter()
        self.in_flight: set[str] = set()
        self.overlaps = 0

    def register(self, request: Any) -> Any:
        raise NotImplementedError("the reconciliation bench seeds registered users; it never registers one")

    def query(self, request: Any) -> Any:
        user = request.third_party_user_id
        if user in self.in_flight:
            self.overlaps += 1
        self.queries[user] += 1
        self.per_second[int(self.clock.now)] += 1
        status = self.status.get(user, 0)
        return SimpleNamespace(
            third_party_user_id=user,
            htouhui_user_id=f"H{user}",
            status=str(status),
            bank_card_number=None,
            borrower=None,
        )


# ------------------------------------------------------------------------------------------------ the sample


@dataclass(order=True)
class _Event:
    at: float
    order: int
    kind: str = field(compare=False)
    data: Any = field(compare=False, default=None)


def _outcome_pattern() -> list[str]:
    """100 outcomes in exactly the model's proportions, in a fixed shuffled order."""
    pattern = ["none"] * 20 + ["notified"] * 56 + ["lost"] * 4 + ["stalled"] * 20
    random.Random(13).shuffle(pattern)
    return pattern


def sample_run(
    days: int, budget: float, keys_dir: Path, *, workers: int = 9, priority_workers: int = 1
) -> dict[str, Any]:
    """The real dispatcher and worker over the stand-ins: SAMPLE-times fewer users and SAMPLE-times less budget."""
    from htouhui.models import id_card_check_character
    from onboarding import reconcile, schedule
    from onboarding.config import Settings
    from onboarding.rules import Onboarding

    settings = Settings.from_env(
        {
            "HTOUHUI_PARTNER_ID": "P2026000001",
            "HTOUHUI_BASE_URL": "https://htouhui.invalid",
            "MERCHANT_PRIVATE_KEY": f"file:{keys_dir / 'merchant_private.pem'}",
            "HTOUHUI_PUBLIC_KEY": f"file:{keys_dir / 'htouhui_public.pem'}",
            "RECONCILE_RATE_BUDGET": str(budget / SAMPLE),
            "RECONCILE_WORKERS": str(workers),
            "RECONCILE_PRIORITY_WORKERS": str(priority_workers),
        }
    )
    clock = SimClock(EPOCH)
    store = MemoryStore()
    htouhui = MemoryHtouhui(clock)
    queue = MemoryQueue(visibility=360)
    queue.clock = clock
    onboarding = Onboarding.configured(settings, store, lambda: htouhui, clock=clock)
    ladder = schedule.Ladder(settings.reconcile_ladder)
    slots = workers + priority_workers
    interval = schedule.pacing_interval(settings.reconcile_rate_budget, slots)
    pacers = [reconcile.Pacer(interval, clock=lambda: clock.now, sleep=clock.sleep) for _ in range(workers)]

    # when each due check became due, and when it was checked (for the delays and "nobody lost")
    due_log: dict[tuple[str, int, int], float] = {}
    checked_log: list[tuple[float, float]] = []  # (due, checked)
    original_query = htouhui.query

    def query(request: Any) -> Any:
        record = store.items[request.third_party_user_id]
        key = (request.third_party_user_id, record.get("check_anchor", -1), record.get("check_step", -1))
        due = due_log.get(key)
        if due is not None:
            checked_log.append((due, clock.now))
        return original_query(request)

    htouhui.query = query  # type: ignore[method-assign]

    events: list[_Event] = []
    order = 0

    def push(at: float, kind: str, data: Any = None) -> None:
        nonlocal order
        order += 1
        heapq.heappush(events, _Event(at, order, kind, data))

    share = hourly_share()
    cumulative = [sum(share[:hour]) for hour in range(25)]
    pattern = _outcome_pattern()
    per_day = REGISTRATIONS_PER_DAY // SAMPLE
    outcomes: dict[str, str] = {}
    registered_day: dict[str, int] = {}
    for day in range(days):
        for n in range(per_day):
            fraction = (n + 0.5) / per_day
            hour = bisect.bisect_right(cumulative, fraction) - 1
            seconds = (hour + (fraction - cumulative[hour]) / share[hour]) * 3600
            user = f"s{day:03d}-{n:04d}"
            outcomes[user] = pattern[(day * per_day + n) % 100]
            registered_day[user] = day
            push(EPOCH.timestamp() + day * DAY + seconds, "form", user)
    end = EPOCH.timestamp() + days * DAY
    minute = EPOCH.timestamp()
    while minute < end:
        push(minute, "dispatch")
        minute += 60
    for slot in range(workers):
        push(EPOCH.timestamp(), "slot", slot)

    violations = 0
    dispatched = 0
    while events:
        event = heapq.heappop(events)
        if event.at >= end:
            break
        clock.now = max(clock.now, event.at) if event.kind != "slot" else event.at
        if event.kind == "form":
            user = event.data
            if outcomes[user] == "none":
                continue
            card = "11010519900307" + f"{int(user[1:4]) % 100:02d}1"
            store.add_user(user, f"H{user}", card + id_card_check_character(card))
            htouhui.status[user] = {"notified": 0, "lost": 0, "stalled": int(user[-1]) % 3}[outcomes[user]]
            onboarding.core.restart_ladder(user)  # the form: the ladder starts (as open_account does)
            record = store.items[user]
            due_log[(user, record["check_anchor"], 0)] = record["next_check_at"]
            if outcomes[user] in ("notified", "lost"):
                push(event.at + NOTIFY_AFTER, "finish", user)
        elif event.kind == "finish":
            user = event.data
            htouhui.status[user] = 3
            if outcomes[user] == "notified":  # the notification, through the same monotonic update
                from onboarding.store import StatusUpdate

                store.apply_status(StatusUpdate(user, f"H{user}", 3, "notify", clock()))
        elif event.kind == "dispatch":
            before = {shard: list(rows) for shard, rows in store.index.items()}
            sent_before = queue._sequence
            report = reconcile.dispatch(onboarding, queue, settings)
            dispatched += report.dispatched
            if report.dispatched:
                sent_users = {m[2]["third_party_user_id"] for m in queue.messages if m[1] > sent_before}
                sent_dues = [due for rows in before.values() for due, user in rows if user in sent_users]
                newest = max(sent_dues) if sent_dues else None
                left = [
                    due for rows in before.values() for due, user in rows if user not in sent_users and due <= clock.now
                ]
                if newest is not None and left and min(left) < newest:
                    violations += 1
        elif event.kind == "slot":
            slot = event.data
            messages = queue.receive(1, clock.now)
            if not messages:
                following = queue.next_visible()
                wake = math.floor(clock.now / 60) * 60 + 60.001  # after the next dispatcher run
                if following is not None and following > clock.now:
                    wake = min(wake, following)
                push(wake, "slot", slot)
                continue
            for message in messages:
                claimed = store.items.get(message["third_party_user_id"])
                if claimed is not None and claimed.get("next_check_at") == message["due"]:
                    key = (message["third_party_user_id"], int(claimed["check_anchor"]), int(claimed["check_step"]))
                    # what the dispatcher claimed was due at the ladder's time, or at a retry's time
                    due_log.setdefault(key, _due_of(ladder, key))
            bodies = [reconcile.Message(str(i), json.dumps(m)) for i, m in enumerate(messages)]
            reconcile.work(onboarding, bodies, pacers[slot])
            push(clock.now, "slot", slot)

    # per-user query counts of the users whose ladder ended within the horizon (registered early enough)
    complete_days = [
        day for day in range(days) if day * DAY + ladder.steps[-1] * (1 + schedule.JITTER) < days * DAY - DAY
    ]
    counted = [user for user, day in registered_day.items() if day in complete_days]
    expected = {"none": 0, "notified": 0, "lost": 1, "stalled": len(ladder.steps)}
    wrong = [user for user in counted if htouhui.queries[user] != expected[outcomes[user]]]
    per_registration = sum(htouhui.queries[user] for user in counted) / max(1, len(counted))
    checks_per_day = Counter(int((at - EPOCH.timestamp()) // DAY) for _, at in checked_log)
    delays = [checked - due for due, checked in checked_log]
    backlog_before_peak = []
    for day in range(1, days):
        before_peak = EPOCH.timestamp() + day * DAY + PEAK_HOUR * 3600 - 60
        backlog_before_peak.append(sum(1 for due, checked in checked_log if due < before_peak - 300 < checked))
    return {
        "budget_per_s": budget,
        "sample_budget_per_s": settings.reconcile_rate_budget,
        "users": len(outcomes),
        "queries": sum(htouhui.queries.values()),
        "queries_per_registration": round(per_registration, 4),
        "registrations_counted": len(counted),
        "users_with_wrong_count": len(wrong),
        "checked_twice_at_once": htouhui.overlaps,
        # the pacing's invariant: at most `slots` query starts in any window of one pacing interval
        "busiest_interval_queries": _busiest_window(htouhui.per_second, interval),
        "slots": slots,
        "queries_per_day_x1000": [checks_per_day.get(day, 0) * SAMPLE for day in range(days)],
        "worst_delay_min": round(max(delays, default=0) / 60, 1),
        "oldest_first_violations": violations,
        "dispatched": dispatched,
        "late_at_next_peak": backlog_before_peak,
    }


def _busiest_window(per_second: Counter[int], width: float) -> int:
    """Most query starts in any window of `width` seconds (whole seconds, so one more second is allowed)."""
    seconds = sorted(per_second)
    best = total = start = 0
    for end, second in enumerate(seconds):
        total += per_second[second]
        while second - seconds[start] >= width:
            total -= per_second[seconds[start]]
            start += 1
        best = max(best, total)
        del end
    return best


def _due_of(ladder: Any, key: tuple[str, Any, Any]) -> float:
    user, anchor, step = key
    return float(ladder.due(user, int(anchor), int(step)))


# ------------------------------------------------------------------------------------------------ the section


def measure(
    keys_dir: Path,
    *,
    days: int = 365,
    sample_days: int = 14,
    budgets: tuple[float, ...] = (50.0, 20.0),
    scenario_days: int | None = None,
    plot: Path | None = None,
    progress: Callable[[str], None] = lambda _line: None,
    cost: bool = False,
    honest: bool = False,
) -> tuple[list[Figure], dict[str, Any]]:
    from onboarding import reconcile, schedule
    from onboarding.config import Settings

    def default(name: str) -> Any:
        value = Settings.__dataclass_fields__[name].default
        if value is dataclasses.MISSING:
            raise RuntimeError(f"Settings.{name} has no default")
        return value

    ladder: tuple[int, ...] = default("reconcile_ladder")
    shards: int = default("reconcile_shards")
    workers: int = default("reconcile_workers")
    priority: int = default("reconcile_priority_workers")
    started = time.process_time()
    details: dict[str, Any] = {"model": {"peak_hour_utc": PEAK_HOUR, "peak_factor": PEAK_FACTOR}, "budgets": {}}
    figures: list[Figure] = []
    ladder_days = math.ceil(ladder[-1] * (1 + schedule.JITTER) / DAY) + 1
    for budget in budgets:
        fake = SimpleNamespace(
            reconcile_rate_budget=budget, reconcile_workers=workers, reconcile_priority_workers=priority
        )
        rate = reconcile.scheduled_rate(fake)  # type: ignore[arg-type]
        model = cohort_model(days, ladder, schedule.JITTER, rate, shards)
        progress(f"scale: cohort model at {budget:g}/s for {days} days")
        sample = sample_run(min(sample_days, days), budget, keys_dir)
        progress(f"scale: real code, 1:{SAMPLE} sample at {budget:g}/s for {sample['users'] and sample_days} days")
        rows = model["rows"]
        steady = rows[ladder_days:] or rows[-1:]
        expected = expected_queries_per_registration(len(ladder))
        agreement = sample["queries_per_registration"] / expected if expected else 0.0
        key = f"{budget:g}"
        details["budgets"][key] = {"scheduled_rate_per_s": round(rate, 2), "days": rows, "sample": sample}
        if budget == budgets[0]:
            flat = max(row["queries"] for row in steady) / max(1, min(row["queries"] for row in steady))
            outside = max(row["worst_delay_outside_peak_min"] for row in rows)
            inside = max(row["worst_delay_peak_min"] for row in rows)
            figures += [
                Figure("scale", f"queries per day at {key}/s", max(r["queries"] for r in rows), 1.6e6,
                       "queries", target=1.0, direction="max"),
                Figure("scale", "queries per day, steady max/min", round(flat, 4), 1.0, "ratio", target=1.01,
                       direction="max"),
                Figure("scale", f"peak queries per second at {key}/s", max(r["peak_qps"] for r in rows), budget,
                       "q/s", target=1.0, direction="max"),
                Figure("scale", "worst delay outside the peak window", outside, 5, "min", target=1.0,
                       direction="max"),
                Figure("scale", "worst delay within the peak window", inside, 20, "min", target=1.0,
                       direction="max"),
            ]  # fmt: skip
        else:
            caught_up = max(row["backlog_before_peak"] for row in rows[1:])
            figures += [
                Figure("scale", f"backlog left at the next peak at {key}/s", caught_up, 1, "checks", target=1.0,
                       direction="max"),
                Figure("scale", f"largest backlog at {key}/s", max(r["backlog_max"] for r in rows), None,
                       "checks"),
            ]  # fmt: skip
        figures += [
            Figure("scale", f"sample per-user queries vs model at {key}/s", round(abs(agreement - 1), 4), 0.02,
                   "deviation", target=1.0, direction="max"),
            Figure("scale", f"sample checks lost or doubled at {key}/s",
                   sample["users_with_wrong_count"] + sample["checked_twice_at_once"], 1, "users", target=1.0,
                   direction="max"),
            Figure("scale", f"sample runs not sending the oldest due first at {key}/s",
                   sample["oldest_first_violations"], 1, "runs", target=1.0, direction="max"),
            Figure("scale", f"sample busiest pacing interval at {key}/s", sample["busiest_interval_queries"],
                   sample["slots"], "queries", target=1.0, direction="max"),
        ]  # fmt: skip
    if cost:  # the stack's cost at the first budget's steady queries a day (bench.cost)
        from bench import cost as costs

        steady_days = details["budgets"][f"{budgets[0]:g}"]["days"][ladder_days:] or rows[-1:]
        queries = max(row["queries"] for row in steady_days)
        found, details["cost"] = costs.measure(keys_dir, queries_per_day=queries, progress=progress)
        figures += found
    if honest:  # the real handlers on threads over moto, against the model (bench.sample)
        from bench import sample as honest_sample

        progress("scale: the honest sample (real handlers, threads, moto's DynamoDB and SQS)")
        details["honest_sample"] = honest_sample.in_child(honest_sample.Workload())
        figures += honest_sample.figures(details["honest_sample"])
    details["scenarios"] = run_scenarios(min(days, 30) if scenario_days is None else scenario_days, progress)
    figures += scenario_figures(details["scenarios"])
    details["cpu_seconds"] = round(time.process_time() - started, 1)
    if plot is not None:
        draw(details, plot)
    return figures, details


def run_scenarios(days: int, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    from bench import scenarios

    return scenarios.run_all(days, progress=progress)


def scenario_figures(results: list[dict[str, Any]]) -> list[Figure]:
    """Per scenario: the backlog left at the end (bounded: it must drain) and the worst delay against the
    same scenario served the old way (oldest first, one query per step); the stated cohort must not get worse."""
    figures = []
    for row in results:
        name = row["name"]
        figures += [
            Figure("scale", f"scenario {name}: backlog at the last day's end", row["daily_backlog"][-1], 1,
                   "checks", target=1.0, direction="max",
                   extra={key: row[key] for key in ("queries_per_day", "peak_qps", "budget_qps", "largest_backlog")}),
            Figure("scale", f"scenario {name}: worst delay vs oldest-first", row["worst_delay_minutes"],
                   max(1, row["before"]["worst_delay_minutes"]), "min",
                   target=1.0 if name == "stated cohort" else None, direction="max",
                   extra={"p99_delay_minutes": row["p99_delay_minutes"]}),
        ]  # fmt: skip
    return figures


def draw(details: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(4, 1, figsize=(10, 12))
    for budget, data in details["budgets"].items():
        days = [row["day"] for row in data["days"]]
        axes[0].plot(days, [row["queries"] / 1e6 for row in data["days"]], label=f"budget {budget}/s")
        axes[1].plot(days, [row["index_size"] / 1e6 for row in data["days"]], label=f"budget {budget}/s")
        axes[2].plot(days, [row["worst_delay_min"] for row in data["days"]], label=f"budget {budget}/s")
    axes[0].axhline(1.6, color="grey", linestyle="--", linewidth=0.8)
    axes[0].set_ylabel("Htouhui queries / day (M)")
    axes[1].set_ylabel("due-time index (M users)")
    axes[2].set_ylabel("worst delay (min)")
    axes[2].set_xlabel("day")
    for row in details.get("scenarios", []):
        hourly = row["hourly_backlog"]
        axes[3].plot([hour / 24 for hour in range(len(hourly))], [value / 1e3 for value in hourly], label=row["name"])
    axes[3].set_ylabel("due, not yet sent (k users)")
    axes[3].set_xlabel("day (scenarios)")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(loc="upper right")
    figure.suptitle("Reconciliation at 1,000,000 registrations a day (cohort model)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


__all__ = ["cohort_model", "measure", "run_scenarios", "sample_run", "scenario_figures"]
