"""A target first imported while a recording runs, with a `with` block in it."""

from __future__ import annotations

import threading

LOCK = threading.Lock()


def late_locked(items: list[int]) -> int:
    total = 0
    for item in items:
        with LOCK:  # @late-with
            total += item
    return total  # @late-after
