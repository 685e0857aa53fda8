"""Faults a test can inject through `POST /_sandbox/faults`, one set per interface."""

from __future__ import annotations

import random
import threading
from dataclasses import asdict, dataclass
from typing import Any, Final

INTERFACES: Final = ("register", "query", "openAccount", "notify")
DEFAULT_HOLD_SECONDS: Final = 30.0


class FaultError(ValueError):
    """A fault request that does not make sense; the message says why."""


@dataclass
class InterfaceFault:
    """Applied to the next `count` requests of one interface (None: every request until cleared)."""

    latency_ms: int = 0
    error_rate: float = 0.0
    timeout: float = 0.0  # seconds to hold the request before closing the connection without an answer
    busy: bool = False
    bad_signature: bool = False
    unsigned: bool = False
    not_json: bool = False
    count: int | None = None

    def view(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class NotifyFault:
    drop: int = 0  # the next n notifications are never delivered
    duplicate: int = 0  # the next notification is delivered n more times after it is acknowledged
    reorder: int = 0  # hold notifications; 1 = until reorder is switched off, n >= 2 = until n are held
    corrupt_signature: int = 0  # the next n notifications carry a broken signature (on every retry)

    def view(self) -> dict[str, Any]:
        return asdict(self)


def _int(body: dict[str, Any], name: str, minimum: int = 0) -> int:
    value = body.get(name, 0)
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, int) or value < minimum:
        raise FaultError(f"{name} must be an integer >= {minimum}")
    return value


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise FaultError(f"{name} must be true or false")
    return value


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.interfaces: dict[str, InterfaceFault] = {}
        self.notify = NotifyFault()

    def set(self, body: dict[str, Any]) -> dict[str, Any]:
        interface = body.get("interface")
        if interface not in INTERFACES:
            raise FaultError(f"interface must be one of {', '.join(INTERFACES)}")
        known = set(InterfaceFault.__dataclass_fields__) | set(NotifyFault.__dataclass_fields__)
        unknown = sorted(set(body) - known - {"interface", "clear"})
        if unknown:
            raise FaultError(f"unknown fault field(s): {', '.join(unknown)}")
        with self._lock:
            if body.get("clear"):
                if interface == "notify":
                    self.notify = NotifyFault()
                else:
                    self.interfaces.pop(interface, None)
                return self.view()
            if interface == "notify":
                reorder = body.get("reorder", self.notify.reorder)
                if isinstance(reorder, bool):
                    reorder = int(reorder)
                if not isinstance(reorder, int) or reorder < 0:
                    raise FaultError("reorder must be true, false or a number of notifications to hold")
                self.notify = NotifyFault(
                    drop=_int(body, "drop"),
                    duplicate=_int(body, "duplicate"),
                    reorder=reorder,
                    corrupt_signature=_int(body, "corrupt_signature"),
                )
                return self.view()
            rate = body.get("error_rate", 0.0)
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise FaultError("error_rate must be a number from 0 to 1")
            timeout = body.get("timeout", False)
            if timeout is True:
                hold = DEFAULT_HOLD_SECONDS
            elif timeout is False or timeout is None:
                hold = 0.0
            elif isinstance(timeout, int | float) and timeout > 0:
                hold = float(timeout)
            else:
                raise FaultError("timeout must be true, false or the seconds to hold the request")
            count = body.get("count")
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
                raise FaultError("count must be a positive integer (omit it for every request)")
            self.interfaces[interface] = InterfaceFault(
                latency_ms=_int(body, "latency_ms"),
                error_rate=float(rate),
                timeout=hold,
                busy=_bool(body, "busy"),
                bad_signature=_bool(body, "bad_signature"),
                unsigned=_bool(body, "unsigned"),
                not_json=_bool(body, "not_json"),
                count=count,
            )
            return self.view()

    def take(self, interface: str) -> InterfaceFault | None:
        """The fault for this request, if any; counts it down."""
        with self._lock:
            fault = self.interfaces.get(interface)
            if fault is None:
                return None
            if fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    del self.interfaces[interface]
            return fault

    @staticmethod
    def roll(rate: float) -> bool:
        return rate > 0 and random.random() < rate

    def take_notify(self) -> tuple[bool, int, bool]:
        """For a new notification: (drop it?, extra duplicates, corrupt its signature?)."""
        with self._lock:
            fault = self.notify
            drop = fault.drop > 0
            if drop:
                fault.drop -= 1
                return True, 0, False
            duplicate = fault.duplicate
            fault.duplicate = 0
            corrupt = fault.corrupt_signature > 0
            if corrupt:
                fault.corrupt_signature -= 1
            return False, duplicate, corrupt

    def reorder_hold(self) -> int:
        with self._lock:
            return self.notify.reorder

    def stop_reorder(self) -> None:
        with self._lock:
            self.notify.reorder = 0

    def reset(self) -> None:
        with self._lock:
            self.interfaces.clear()
            self.notify = NotifyFault()

    def view(self) -> dict[str, Any]:
        return {
            "interfaces": {name: fault.view() for name, fault in self.interfaces.items()},
            "notify": self.notify.view(),
        }
