"""Virtual time shared by the engines and the in-process fake services.

A scenario whose services are "slow" and whose retries wait for days must still finish in milliseconds,
so everything that would sleep or read the wall clock asks a clock object instead. `VirtualClock` moves
only when told to (or when something "sleeps" on it); `RealClock` is the wall clock with the same shape.
Both fit the fake services' clock protocol (`time`, `sleep`, and `blocks`: whether sleeping holds the
thread), so the services can be given either without knowing these classes.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable

__all__ = ["EPOCH", "RealClock", "VirtualClock"]

#: Where virtual time starts: 2026-01-01T00:00:00Z. Fixed so that event logs are byte-for-byte stable.
EPOCH = 1_767_225_600.0


class RealClock:
    """The wall clock, for services on a socket and real workers."""

    #: Sleeping holds the thread: a server runs slow calls on this clock off its event loop.
    blocks = True

    def time(self) -> float:
        return _time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds)


class VirtualClock:
    """A clock that moves only when advanced or slept on; single-threaded by design.

    Listeners registered with `on_advance` run after every move with the new time. The reference
    engine uses that to interrupt a job that is still "running" when a shutdown deadline passes.
    """

    #: Sleeping is a jump in time: nothing waits.
    blocks = False

    def __init__(self, start: float = EPOCH) -> None:
        self._now = float(start)
        self._listeners: list[Callable[[float], None]] = []

    def time(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        """Pretend to sleep: time jumps forward at once."""
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot move backwards (asked to advance {seconds} s)")
        self.advance_to(self._now + seconds)

    def advance_to(self, when: float) -> None:
        if when < self._now:
            raise ValueError(f"a clock cannot move backwards (from {self._now} to {when})")
        self._now = float(when)
        for listener in list(self._listeners):
            listener(self._now)

    def on_advance(self, listener: Callable[[float], None]) -> Callable[[], None]:
        """Call `listener(now)` after every move; returns a function that removes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def reset(self, start: float = EPOCH) -> None:
        self._now = float(start)
