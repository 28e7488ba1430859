"""Jobs for the concurrency explorer's tests: a read-modify-write counter, a job that holds a lock the
other delivery waits on, and one that leaves a thread behind."""

from __future__ import annotations

import threading
import time
from typing import Any

from harness import job
from harness.explore import Scenario

STORE: dict[str, int] = {}
RUNS: list[int] = []
LOCK = threading.Lock()


def setup(world: Any) -> list[str]:
    STORE.clear()
    RUNS.clear()
    return ["visits"]


def fingerprint(world: Any) -> object:
    return tuple(sorted(STORE.items())), len(RUNS)


def no_lost_update(world: Any) -> str | None:
    if STORE.get("visits", 0) != len(RUNS):
        return f"{len(RUNS)} deliveries counted {STORE.get('visits', 0)} visits: an update was lost"
    return None


@job(retry=3)
def count_visit(key: str) -> None:
    RUNS.append(1)
    value = STORE.get(key, 0)
    STORE[key] = value + 1


@job(retry=3)
def count_visit_at_once(key: str) -> None:
    RUNS.append(1)
    with LOCK:
        value = STORE.get(key, 0)
        STORE[key] = value + 1


def _linger() -> None:
    time.sleep(3.0)


@job(retry=3)
def count_and_leave_a_thread(key: str) -> None:
    RUNS.append(1)
    STORE[key] = STORE.get(key, 0) + 1
    threading.Thread(target=_linger, name="lingerer", daemon=True).start()


def _scenario(name: str, function: Any) -> Scenario:
    return Scenario(name=name, job=function, setup=setup, fingerprint=fingerprint, invariants=[no_lost_update],
                    targets=[__name__], compare_to_clean_run=False)


COUNTER = _scenario("concurrent.counter", count_visit)
LOCKED_COUNTER = _scenario("concurrent.locked_counter", count_visit_at_once)
LEAVES_A_THREAD = _scenario("concurrent.leaves_a_thread", count_and_leave_a_thread)
