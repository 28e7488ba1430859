"""An error of the harness's own, raised during an attempt, is never the job's failure, on any engine.

The injector is an attempt observer: a target that does not resolve raises `ConfigurationError` from
`attempt_started`, a scenario's broken reset hook raises `ScenarioError` from `attempt_finished`. A job
can also run into the harness refusing something (an enqueue of a job nobody registered). Each must leave
`step()` / `run_until_quiet()` as itself, with no retry, no dead set and no handler called, and leave the
engine usable after `reset()`, as on `sim`. The CLI then exits 2 with the harness's one-line message.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
from typing import Any

import pytest
from native_jobs import BODY, native_job

from harness import ConfigurationError, InjectedCrash, JobArgumentError, ScenarioError, job
from harness.engines import AttemptObserver, EventKind, JobRecord, get_engine

ENGINES = ["sim", "dramatiq", "rq", "celery"]
HERE = pathlib.Path(__file__).parent


class TargetTypo(AttemptObserver):
    """As the injector does when its tracer resolves a target module that does not exist."""

    def attempt_started(self, record: JobRecord, attempt: int) -> None:
        raise ConfigurationError("cannot import target module 'scenarios.shopp'")


class BrokenReset(AttemptObserver):
    """As the injector does when the scenario's reset hook raises after an injected crash."""

    def attempt_finished(self, record: JobRecord, attempt: int, exc: BaseException | None) -> None:
        if isinstance(exc, InjectedCrash):
            raise ScenarioError("the scenario's reset hook raised RuntimeError('pool closed')")


@job(name="crashes", retry=3)
def crashes() -> None:
    raise InjectedCrash("line 2")


@job(name="enqueues_a_typo", retry=3)
def enqueues_a_typo() -> None:
    from harness.engines import current_engine

    current_engine().enqueue("no.such.job")


@job(name="enqueues_a_tuple", retry=3)
def enqueues_a_tuple() -> None:
    succeeds.enqueue((1, 2))


@job(name="succeeds")
def succeeds(*args: Any) -> None:
    pass


CASES = [
    pytest.param(TargetTypo, succeeds, ConfigurationError, r"scenarios\.shopp", id="observer-start"),
    pytest.param(BrokenReset, crashes, ScenarioError, "reset hook", id="observer-finish"),
    pytest.param(None, enqueues_a_typo, ConfigurationError, "no job named 'no.such.job'", id="job-enqueue"),
    pytest.param(None, enqueues_a_tuple, JobArgumentError, "lists instead of tuples", id="job-arguments"),
]


def _hooked(name: str) -> tuple[Any, list[str]]:
    engine = get_engine(name, seed=3)
    calls: list[str] = []
    engine.hooks.error_handlers.append(lambda exc, ctx: calls.append(f"error {type(exc).__name__}"))
    engine.hooks.death_handlers.append(lambda record, exc: calls.append("death"))
    return engine, calls


def _routed(engine: Any) -> list[str]:
    routing = {EventKind.FAILED, EventKind.RETRY_SCHEDULED, EventKind.DEAD, EventKind.DISCARDED}
    return [e.kind.value for e in engine.events if e.kind in routing]


def _still_works(engine: Any) -> None:
    engine.reset()
    engine.hooks.observers.clear()
    with engine.activate():
        succeeds.enqueue(1)
        engine.run_until_quiet()
    assert [e.kind.value for e in engine.events] == ["enqueued", "started", "succeeded"]


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize(("observer", "declared", "error", "words"), CASES)
def test_a_harness_error_leaves_step_as_itself(name: str, observer: Any, declared: Any, error: Any, words: str):
    engine, calls = _hooked(name)
    if observer is not None:
        engine.hooks.observers.append(observer())
    with engine.activate():
        declared.enqueue()
        with pytest.raises(error, match=words):
            engine.run_until_quiet()
    assert _routed(engine) == [] and calls == []
    assert engine.retries() == [] and engine.dead() == []
    _still_works(engine)
    engine.close()


@pytest.mark.parametrize("name", ["dramatiq", "rq", "celery"])
def test_a_native_job_does_not_route_a_harness_error_either(name: str):
    # Each native job is set to retry any exception, so a routed harness error would show as a retry.
    settings = {
        "dramatiq": {"max_retries": 3},
        "rq": {},
        "celery": {"autoretry_for": (Exception,), "max_retries": 3},
    }[name]
    native, enqueue_options = native_job(name, **settings)
    if name == "rq":
        from rq import Retry

        enqueue_options = {"retry": Retry(max=3)}
    ran: list[int] = []
    BODY["body"] = lambda *args: ran.append(1)
    engine, calls = _hooked(name)
    engine.hooks.observers.append(TargetTypo())
    with engine.activate():
        engine.enqueue(native, 1, **enqueue_options)
        with pytest.raises(ConfigurationError, match=r"scenarios\.shopp"):
            engine.run_until_quiet()
    assert ran == [] and _routed(engine) == [] and calls == []
    assert engine.retries() == [] and engine.dead() == []
    engine.close()


@pytest.mark.parametrize("name", ENGINES)
def test_the_cli_exits_2_on_a_target_typo_on_every_engine(name: str):
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", "explore", "typo_scenario:TYPO", "--engine", name],
        cwd=HERE, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.startswith("harness: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "typo_scenaro_module" in out.stderr
    assert "UNSAFE" not in out.stdout and "SAFE" not in out.stdout
