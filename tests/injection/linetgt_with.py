"""A target whose body holds a lock and a nested `with`: crashes must never leave a lock held."""

from __future__ import annotations

import threading

LOCK = threading.Lock()
OTHER = threading.Lock()


def locked_work(items: list[int]) -> int:
    total = 0
    with LOCK:  # @with-outer
        for item in items:
            with OTHER:  # @with-inner
                total += item
        total *= 2
    return total  # @after


def returns_inside(items: list[int]) -> int:
    with LOCK:  # @with-return
        return sum(items)
