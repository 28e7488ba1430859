"""Quiet and graceful shutdown on the reference engine: unfinished jobs go back to their queue."""

from __future__ import annotations

from typing import Any

import pytest
from sim_test_helpers import Calls, engine_with, kinds

from harness import ConfigurationError, Shutdown, job
from harness.clock import EPOCH
from harness.engines.base import EventKind, current_engine
from harness.engines.sim import SimEngine


class SlowService:
    """A fake service that takes `seconds` of virtual time per call, and counts finished calls."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.finished: list[int] = []

    def call(self, order: int) -> None:
        current_engine().clock.sleep(self.seconds)
        self.finished.append(order)


service = SlowService(60)


@job
def sync_order(order: int) -> None:
    service.call(order)


@job
def other(order: int) -> None:
    service.finished.append(-order)


@pytest.fixture(autouse=True)
def _fresh_service() -> None:
    service.seconds = 60
    service.finished.clear()


def test_a_job_still_running_at_the_deadline_is_pushed_back_and_completes_once_after_restart() -> None:
    calls = Calls()
    engine = engine_with(calls)
    job_id = engine.enqueue(sync_order, 1)
    engine.enqueue(other, 2)
    engine.shutdown(at=EPOCH + 5)  # TERM arrives 5 s into the 60 s call; the timeout is 25 s

    engine.run_until_quiet()

    assert service.finished == []
    assert engine.state == "stopped"
    [pushed] = kinds(engine, EventKind.PUSHED_BACK)
    assert pushed.job_id == job_id and pushed.detail["deadline"] == EPOCH + 30
    head = engine.queued()[0]
    assert (head.id, head.retry_count) == (job_id, None)
    assert [r.job for r in engine.queued()] == [sync_order.name, other.name]
    assert engine.retries() == [] and engine.dead() == []
    assert calls.log == [] and not kinds(engine, EventKind.FAILED, EventKind.RETRY_SCHEDULED)

    service.seconds = 1
    engine.start()
    engine.run_until_quiet()
    assert service.finished == [1, -2]
    assert len([e for e in kinds(engine, EventKind.SUCCEEDED) if e.job_id == job_id]) == 1
    assert engine.state == "running"


def test_a_job_that_finishes_before_the_deadline_completes_and_nothing_more_is_fetched() -> None:
    service.seconds = 10
    engine = SimEngine()
    engine.enqueue(sync_order, 1)
    engine.enqueue(other, 2)
    engine.shutdown(at=EPOCH + 1, timeout=25)
    engine.run_until_quiet()
    assert service.finished == [1]
    assert not kinds(engine, EventKind.PUSHED_BACK)
    assert [r.job for r in engine.queued()] == [other.name]
    engine.start()
    engine.run_until_quiet()
    assert service.finished == [1, -2]


def test_shutdown_from_inside_a_job_uses_the_default_25_second_timeout() -> None:
    @job
    def stops_the_worker(order: int) -> None:
        worker = current_engine()
        assert isinstance(worker, SimEngine)
        worker.shutdown()
        current_engine().clock.sleep(24)
        service.finished.append(order)
        current_engine().clock.sleep(2)
        service.finished.append(order * 10)

    engine = SimEngine()
    engine.enqueue(stops_the_worker, 3)
    engine.run_until_quiet()
    assert service.finished == [3]
    [pushed] = kinds(engine, EventKind.PUSHED_BACK)
    assert pushed.detail["deadline"] == EPOCH + 25 and pushed.time == EPOCH + 26


def test_a_job_that_swallows_shutdown_still_runs_again_at_least_once() -> None:
    @job
    def stubborn(order: int) -> None:
        for seconds in (60, 1):  # the second sleep is past the deadline too
            try:
                current_engine().clock.sleep(seconds)
            except Shutdown:
                service.finished.append(0)
        service.finished.append(order)

    engine = SimEngine()
    engine.enqueue(stubborn, 4)
    engine.shutdown(at=EPOCH + 1, timeout=2)
    engine.run_until_quiet()
    assert service.finished == [0, 0, 4]
    assert [r.args for r in engine.queued()] == [[4]]
    assert len(kinds(engine, EventKind.PUSHED_BACK)) == 1
    engine.start()
    engine.run_until_quiet()
    assert service.finished == [0, 0, 4, 4]


def test_an_exception_raised_from_a_shutdown_counts_as_the_shutdown() -> None:
    @job
    def wraps_it(order: int) -> None:
        try:
            current_engine().clock.sleep(60)
        except Shutdown as exc:
            raise RuntimeError("connection closed") from exc

    engine = SimEngine()
    engine.enqueue(wraps_it, 5)
    engine.shutdown(at=EPOCH + 1, timeout=0)
    engine.run_until_quiet()
    assert len(kinds(engine, EventKind.PUSHED_BACK)) == 1
    assert engine.retries() == [] and not kinds(engine, EventKind.FAILED)


def test_a_shutdown_raised_without_term_pushes_the_job_back_and_stops_fetching() -> None:
    tries: list[int] = []

    @job
    def stops_itself(order: int) -> None:
        tries.append(order)
        if len(tries) == 1:
            raise Shutdown("the worker is going away")

    engine = SimEngine()
    engine.enqueue(stops_itself, 6)
    assert engine.run_until_quiet() == 1
    [pushed] = kinds(engine, EventKind.PUSHED_BACK)
    assert pushed.detail["deadline"] is None
    assert engine.state == "quiet" and [r.args for r in engine.queued()] == [[6]]
    engine.start()
    assert engine.run_until_quiet() == 1 and tries == [6, 6]


def test_quiet_stops_fetching_and_start_resumes() -> None:
    engine = SimEngine()
    engine.enqueue(other, 1)
    engine.enqueue(other, 2, delay=30)
    engine.quiet()
    assert engine.state == "quiet"
    assert engine.run_until_quiet() == 0 and engine.next_due() is None
    engine.start()
    assert engine.run_until_quiet() == 2
    assert service.finished == [-1, -2]


def test_shutdown_with_nothing_running_stops_at_once() -> None:
    engine = SimEngine()
    engine.enqueue(other, 1)
    engine.shutdown()
    assert engine.state == "stopped"
    assert engine.run_until_quiet() == 0
    assert [r.args for r in engine.queued()] == [[1]]


def test_a_pending_term_stops_the_clock_at_its_time() -> None:
    engine = SimEngine()
    engine.enqueue(other, 1, delay=100)
    engine.shutdown(at=EPOCH + 40)
    engine.run_until_quiet()
    assert engine.clock.time() == EPOCH + 40 and engine.state == "stopped"
    assert len(engine.scheduled()) == 1


def test_reset_clears_a_shutdown() -> None:
    engine = SimEngine()
    engine.shutdown(at=EPOCH + 1)
    engine.reset()
    engine.enqueue(sync_order, 1)
    engine.run_until_quiet()
    assert service.finished == [1] and engine.state == "running"


@pytest.mark.parametrize("timeout", [-1, -0.5])
def test_a_negative_timeout_is_refused(timeout: Any) -> None:
    with pytest.raises(ConfigurationError):
        SimEngine().shutdown(timeout)
