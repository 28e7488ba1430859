"""What keeps a job from taking the explorer down with it: a wall-clock limit per attempt, a refused
`os._exit`, and a look at the threads an attempt leaves running.

A job that sleeps, blocks or spins forever would hang the exploration; a job that calls `os._exit` would
end the harness with no output. While a session runs, each attempt runs under an `AttemptGuard`: past its
limit the attempt is interrupted with `AttemptHung` (a `BaseException`, so `except Exception` cannot
swallow it), and `os._exit` raises `ProcessExit` instead of ending the process. The injector turns both
into a harness error that names the attempt and its line.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

try:
    # The signal module's own C functions: `signal.signal` wraps them to turn handlers into enums, which
    # cost more than the call itself, twice per attempt.
    import _signal as _raw_signal
except ImportError:  # pragma: no cover - an interpreter without it
    _raw_signal = signal

__all__ = ["DEFAULT_ATTEMPT_TIMEOUT_S", "AttemptGuard", "AttemptHung", "ProcessExit", "refusing_exit"]

#: Generous: the explorer runs on a virtual clock, so an attempt that takes a minute of wall time is stuck.
DEFAULT_ATTEMPT_TIMEOUT_S = 60.0

#: How often a running attempt is looked at: its wall time, and the budget the guard was given.
TICK_S = 0.25


#: True while the garbage collector runs its callbacks: an exception raised there is never seen (Python
#: reports it as unraisable), so the guard waits for the next tick instead.
_collecting = False


def _gc_started(phase: str, info: Any) -> None:
    global _collecting
    if phase == "start":
        _collecting = True


def _gc_stopped(phase: str, info: Any) -> None:
    global _collecting
    if phase == "stop":
        _collecting = False


def _watch_collections() -> None:
    """Bracket every other gc callback (Hypothesis times collections with one) with ours."""
    for callback in (_gc_started, _gc_stopped):
        while callback in gc.callbacks:
            gc.callbacks.remove(callback)
    gc.callbacks.insert(0, _gc_started)
    gc.callbacks.append(_gc_stopped)


class AttemptHung(BaseException):
    """Raised into an attempt that ran past its wall-clock limit, or past its budget (`over_budget` says
    how: a loop recording lines at full speed would fill memory long before the time limit)."""

    def __init__(self, message: str = "", over_budget: str | None = None) -> None:
        super().__init__(message)
        self.over_budget = over_budget


class ProcessExit(BaseException):
    """Raised by `os._exit` while the harness runs a job: the process would have ended there."""

    def __init__(self, code: int) -> None:
        super().__init__(f"os._exit({code})")
        self.code = code


class AttemptGuard:
    """Interrupts an attempt that runs more than `timeout_s` seconds of wall time (None: never).

    In the main thread a real-time timer (SIGALRM) interrupts sleeps, blocking waits and busy loops alike;
    in another thread a watchdog raises the exception asynchronously, which reaches Python code only (a
    call blocked in C is interrupted when it returns). Every `TICK_S` the guard also asks `budget()`, which
    returns a sentence when the attempt has used up something other than time, and stops it then.
    """

    def __init__(self, timeout_s: float | None, *, budget: Callable[[], str | None] | None = None) -> None:
        if timeout_s is not None and not timeout_s > 0:
            raise ValueError(f"an attempt's time limit must be a positive number of seconds, not {timeout_s!r}")
        self.timeout_s = timeout_s
        self.budget = budget
        self.fired = False
        #: What the attempt ran out of, when the budget stopped it (None: time, or not stopped).
        self.over_budget: str | None = None
        self._deadline = 0.0
        self._watchdog: threading.Thread | None = None
        self._wake = threading.Event()
        self._previous: Any = None
        self._uses_signal = False
        self._active = False
        self._message = ""

    def start(self) -> None:
        self.fired = False
        self.over_budget = None
        timeout = self.timeout_s
        if timeout is None and self.budget is None:
            return
        self._active = True
        _watch_collections()
        self._deadline = time.monotonic() + timeout if timeout is not None else float("inf")
        first = TICK_S if timeout is None else min(timeout, TICK_S)
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
            self._previous = _raw_signal.signal(signal.SIGALRM, self._on_alarm)
            signal.setitimer(signal.ITIMER_REAL, first, TICK_S)
            self._uses_signal = True
        else:
            self._wake = threading.Event()
            self._watchdog = threading.Thread(target=self._watch, args=(threading.get_ident(), self._wake, first),
                                              name="harness-attempt-guard", daemon=True)
            self._watchdog.start()

    def stop(self) -> None:
        self._active = False
        if self._uses_signal:
            signal.setitimer(signal.ITIMER_REAL, 0)
            _raw_signal.signal(signal.SIGALRM, self._previous if self._previous is not None else signal.SIG_DFL)
            self._uses_signal = False
        elif self._watchdog is not None:
            self._wake.set()
            self._watchdog = None

    def _verdict(self) -> AttemptHung | None:
        """The exception to stop the attempt with, when it is due. Once due, it is due at every tick until
        the attempt ends: an exception raised where it cannot unwind (inside a tracing callback, into an
        `except BaseException: pass`) is raised again, so the attempt never runs on unchecked."""
        if not self._active:  # delivered just as the attempt ended: nothing left to interrupt
            return None
        spent = self.budget() if self.budget is not None else None  # asked every tick: it may act too
        if self.fired:
            return AttemptHung(self._message, over_budget=self.over_budget)
        if spent is None and time.monotonic() < self._deadline:
            return None
        self.fired = True
        self.over_budget = spent
        self._message = spent if spent is not None else f"still running after {self.timeout_s:g} s of wall time"
        return AttemptHung(self._message, over_budget=spent)

    def _on_alarm(self, signum: int, frame: Any) -> None:
        if _collecting:  # inside a gc callback the exception would be lost: the next tick raises it
            return
        verdict = self._verdict()
        if verdict is not None:
            raise verdict

    def _watch(self, thread_id: int, wake: threading.Event, first: float) -> None:
        wait = first
        while not wake.wait(wait):
            wait = TICK_S
            if not _collecting and self._verdict() is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), ctypes.py_object(AttemptHung))


def _refused_exit(code: int = 0) -> None:
    raise ProcessExit(code)


@contextmanager
def refusing_exit() -> Iterator[None]:
    """`os._exit` raises `ProcessExit` inside the block instead of ending the process."""
    real = os._exit
    os._exit = _refused_exit  # type: ignore[assignment]
    try:
        yield
    finally:
        os._exit = real
