"""How far an exploration is, for whoever waits on it: a bar redrawn in place on a terminal, or a line
every few seconds where no terminal is attached (a CI log, pytest's output), as pytest reports progress.

An explorer calls `progress(phase, done, total)` for each plan of a phase ("depth 1", "depth 2",
"search"). Short explorations print nothing: a bar appears only for phases of 50 plans or more, and
lines only once an exploration has run for `every` seconds (`HARNESS_PROGRESS_EVERY`, default 10).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressLine"]

_BAR_WIDTH = 30


class ProgressLine:
    """Progress of one scenario's exploration, drawn on `stream` or written through `write_line`.

    `interactive` (default: whether `stream` is a terminal) redraws one bar with carriage returns;
    otherwise a line such as `shop.naive: depth 2, 310 of 460 plans (67%)` is written at most every
    `every` seconds, and once more as a phase ends if its progress was shown.
    """

    def __init__(
        self,
        label: str,
        *,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        write_line: Callable[[str], None] | None = None,
        every: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        if interactive is None:
            interactive = write_line is None and _is_terminal(self.stream)
        self.interactive = interactive
        self._write = write_line if write_line is not None else self._write_stream
        self.every = _every_from_environment() if every is None else every
        self._clock = clock
        self._started = clock()
        self._last_line = self._started
        self._shown_phase: str | None = None
        self._drawn = False
        self._width = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.interactive:
            self._draw(phase, done, total)
            return
        now = self._clock()
        ends_a_shown_phase = done >= total and self._shown_phase == phase
        if now - self._last_line >= self.every or ends_a_shown_phase:
            self._last_line = now
            self._shown_phase = phase
            share = f" ({100 * done // total}%)" if total else ""
            self._write(f"{self.label}: {phase}, {done} of {total} plans{share}")

    def _draw(self, phase: str, done: int, total: int) -> None:
        if total < 50 or (done % 10 and done < total):
            return
        filled = int(_BAR_WIDTH * done / max(total, 1))
        bar = "#" * filled + "." * (_BAR_WIDTH - filled)
        tail = f" {phase} [{bar}] {done}/{total}"
        width = shutil.get_terminal_size().columns - 1
        self._width = max(self._width, width)
        # The label gives way first: a line longer than the terminal would wrap instead of redrawing.
        label = self.label[: max(0, width - len(tail))]
        self.stream.write(f"\r{label}{tail}"[: width + 1])
        self.stream.flush()
        self._drawn = True

    def _write_stream(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Clear a drawn bar so that what follows starts on a clean line."""
        if self._drawn:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._drawn = False


def _every_from_environment() -> float:
    """`HARNESS_PROGRESS_EVERY` seconds between progress lines (default 10; 0 writes a line per plan)."""
    raw = os.environ.get("HARNESS_PROGRESS_EVERY", "")
    try:
        value = float(raw) if raw else 10.0
    except ValueError:
        return 10.0
    return value if value >= 0 and value == value else 10.0


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or stand-in stream
        return False
