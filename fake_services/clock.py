"""The clock the fake services read and sleep on, as a protocol any clock can satisfy by its shape.

A "slow" service sleeps on its clock. On a clock that really blocks (the wall clock) a server must run
such a call off its event loop; on a virtual clock the sleep is a jump in time and costs nothing. A clock
says which it is with a `blocks` attribute, so no code here needs to know another package's classes.
"""

from __future__ import annotations

import time as _time
from typing import Protocol

__all__ = ["Clock", "WallClock", "blocks"]


class Clock(Protocol):
    """`time()` in seconds since the epoch, `sleep(seconds)`; optionally `blocks = True` when sleeping
    holds the calling thread (a clock without the attribute is taken not to block)."""

    def time(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class WallClock:
    """The real time, for services on a socket."""

    blocks = True

    def time(self) -> float:
        return _time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            _time.sleep(seconds)


def blocks(clock: Clock) -> bool:
    """Whether sleeping on `clock` holds the calling thread."""
    return getattr(clock, "blocks", False) is True
