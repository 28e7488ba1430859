"""The same small jobs on the reference engine and on each native backend's deterministic mode.

Where the engines' semantics agree (and for harness jobs the adapters make them agree), the routing
must be identical: runs, retries and their delays, dead set, discards, handler calls. Where they differ
by nature, the difference is asserted explicitly, so that it cannot change unnoticed.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from harness import job
from harness.engines import EventKind, get_engine

ENGINES = ["sim", "dramatiq", "rq", "celery"]
NATIVE = ["dramatiq", "rq", "celery"]


class Transient(Exception):
    pass


class Permanent(Exception):
    pass


#: The record fields a hook sees that must agree across engines (ids are each engine's own).
SEEN_FIELDS = (
    "job",
    "args",
    "queue",
    "retry_count",
    "error_class",
    "error_message",
    "failed_at",
    "retried_at",
    "discarded_at",
    "enqueued_at",
    "run_at",
)


def _seen(payload: Any) -> dict[str, Any]:
    fields = payload if isinstance(payload, dict) else payload.to_dict()
    return {key: fields[key] for key in SEEN_FIELDS}


def _jobs(state: dict[str, int], saw: dict[str, list[Any]]) -> list[tuple[Any, list[Any]]]:
    def exhausted(record: Any, exc: BaseException) -> None:
        state["exhausted"] = state.get("exhausted", 0) + 1
        saw["exhausted"].append((type(exc).__name__, _seen(record)))

    @job(name="succeeds")
    def succeeds(n: int) -> int:
        return n

    @job(name="flaky", retry=5)
    def flaky() -> None:
        state["flaky"] = state.get("flaky", 0) + 1
        if state["flaky"] <= 2:
            raise Transient("payments answered 503")

    @job(name="always_fails", retry=3, retries_exhausted=exhausted)
    def always_fails() -> None:
        raise Transient("still 503")

    @job(name="no_retries", retry=0)
    def no_retries() -> None:
        raise Permanent("card declined")

    @job(name="never_retried", retry=False)
    def never_retried() -> None:
        raise Permanent("bug")

    @job(name="defaults", retries_exhausted=exhausted)
    def defaults(order: int) -> None:
        raise Transient(f"order {order}: still 503")

    @job(name="undead", retry=2, dead=False, retries_exhausted=exhausted)
    def undead() -> None:
        raise Transient("gone")

    @job(name="ruled_out", retry=5, retry_in=lambda count, exc, record: "discard" if count == 1 else None)
    def ruled_out() -> None:
        raise Permanent("discarded by its rule")

    return [
        (succeeds, [1]),
        (flaky, []),
        (always_fails, []),
        (no_retries, []),
        (never_retried, []),
        (defaults, [7]),
        (undead, []),
        (ruled_out, []),
    ]


def _outcome(name: str) -> dict[str, Any]:
    """Each job on a fresh engine with the same seed: retries of different jobs due at the same second
    would otherwise run in each engine's own tie order and draw each other's jitter."""
    events: list[Any] = []
    errors: list[str] = []
    deaths: list[str] = []
    saw: dict[str, list[Any]] = {"exhausted": [], "death": [], "error": []}
    dead: list[Any] = []
    left: tuple[list[Any], list[Any], list[Any]] = ([], [], [])
    stats = [0, 0]

    def error_handler(exc: BaseException, ctx: dict[str, Any]) -> None:
        errors.append(ctx["job"]["job"])
        saw["error"].append((type(exc).__name__, ctx["context"], _seen(ctx["job"])))

    def death_handler(record: Any, exc: BaseException) -> None:
        deaths.append(record.job)
        saw["death"].append((type(exc).__name__, _seen(record)))

    state: dict[str, int] = {}
    for declared, args in _jobs(state, saw):
        engine = get_engine(name, seed=11)
        engine.hooks.error_handlers.append(error_handler)
        engine.hooks.death_handlers.append(death_handler)
        with engine.activate():
            declared.enqueue(*args)
            engine.run_until_quiet()
        events += engine.events
        dead += engine.dead()
        for waiting, now in zip(left, (engine.queued(), engine.retries(), engine.scheduled()), strict=True):
            waiting += now
        stats[0] += engine.stats.processed
        stats[1] += engine.stats.failed
        engine.close()
    by_job: dict[str, Counter[str]] = {}
    for event in events:
        by_job.setdefault(event.job, Counter())[event.kind.value] += 1
    return {
        "events": events,
        "runs": {j: c["started"] for j, c in by_job.items()},
        "retried": {j: c["retry_scheduled"] for j, c in by_job.items()},
        "succeeded": sorted(j for j, c in by_job.items() if c["succeeded"]),
        "delays": [(e.job, e.detail["delay"]) for e in events if e.kind == EventKind.RETRY_SCHEDULED],
        "dead": sorted(r.job for r in dead),
        "dead_counts": sorted((r.job, r.retry_count) for r in dead),
        "discarded": sorted(e.job for e in events if e.kind == EventKind.DISCARDED),
        "errors": Counter(errors),
        "deaths": Counter(deaths),
        "exhausted": state.get("exhausted", 0),
        # What each hook saw, job by job in the order of its calls (the engines order error and death
        # handlers differently at exhaustion; see below).
        "exhausted_saw": _by_job(saw["exhausted"]),
        "death_saw": _by_job(saw["death"]),
        "error_saw": _by_job(saw["error"]),
        "left": left,
        "stats": tuple(stats),
    }


def _by_job(calls: list[tuple[Any, ...]]) -> dict[str, list[tuple[Any, ...]]]:
    grouped: dict[str, list[tuple[Any, ...]]] = {}
    for call in calls:
        grouped.setdefault(call[-1]["job"], []).append(call)
    return grouped


@pytest.fixture(scope="module")
def outcomes() -> dict[str, dict[str, Any]]:
    return {name: _outcome(name) for name in ENGINES}


def test_reference_outcome_is_sidekiqs(outcomes):
    sim = outcomes["sim"]
    assert sim["runs"] == {
        "succeeds": 1,
        "flaky": 3,
        "always_fails": 4,
        "no_retries": 1,
        "never_retried": 1,
        "defaults": 26,
        "undead": 3,
        "ruled_out": 2,
    }
    assert sim["retried"]["flaky"] == 2 and sim["retried"]["always_fails"] == 3
    assert sim["dead_counts"] == [("always_fails", 3), ("defaults", 25), ("no_retries", 0)]
    assert sim["discarded"] == ["ruled_out", "undead"]
    assert sim["deaths"] == Counter(
        {"always_fails": 1, "no_retries": 1, "never_retried": 1, "defaults": 1, "undead": 1, "ruled_out": 1}
    )
    assert sim["errors"] == Counter(
        {"flaky": 2, "always_fails": 4, "no_retries": 1, "never_retried": 1, "defaults": 26, "undead": 3,
         "ruled_out": 2}
    )


def test_reference_hooks_see_the_record_after_the_failure(outcomes):
    # Sidekiq hands its exhausted block and death handlers the payload with this failure's fields, and
    # its error handlers the payload as it was before the failure.
    sim = outcomes["sim"]
    exhausted = {job: [seen["retry_count"] for _, seen in calls] for job, calls in sim["exhausted_saw"].items()}
    assert exhausted == {"always_fails": [3], "defaults": [25], "undead": [2]}
    deaths = {job: seen for job, [(_, seen)] in sim["death_saw"].items()}
    assert deaths["never_retried"]["retry_count"] is None and deaths["never_retried"]["error_class"] is None
    assert deaths["no_retries"]["retry_count"] == 0 and deaths["no_retries"]["error_class"] == "Permanent"
    assert deaths["undead"]["discarded_at"] is not None and deaths["ruled_out"]["discarded_at"] is not None
    assert deaths["defaults"]["failed_at"] < deaths["defaults"]["retried_at"] == deaths["defaults"]["enqueued_at"]
    errors = [seen["retry_count"] for _, context, seen in sim["error_saw"]["always_fails"]]
    assert errors == [None, 0, 1, 2]


@pytest.mark.parametrize("name", NATIVE)
@pytest.mark.parametrize(
    "aspect",
    [
        "runs",
        "retried",
        "succeeded",
        "delays",
        "dead",
        "dead_counts",
        "discarded",
        "errors",
        "deaths",
        "exhausted",
        "exhausted_saw",
        "death_saw",
        "error_saw",
        "stats",
    ],
)
def test_native_routing_matches_the_reference(outcomes, name, aspect):
    assert outcomes[name][aspect] == outcomes["sim"][aspect]


@pytest.mark.parametrize("name", ENGINES)
def test_nothing_is_left_waiting(outcomes, name):
    assert outcomes[name]["left"] == ([], [], [])


def _final_order(events: list[Any], job_name: str) -> list[str]:
    last = max(e.attempt for e in events if e.job == job_name)
    wanted = {EventKind.ERROR_HANDLER_CALLED, EventKind.DEATH_HANDLER_CALLED}
    return [e.kind.value for e in events if e.job == job_name and e.attempt == last and e.kind in wanted]


def test_reference_reports_errors_after_the_death_handlers(outcomes):
    # Sidekiq: exhausted block, dead set, death handlers, then the error handlers.
    assert _final_order(outcomes["sim"]["events"], "always_fails") == [
        "death_handler_called",
        "error_handler_called",
    ]


@pytest.mark.parametrize("name", NATIVE)
def test_native_engines_report_errors_before_the_death_handlers(outcomes, name):
    # Documented difference: each native engine reports a failed attempt (Dramatiq's middleware, RQ's
    # exception handlers, Celery's task_failure signal) before it files the job as dead.
    assert _final_order(outcomes[name]["events"], "always_fails") == [
        "error_handler_called",
        "death_handler_called",
    ]


def _native_two_retries(name: str) -> tuple[int, list[str]]:
    """A native job with the engine's own "2 retries" setting: how many runs, and the dead set."""
    engine = get_engine(name)
    runs: list[int] = []

    def body() -> None:
        runs.append(1)
        raise Transient("down")

    with engine.activate():
        if name == "dramatiq":
            import dramatiq
            from dramatiq.brokers.stub import StubBroker

            native = dramatiq.Actor(
                body,
                broker=StubBroker(),
                actor_name="two",
                queue_name="default",
                priority=0,
                options={"max_retries": 2, "min_backoff": 10},
            )
            engine.enqueue(native)
        elif name == "rq":
            from rq import Retry

            engine.register(body)
            engine.enqueue(body, retry=Retry(max=2, interval=1))
        else:
            from celery import Celery

            app = Celery("parity_native", broker="memory://", set_as_current=False)
            native = app.task(
                body,
                name="two",
                autoretry_for=(Transient,),
                max_retries=2,
                default_retry_delay=1,
                shared=False,
            )
            engine.enqueue(native)
        engine.run_until_quiet()
    dead = [r.job for r in engine.dead()]
    engine.close()
    return len(runs), dead


@pytest.mark.parametrize("name", NATIVE)
def test_native_retry_settings_mean_n_plus_one_runs(name):
    runs, dead = _native_two_retries(name)
    assert runs == 3 and len(dead) == 1
