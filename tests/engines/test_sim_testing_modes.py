"""Sidekiq's fake and inline testing modes: no retries, exceptions reach the caller."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sim_test_helpers import Calls

from harness import ConfigurationError, job
from harness.engines.base import EventKind, JobRecord
from harness.engines.testing_modes import FakeEngine, InlineEngine

ran: list[str] = []


@job
def charge(order: int) -> None:
    ran.append(f"charge {order}")
    email.enqueue(order)


@job
def email(order: int) -> None:
    ran.append(f"email {order}")
    ship.enqueue_in(86400, order)


@job
def ship(order: int) -> None:
    ran.append(f"ship {order}")


@job(retry=25)
def broken(order: int) -> None:
    ran.append(f"broken {order}")
    raise ValueError(f"order {order} is broken")


@pytest.fixture(autouse=True)
def _clear() -> None:
    ran.clear()


def test_fake_mode_records_pushes_and_drain_all_runs_chains_and_scheduled_jobs_at_once() -> None:
    engine = FakeEngine()
    engine.enqueue(charge, 1)
    engine.enqueue(charge, 2)
    assert ran == []
    assert [r.args for r in engine.jobs(charge)] == [[1], [2]]
    start = engine.clock.time()
    assert engine.drain_all() == 6
    # drain_all drains job by job in order of first appearance, as Sidekiq's does.
    assert ran == ["charge 1", "charge 2", "email 1", "email 2", "ship 1", "ship 2"]
    assert engine.clock.time() == start and engine.jobs() == []


def test_fake_mode_drain_perform_one_and_clear() -> None:
    engine = FakeEngine()
    charge_id = engine.enqueue(charge, 1)
    engine.enqueue(ship, 9)
    assert engine.drain(ship) == 1 and ran == ["ship 9"]
    assert engine.perform_one() == charge_id
    assert ran == ["ship 9", "charge 1"]
    assert [r.job for r in engine.jobs()] == [email.name]
    engine.clear()
    assert engine.jobs() == []
    with pytest.raises(ConfigurationError, match="no job is waiting"):
        engine.perform_one()


def test_fake_mode_has_no_retries_and_no_handlers_the_exception_reaches_the_drainer() -> None:
    calls = Calls()
    engine = FakeEngine(hooks=calls.hooks())
    engine.enqueue(broken, 3)
    with pytest.raises(ValueError, match="order 3 is broken"):
        engine.drain_all()
    assert ran == ["broken 3"]
    assert engine.jobs() == [] and engine.retries() == [] and engine.dead() == []
    assert calls.log == []
    assert [e.kind for e in engine.events][-1] is EventKind.FAILED


def test_fake_mode_runs_client_and_server_middleware() -> None:
    seen: list[str] = []

    def client(record: JobRecord, call_next: Callable[[], str | None]) -> str | None:
        seen.append(f"push {record.job}")
        return call_next()

    def server(record: JobRecord, call_next: Callable[[], Any]) -> Any:
        seen.append(f"run {record.job}")
        return call_next()

    engine = FakeEngine()
    engine.hooks.client_middleware.append(client)
    engine.hooks.server_middleware.append(server)
    engine.enqueue(ship, 1)
    engine.run_until_quiet()
    assert seen == [f"push {ship.name}", f"run {ship.name}"]


def test_inline_mode_runs_each_job_on_push_including_chains() -> None:
    engine = InlineEngine()
    with engine.activate():
        engine.enqueue(charge, 5)
    assert ran == ["charge 5", "email 5", "ship 5"]
    assert engine.queued() == [] and engine.scheduled() == [] and engine.run_until_quiet() == 0
    assert engine.stats.processed == 3


def test_inline_mode_raises_to_the_code_that_enqueued_without_retrying() -> None:
    calls = Calls()
    engine = InlineEngine(hooks=calls.hooks())
    with pytest.raises(ValueError, match="order 4 is broken"):
        engine.enqueue(broken, 4)
    assert ran == ["broken 4"]
    assert engine.retries() == [] and calls.log == []
    assert engine.stats.failed == 1


def test_inline_mode_still_refuses_non_json_arguments() -> None:
    with pytest.raises(ConfigurationError, match="JSON"):
        InlineEngine().enqueue(ship, {1: "int key"})
    assert ran == []
