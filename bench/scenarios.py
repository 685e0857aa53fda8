"""Reconciliation scenarios at full scale: the stated cohort, and what happens when it does not hold.

A user-group simulation, minute by minute: each minute's forms are split by outcome and into a few groups
(each its own synthetic user id, so `onboarding.schedule` gives it its own jitter); a group walks the ladder as
one user would, with its number of users as weight. Each minute the dispatcher's share of the budget is served:

- `bend` (the code as it is): once the oldest due has waited `onboarding.schedule.BEND_AFTER_SECONDS`,
  `onboarding.schedule.OLDEST_SHARE` of a run that cannot send everything due goes to the oldest due, the
  rest most recently due first (onboarding.checks.dispatch_due), and each check through
  `schedule.coalesce` (onboarding.checks.check_scheduled): one query for the latest step passed;
- `fifo` (before, for comparison): oldest due first, one query per step whatever its lateness.

A failed query (Htouhui's query interface down) is tried again after `schedule.retry_delay` and the step is
skipped after `schedule.MAX_ATTEMPTS`, as the worker does; a query that times out holds its slot for the
client's connect + read time-outs, so the budget's query starts fall while Htouhui hangs.

The delay of an answered check runs from when the user's pending check first became due (before any
coalescing or retry) to its answer, plus the dispatcher's minute; the backlog is the users due and not yet sent.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import scale

DAY = 86400
GROUPS = 2  # groups per outcome and minute (each with its own jitter)
HALF_GROUPS = 12  # the completing half of "half complete within an hour": one group per 5 minutes


@dataclass(frozen=True)
class Scenario:
    name: str
    registrations_per_day: float = scale.REGISTRATIONS_PER_DAY
    budget: float | None = 50.0  # None: sized by the bench
    nobody_completes: tuple[int, int] | None = None  # forms in [start, end) s all stall
    half_within_hour: bool = False  # half the form users complete (notified) uniformly within an hour
    query_down: tuple[int, int] | None = None  # Htouhui's query interface fails in [start, end) s
    timeout_share: float = 0.5  # of the failures while down: time-outs (the rest answer 9999 at once)


def scenarios(days: int) -> list[Scenario]:
    """The issue's scenarios; the disruptions start on day `days // 2` (the ladder full by then in `make bench`)."""
    start = (days // 2) * DAY
    return [
        Scenario("stated cohort"),
        Scenario("nobody completes for 24 h, then normal", nobody_completes=(start, start + DAY)),
        Scenario("half complete uniformly within an hour", half_within_hour=True),
        Scenario("query interface down 6 h (9999, time-outs)", query_down=(start + 10 * 3600, start + 16 * 3600)),
        Scenario("10 M registrations/day", registrations_per_day=10 * scale.REGISTRATIONS_PER_DAY, budget=None),
    ]


class _Group:
    __slots__ = ("alive", "anchor", "attempts", "completes_at", "due", "first_due", "notified", "step", "uid", "weight")

    def __init__(self, uid: str, weight: float, anchor: int, step: int, due: int) -> None:
        self.uid, self.weight, self.anchor, self.step, self.due = uid, weight, anchor, step, due
        self.first_due = due
        self.attempts = 0
        self.completes_at = math.inf  # when Htouhui's status reaches 3
        self.notified = False  # that completion is notified: the user leaves the schedule then
        self.alive = True

    def part(self, weight: float) -> _Group:
        other = _Group(self.uid, weight, self.anchor, self.step, self.due)
        other.first_due, other.attempts = self.first_due, self.attempts
        other.completes_at, other.notified = self.completes_at, self.notified
        self.weight -= weight
        return other


def simulate(
    scenario: Scenario,
    days: int,
    *,
    budget: float,
    policy: str = "bend",
    workers: int = 23,
    priority_workers: int = 2,
    query_seconds: float = 7.0,
    window: tuple[int, int, int] | None = None,
) -> dict[str, Any]:
    """One scenario for `days` days at `budget` queries per second (the scheduled workers' share is served);
    `window` (start, end, horizon in seconds of day 0): forms only in [start, end), the run from start to horizon."""
    from onboarding import schedule

    ladder = schedule.Ladder(scale_ladder())
    slots = workers + priority_workers
    interval = schedule.pacing_interval(budget, slots)
    capacity = budget * workers / slots * 60  # query starts per minute (one pacing interval each)
    if scenario.query_down is not None:
        share = scenario.timeout_share
        down_capacity = capacity * interval / ((1 - share) * interval + share * max(interval, query_seconds))
    minutes = days * 1440 if window is None else window[2] // 60
    first = 0 if window is None else window[0] // 60
    per_minute = [scenario.registrations_per_day * scale.hourly_share()[m // 60] / 60 * scale.FORM for m in range(1440)]
    if window is not None:
        per_minute = [forms if window[0] <= m * 60 < window[1] else 0.0 for m, forms in enumerate(per_minute)]
    future: list[tuple[int, int, _Group]] = []  # (due, sequence, group): not due yet
    completions: list[tuple[float, int, _Group]] = []  # notified completions, in time order
    due_now: deque[_Group] = deque()  # due, oldest due on the left (they come in due order)
    due_weight = 0.0
    sequence = 0
    queries = [0.0] * minutes
    backlog = [0.0] * minutes
    delays: dict[int, float] = {}

    def schedule_at(group: _Group) -> None:
        nonlocal sequence
        sequence += 1
        heapq.heappush(future, (group.due, sequence, group))

    def add(uid: str, weight: float, anchor: int, completes_at: float, notified: bool) -> None:
        nonlocal sequence
        group = _Group(uid, weight, anchor, 0, ladder.due(uid, anchor, 0))
        group.completes_at, group.notified = completes_at, notified
        if notified and completes_at <= group.due:
            return  # notified before its first check: never queried
        schedule_at(group)
        if notified:
            sequence += 1
            heapq.heappush(completions, (completes_at, sequence, group))

    def serve(group: _Group, now: int, failing: bool) -> None:
        minute = (now - scale_epoch()) // 60
        queries[minute] += group.weight
        slot = schedule.Slot(group.anchor, group.step, group.due)
        if policy == "bend":
            late = schedule.coalesce(ladder, group.uid, slot, now)
            if late != slot:
                group.attempts = 0
            slot = late
        group.step = slot.step
        if failing:
            group.attempts += 1
            if group.attempts < schedule.MAX_ATTEMPTS:
                group.due = now + schedule.retry_delay(group.attempts)
                schedule_at(group)
                return
            following = schedule.advance(ladder, group.uid, slot)  # the step is skipped
        else:
            late_by = int((now - group.first_due) // 60) + 1  # + the dispatcher's minute
            delays[late_by] = delays.get(late_by, 0.0) + group.weight
            if group.completes_at <= now:
                return  # the answer is status 3: off the schedule
            following = schedule.advance(ladder, group.uid, slot)
        if following is None:
            return
        group.step, group.due, group.first_due, group.attempts = following.step, following.due, following.due, 0
        schedule_at(group)

    def take(amount: float, newest: bool, now: int, failing: bool) -> float:
        nonlocal due_weight
        while amount > 1e-9 and due_now:
            group = due_now.pop() if newest else due_now.popleft()
            if not group.alive:
                continue
            if group.weight > amount:
                served = group.part(amount)
                (due_now.append if newest else due_now.appendleft)(group)
            else:
                served = group
            due_weight -= served.weight
            amount -= served.weight
            serve(served, now, failing)
        return amount

    epoch = scale_epoch()
    for minute in range(first, minutes):
        now = epoch + minute * 60
        day, minute_of_day = divmod(minute, 1440)
        forms = per_minute[minute_of_day]
        anchor = now
        stalled_all = scenario.nobody_completes is not None and (
            scenario.nobody_completes[0] <= minute * 60 < scenario.nobody_completes[1]
        )
        if stalled_all:
            for n in range(GROUPS):
                add(f"{minute}-a{n}", forms / GROUPS, anchor, math.inf, False)
        elif scenario.half_within_hour:
            for n in range(GROUPS):
                add(f"{minute}-s{n}", forms * 0.5 / GROUPS, anchor, math.inf, False)
            for n in range(HALF_GROUPS):
                add(f"{minute}-h{n}", forms * 0.5 / HALF_GROUPS, anchor, anchor + (n + 0.5) * 3600 / HALF_GROUPS, True)
        else:
            for n in range(GROUPS):
                add(f"{minute}-s{n}", forms * scale.STALLED / GROUPS, anchor, math.inf, False)
                add(f"{minute}-l{n}", forms * scale.LOST / GROUPS, anchor, anchor + scale.NOTIFY_AFTER, False)
        while completions and completions[0][0] <= now:
            group = heapq.heappop(completions)[2]
            if group.alive:
                group.alive = False  # the notification takes the user off the schedule
        while future and future[0][0] <= now:
            group = heapq.heappop(future)[2]
            if group.alive:
                due_now.append(group)
                due_weight += group.weight
        # what is due and alive (a notified group leaves the deque lazily)
        due_weight = sum(group.weight for group in due_now if group.alive) if completions else due_weight
        failing = scenario.query_down is not None and scenario.query_down[0] <= minute * 60 < scenario.query_down[1]
        room = down_capacity if failing else capacity
        oldest_age = next((now - group.due for group in due_now if group.alive), 0)
        if policy == "bend" and due_weight > room and oldest_age >= schedule.BEND_AFTER_SECONDS:
            oldest = room * schedule.OLDEST_SHARE
            left = take(oldest, False, now, failing)
            take(room - oldest + left, True, now, failing)
        else:
            take(room, False, now, failing)
        backlog[minute] = max(0.0, due_weight)
        del day
    return _summary(scenario, budget, queries, backlog, delays, days)


def _summary(
    scenario: Scenario, budget: float, queries: list[float], backlog: list[float], delays: dict[int, float], days: int
) -> dict[str, Any]:
    per_day = [sum(queries[day * 1440 : (day + 1) * 1440]) for day in range(days)]
    total = sum(delays.values())
    ordered = sorted(delays.items())
    worst = 0
    tail = 0.0
    for late_by, weight in reversed(ordered):  # the worst delay at least one whole user waited
        tail += weight
        if tail >= 1.0:
            worst = late_by
            break
    p99 = 0
    running = 0.0
    for late_by, weight in ordered:
        running += weight
        if running >= 0.99 * total:
            p99 = late_by
            break
    return {
        "name": scenario.name,
        "registrations_per_day": scenario.registrations_per_day,
        "queries_per_day": round(max(per_day)),
        "queries_by_day": [round(value) for value in per_day],
        "peak_qps": round(max(queries) / 60, 2),
        "budget_qps": budget,
        "worst_delay_minutes": worst,
        "p99_delay_minutes": p99,
        "largest_backlog": round(max(backlog)),
        "daily_backlog": [round(backlog[min(len(backlog), (day + 1) * 1440) - 1]) for day in range(days)],
        "hourly_backlog": [round(max(backlog[hour * 60 : (hour + 1) * 60], default=0)) for hour in range(days * 24)],
    }


def sized_budget(scenario: Scenario, days: int, *, workers: int = 23, priority_workers: int = 2) -> float:
    """The smallest multiple of 10/s whose scheduled share covers the busiest minute's due checks."""
    unbounded = simulate(scenario, days, budget=1e9, workers=workers, priority_workers=priority_workers)
    needed = unbounded["peak_qps"] * (workers + priority_workers) / workers
    return float(math.ceil(needed / 10) * 10)


def scale_ladder() -> tuple[int, ...]:
    from onboarding.schedule import DEFAULT_LADDER, parse_ladder

    return parse_ladder(DEFAULT_LADDER)


def scale_epoch() -> int:
    return int(scale.EPOCH.timestamp())


def run_all(
    days: int, *, progress: Callable[[str], None] = lambda _line: None, workers: int = 23, priority_workers: int = 2
) -> list[dict[str, Any]]:
    """Every scenario with the code as it is (`bend`), and the same before the change (`fifo`) beside it."""
    results = []
    for scenario in scenarios(days):
        budget = scenario.budget
        if budget is None:
            budget = sized_budget(scenario, min(days, 10), workers=workers, priority_workers=priority_workers)
        after = simulate(scenario, days, budget=budget, workers=workers, priority_workers=priority_workers)
        before = simulate(
            scenario, days, budget=budget, policy="fifo", workers=workers, priority_workers=priority_workers
        )
        kept = ("queries_per_day", "worst_delay_minutes", "p99_delay_minutes", "largest_backlog", "daily_backlog")
        after["before"] = {key: before[key] for key in kept}
        results.append(after)
        progress(f"scale: scenario {scenario.name!r} at {budget:g}/s")
    return results


__all__ = ["Scenario", "run_all", "scenarios", "simulate", "sized_budget"]
