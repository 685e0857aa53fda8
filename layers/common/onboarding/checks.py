"""Reconciliation checks: the dispatcher's oldest-due-first merge over the shards, and the worker's checks.

    Checks(core)
    .dispatch_due(queue, *, limit, should_stop=None) -> DispatchReport     # the dispatcher
    .check_scheduled(third_party_user_id, due, *, pace=None) -> CheckOutcome  # a worker: a due user
    .check_now(third_party_user_id, *, pace=None) -> CheckOutcome             # a worker: CheckUserStatus

Reconciliation is a per-user schedule (onboarding.schedule): a fresh form and any news below status 3
(notification, browser return, refresh, CheckUserStatus) restart the ladder from that moment.
"""

from __future__ import annotations

import enum
import logging
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from htouhui.errors import HtouhuiRejected
from onboarding import schedule
from onboarding.core import Core
from onboarding.store import ApplyOutcome, UserRecord
from onboarding.view import COMPLETED_STATUS

logger = logging.getLogger(__name__)

CLAIM_CHUNK = 80  # claims in flight together between two looks at `should_stop` (a few store round trips)


class CheckOutcome(enum.StrEnum):
    CHECKED = "CHECKED"  # Htouhui answered; the answer is stored and the ladder moved to its next step
    REJECTED = "REJECTED"  # Htouhui answered an error code: a completed check (the ladder moves), a failure counted
    FAILED = "FAILED"  # no usable answer (9999, time-out, 5xx, unreachable, storage): tried again after a backoff
    GAVE_UP = "GAVE_UP"  # the step's last allowed attempt failed: the step is skipped, a failure counted
    SKIPPED = "SKIPPED"  # nothing asked: checked by someone else right now, no longer due, or nothing to ask with
    NOT_FOUND = "NOT_FOUND"  # no such user (CheckUserStatus)


@dataclass(frozen=True)
class DispatchReport:
    found: int = 0  # due users read from the index (at most the run's limit)
    dispatched: int = 0  # claimed and sent to the queue
    taken: int = 0  # moved by someone else between the read and the claim: left alone
    oldest_due: int | None = None  # the oldest due time in the index at the run (None: nothing due)

    def oldest_due_age(self, now: int) -> int:
        """Seconds the oldest due check has waited (0 when nothing is due): OldestDueCheckAgeSeconds."""
        return 0 if self.oldest_due is None else max(0, now - self.oldest_due)


class WorkQueue(Protocol):
    """Where the dispatcher sends due users (SQS in the cloud, a list in the simulation)."""

    def send(self, messages: list[dict[str, Any]]) -> None: ...

    def depth(self) -> int: ...


class Checks:
    def __init__(self, core: Core) -> None:
        self.core = core

    def dispatch_due(
        self, queue: WorkQueue, *, limit: int, should_stop: Callable[[], bool] | None = None
    ) -> DispatchReport:
        """Send up to `limit` due users to the queue (the dispatcher); the rest waits in the index.

        When everything due fits, everything due is sent, and so it is oldest first while the oldest due has
        waited less than `schedule.BEND_AFTER_SECONDS` (a peak passing). Past that (overload), the run bends:
        `schedule.OLDEST_SHARE` of it goes to the oldest due users (nothing starves) and the rest to the
        most recently due, youngest first (for one step, the youngest forms: the users most likely still on
        Htouhui's pages); the older ones wait, and when their turn comes each is one check for the latest
        step it has passed (`schedule.coalesce`, in `check_scheduled`), so a backlog costs at most one check
        per user on the ladder. Each sent user is claimed first (its due time moves a dispatch lease ahead,
        so the next run does not send it again while its message waits), `CLAIM_CHUNK` claims at a time in
        parallel (`store.claim_dispatches`), the claimed ones ten to a message batch, in the run's order.
        """
        store = self.core.store
        now = self.core.now()
        shards = [f"{shard:02d}" for shard in range(self.core.policy.shards)]
        oldest = _merged(store, shards, now, max(1, limit), newest=False)
        oldest_due = oldest[0].due if oldest else None
        if limit <= 0:
            return DispatchReport(oldest_due=oldest_due)
        rows = oldest[:limit]
        overloaded = oldest_due is not None and now - oldest_due >= schedule.BEND_AFTER_SECONDS
        if len(oldest) >= limit and overloaded:  # a lasting backlog: youngest first, with a share for the oldest
            keep = int(limit * schedule.OLDEST_SHARE)
            rows = rows[:keep]
            chosen = {row.third_party_user_id for row in rows}
            for row in _merged(store, shards, now, limit, newest=True):
                if len(rows) == limit:
                    break
                if row.third_party_user_id not in chosen:
                    rows.append(row)
                    chosen.add(row.third_party_user_id)
        until = now + schedule.DISPATCH_LEASE_SECONDS
        dispatched = taken = 0
        batch: list[dict[str, Any]] = []
        for start in range(0, len(rows), CLAIM_CHUNK):
            if should_stop is not None and should_stop():
                break
            chunk = rows[start : start + CLAIM_CHUNK]
            for row, claimed in zip(chunk, store.claim_dispatches(chunk, until), strict=True):
                if not claimed:
                    taken += 1
                    continue
                batch.append({"third_party_user_id": row.third_party_user_id, "due": until})
                if len(batch) == 10:
                    queue.send(batch)
                    dispatched += len(batch)
                    batch = []
        if batch:
            queue.send(batch)
            dispatched += len(batch)
        return DispatchReport(found=len(rows), dispatched=dispatched, taken=taken, oldest_due=oldest_due)

    def check_scheduled(
        self, third_party_user_id: str, due: int, *, pace: Callable[[], None] | None = None
    ) -> CheckOutcome:
        """One dispatched user: ask Htouhui, store the answer, move the ladder (a worker, one message).

        Skipped without a query when another check holds the user or its due time is no longer the
        dispatched one (news restarted the ladder, or the message is an old duplicate).
        """
        core, store = self.core, self.core.store
        token = secrets.token_hex(8)
        now = core.now()
        record = store.begin_check(
            third_party_user_id, token=token, now=now, lease_until=now + schedule.CHECK_LEASE_SECONDS, due=due
        )
        if record is None:
            return CheckOutcome.SKIPPED
        taken_on = record.slot
        if taken_on is None or not record.id_card or not record.htouhui_user_id:
            store.release_check(third_party_user_id, token)
            return CheckOutcome.SKIPPED
        # a late check (a backlog) past its next step is one check, for the latest step passed
        slot = schedule.coalesce(core.ladder(), third_party_user_id, taken_on, now)
        earlier_attempts = record.check_attempts if slot == taken_on else 0
        shard = record.check_shard or core.shard_of(third_party_user_id)
        if pace is not None:
            pace()  # the rate budget: only a check that will ask Htouhui waits for its turn
        outcome, finished = self._ask(record)
        if finished:  # status 3 took the user off the schedule in the same write: only the lease is left
            store.release_check(third_party_user_id, token)
            return outcome
        if outcome is CheckOutcome.FAILED:
            attempts = earlier_attempts + 1
            if attempts < schedule.MAX_ATTEMPTS:
                retry = schedule.Slot(slot.anchor, slot.step, core.now() + schedule.retry_delay(attempts))
                store.settle_check(
                    third_party_user_id, token=token, taken_on=taken_on, next_slot=retry, shard=shard, attempts=attempts
                )
                return CheckOutcome.FAILED
            outcome = CheckOutcome.GAVE_UP
        store.settle_check(
            third_party_user_id,
            token=token,
            taken_on=taken_on,
            next_slot=schedule.advance(core.ladder(), third_party_user_id, slot),
            shard=shard,
        )
        return outcome

    def check_now(self, third_party_user_id: str, *, pace: Callable[[], None] | None = None) -> CheckOutcome:
        """CheckUserStatus: ask Htouhui now and put the user back on the ladder from now (unless at status 3).

        FAILED means "try again" (the worker reports the message as failed, SQS delivers it again).
        """
        core, store = self.core, self.core.store
        token = secrets.token_hex(8)
        now = core.now()
        record = store.begin_check(
            third_party_user_id, token=token, now=now, lease_until=now + schedule.CHECK_LEASE_SECONDS
        )
        if record is None:
            if store.get(third_party_user_id) is None:
                return CheckOutcome.NOT_FOUND
            return CheckOutcome.FAILED  # another check holds the user: this one waits for its turn
        if not record.registered or not record.id_card:
            store.release_check(third_party_user_id, token)
            return CheckOutcome.SKIPPED  # nothing to ask with before the form
        if pace is not None:
            pace()
        outcome, finished = self._ask(record)
        if outcome is CheckOutcome.FAILED or finished:
            store.release_check(third_party_user_id, token)
            return outcome
        store.settle_check(
            third_party_user_id,
            token=token,
            taken_on=None,
            next_slot=schedule.start(core.ladder(), third_party_user_id, core.now()),
            shard=core.shard_of(third_party_user_id),
        )
        return outcome

    def _ask(self, record: UserRecord) -> tuple[CheckOutcome, bool]:
        """The query and the monotonic store (`Core.check`), its failure classified: a rejection is an answer.

        Also whether this answer finished the user (status 3 stored: the store's write took it off the schedule),
        so that the check gives back its lease alone instead of a settle bound to fail (a write unit saved).
        """
        try:
            status, applied = self.core.answer_and_store(record)
        except HtouhuiRejected as exc:
            _log_failure(record, exc)
            return CheckOutcome.REJECTED, False
        except Exception as exc:
            _log_failure(record, exc)
            return CheckOutcome.FAILED, False
        return CheckOutcome.CHECKED, applied is ApplyOutcome.APPLIED and status >= COMPLETED_STATUS


def _merged(store: Any, shards: list[str], now: int, limit: int, *, newest: bool) -> list[Any]:
    """The `limit` oldest (or most recently) due users over all shards, exactly: each shard gives a fair share
    and a half (the shards being alike by hash), and a shard whose every row made the cut is asked again."""
    asked = dict.fromkeys(shards, min(limit, math.ceil(limit * 1.5 / len(shards)) + 1))
    found = {shard: store.due(shard, now, asked[shard], newest_first=newest) for shard in shards}
    sign = -1 if newest else 1
    while True:
        rows = sorted(
            (row for shard_rows in found.values() for row in shard_rows),
            key=lambda row: (sign * row.due, row.shard, row.third_party_user_id),
        )[:limit]
        cutoff = rows[-1].due if len(rows) == limit else None
        more = [
            shard
            for shard in shards
            if len(found[shard]) == asked[shard] < limit
            and (cutoff is None or sign * found[shard][-1].due <= sign * cutoff)
        ]
        if not more:
            return rows
        for shard in more:
            asked[shard] = min(limit, asked[shard] * 2)
            found[shard] = store.due(shard, now, asked[shard], newest_first=newest)


def _log_failure(record: UserRecord, exc: Exception) -> None:
    # Only what happened, never a value: Htouhui's message may name a field's content.
    logger.warning(
        "reconciliation check failed",
        extra={
            "third_party_user_id": record.third_party_user_id,
            "error": type(exc).__name__,
            "htouhui_code": getattr(exc, "code", None),
            "step": record.check_step,
            "attempts": record.check_attempts,
        },
    )
