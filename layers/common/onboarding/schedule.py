"""The reconciliation schedule's rules, pure: the ladder, its jitter, the shards, the retry backoff, the pacing.

A user enters the schedule when the open-account form is handed out and is checked on a backoff ladder
counted from an *anchor* (the form, or the latest news below status 3): step i is due at
`anchor + ladder[i] * (1 + jitter)`, where the jitter (0 to `JITTER` of the step) is derived from the user
and the step, so that a peak hour's 24 h, 72 h and 7 d checks spread over hours instead of meeting the
next day's peak, and so that the same user and step always get the same time (a model can predict it).

- every completed check moves the user to the next step, whatever the answer;
- status 3, or completing the last step, takes the user out of the schedule;
- news below status 3 (notification, browser return, refresh, CheckUserStatus, a fresh form) restarts
  the ladder at step 0 from that moment;
- a failed check is tried again after `retry_delay(attempts)`; the `MAX_ATTEMPTS`-th failure skips the step;
- a check taken late, past its next step's time (a backlog), is one check for the latest step passed
  (`coalesce`): the skipped steps cost no query, so a backlog costs one check per user, whatever its age.

Nothing here reads a clock, a table or the network: the store and the workers pass the moments in.
"""

from __future__ import annotations

import hashlib
import math
import re
import zlib
from dataclasses import dataclass
from typing import Final

DEFAULT_LADDER: Final = "5m,15m,1h,4h,24h,72h,7d"
DEFAULT_SHARDS: Final = 16
JITTER: Final = 0.2  # a step's check is due within its first fifth: 24 h -> 24 h to 28.8 h after the anchor
MAX_ATTEMPTS: Final = 5  # failed attempts of one step before it is skipped (and a failure counted)
RETRY_BASE_SECONDS: Final = 30  # 30 s, 60 s, 120 s, 240 s between the failed attempts of a step
DISPATCH_LEASE_SECONDS: Final = 900  # a dispatched user comes back due after this if its message is lost
OLDEST_SHARE: Final = 0.1  # of a run that cannot send everything due: the oldest due; the rest youngest first
BEND_AFTER_SECONDS: Final = 600  # a backlog this old is overload, not a peak passing: only then youngest first
CHECK_LEASE_SECONDS: Final = 120  # one check at a time per user; a crashed worker's lease expires
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_STEP = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")


def parse_ladder(text: str) -> tuple[int, ...]:
    """`"5m,15m,1h"` -> (300, 900, 3600): strictly increasing offsets from the anchor, in seconds."""
    steps: list[int] = []
    for part in text.split(","):
        match = _STEP.match(part)
        if match is None:
            raise ValueError(f"step {part.strip()!r} is not a number followed by s, m, h or d")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
        if seconds <= 0:
            raise ValueError(f"step {part.strip()!r} must be positive")
        if steps and seconds <= steps[-1]:
            raise ValueError("steps must be strictly increasing (offsets from the form, not gaps)")
        steps.append(seconds)
    return tuple(steps)


def jitter_fraction(third_party_user_id: str, step: int) -> float:
    """In [0, JITTER): the same for the same user and step, uniform over users."""
    digest = hashlib.blake2b(f"{third_party_user_id}\x00{step}".encode(), digest_size=4).digest()
    return JITTER * int.from_bytes(digest, "big") / 2**32


def shard_of(third_party_user_id: str, shards: int) -> str:
    """The index partition a user's due time is written under: `"00"` .. `"<shards-1>"`."""
    return f"{zlib.crc32(third_party_user_id.encode()) % shards:02d}"


@dataclass(frozen=True)
class Ladder:
    steps: tuple[int, ...]

    @classmethod
    def parse(cls, text: str = DEFAULT_LADDER) -> Ladder:
        return cls(parse_ladder(text))

    def due(self, third_party_user_id: str, anchor: int, step: int) -> int:
        """Epoch second at which `step` (0-based) is due for a ladder anchored at `anchor`."""
        offset = self.steps[step] * (1 + jitter_fraction(third_party_user_id, step))
        return anchor + math.ceil(offset)

    def is_last(self, step: int) -> bool:
        return step >= len(self.steps) - 1


@dataclass(frozen=True)
class Slot:
    """Where a user stands on the ladder (the attributes the store keeps)."""

    anchor: int
    step: int
    due: int


def start(ladder: Ladder, third_party_user_id: str, now: int) -> Slot:
    """A fresh form or news below status 3: step 0, counted from now."""
    return Slot(now, 0, ladder.due(third_party_user_id, now, 0))


def advance(ladder: Ladder, third_party_user_id: str, slot: Slot) -> Slot | None:
    """After a completed (or skipped) check: the next step, or None when the ladder is done."""
    if ladder.is_last(slot.step):
        return None
    step = slot.step + 1
    return Slot(slot.anchor, step, ladder.due(third_party_user_id, slot.anchor, step))


def coalesce(ladder: Ladder, third_party_user_id: str, slot: Slot, now: int) -> Slot:
    """Overload that bends: a check overdue past its next step(s) is one check, for the latest step it has passed.

    The ladder's anchor is kept; the step becomes the last one due at `now` (never an earlier one, never
    past the last step). A check on time (or only its own step passed) is returned unchanged.
    """
    step = slot.step
    while not ladder.is_last(step) and ladder.due(third_party_user_id, slot.anchor, step + 1) <= now:
        step += 1
    if step == slot.step:
        return slot
    return Slot(slot.anchor, step, ladder.due(third_party_user_id, slot.anchor, step))


def retry_delay(attempts: int) -> int:
    """Seconds before the next try of a step that failed `attempts` times (1-based)."""
    return int(RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1))


def pacing_interval(budget_per_second: float, slots: int) -> float:
    """Seconds between two queries of one worker slot, so that `slots` slots together stay within the budget."""
    return slots / budget_per_second
