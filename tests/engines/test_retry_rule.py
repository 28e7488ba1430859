"""Sidekiq's retry rule, written once (`harness.engines._retry_rule`) and followed by every engine.

The pure functions first (fields, delay, decision), then the same rule seen through each engine: a
patched jitter reaches all four, and a hook that raises (retry_in, retries_exhausted, a death handler)
is reported to the error handlers on all four, as Sidekiq reports it.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from harness import job
from harness.engines import _retry_rule as rule
from harness.engines import get_engine
from harness.engines.base import EventKind, JobOptions, JobRecord

ENGINES = ["sim", "dramatiq", "rq", "celery"]


def _record(retry_count: int | None = None) -> JobRecord:
    return JobRecord("jid", "some.job", [], "default", 0.0, retry_count=retry_count)


class _Reports:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, error: BaseException, context: str) -> None:
        self.seen.append((type(error).__name__, context))


def _decide(options: JobOptions, count: int | None, seed: int = 0) -> tuple[rule.Decision, _Reports]:
    reports = _Reports()
    decision = rule.decide(options, count, ValueError("x"), _record(count), random.Random(seed), report=reports)
    return decision, reports


# -- the pure rule ---------------------------------------------------------------------------------------
def test_record_failure_writes_sidekiqs_fields_and_numbering() -> None:
    record = _record()
    assert rule.record_failure(record, KeyError("k"), 10.0, JobOptions()) == 0
    assert (record.retry_count, record.failed_at, record.retried_at) == (0, 10.0, None)
    assert (record.error_class, record.error_message) == ("KeyError", "'k'")
    assert rule.record_failure(record, ValueError("v"), 20.0, JobOptions()) == 1
    assert (record.retry_count, record.failed_at, record.retried_at) == (1, 10.0, 20.0)


def test_record_failure_writes_nothing_for_a_job_never_retried() -> None:
    record = _record()
    assert rule.record_failure(record, ValueError("v"), 10.0, JobOptions(retry=False)) is None
    assert record == _record()


def test_retry_delay_is_count_to_the_fourth_plus_15_plus_sidekiq_7_jitter() -> None:
    for count in (0, 1, 4, 24):
        rng, same = random.Random(count), random.Random(count)
        decision, _ = _decide(JobOptions(retry=25), count, seed=count)
        assert decision == rule.Decision("retry", count**4 + 15 + same.randrange(10 * (count + 1)))
        assert rule.default_retry_delay(count, rng) == decision.delay


@pytest.mark.parametrize(
    ("options", "count", "expected"),
    [
        (JobOptions(retry=False), None, rule.Decision("drop")),
        (JobOptions(retry=0), 0, rule.Decision("dead", exhausted=True)),
        (JobOptions(retry=2), 2, rule.Decision("dead", exhausted=True)),
        (JobOptions(retry=2, dead=False), 2, rule.Decision("discard", exhausted=True, reason="dead=False")),
        (
            JobOptions(retry=2, retries_exhausted=lambda record, exc: "discard"),
            2,
            rule.Decision("discard", exhausted=True, reason="retries_exhausted"),
        ),
        (JobOptions(retry=5, retry_in=lambda c, e, r: "kill"), 0, rule.Decision("dead", exhausted=True)),
        (JobOptions(retry=5, retry_in=lambda c, e, r: "discard"), 0, rule.Decision("discard", reason="retry_in")),
        (JobOptions(retry=5, retry_in=lambda c, e, r: 600.9), 0, rule.Decision("retry", 600 + 6)),
        (JobOptions(retry=5, retry_in=lambda c, e, r: 0), 0, rule.Decision("retry", 15 + 6)),
        (JobOptions(retry=5, retry_in=lambda c, e, r: None), 0, rule.Decision("retry", 15 + 6)),
    ],
)
def test_decisions_follow_sidekiqs_order_of_checks(options: JobOptions, count: int, expected: rule.Decision) -> None:
    # Seed 0 draws 6 from randrange(10) first.
    assert random.Random(0).randrange(10) == 6
    decision, reports = _decide(options, count)
    assert decision == expected and reports.seen == []


def test_a_raising_retry_in_is_reported_and_the_default_delay_used() -> None:
    def broken(count: int, exc: BaseException, record: JobRecord) -> Any:
        raise ZeroDivisionError("rule")

    decision, reports = _decide(JobOptions(retry=5, retry_in=broken), 1)
    assert decision.kind == "retry" and decision.delay is not None and 16 <= decision.delay < 36
    assert reports.seen == [
        ("ZeroDivisionError", "Failure scheduling retry using the defined `retry_in` in some.job, falling back "
         "to default")
    ]


def test_a_raising_exhausted_block_is_reported_and_the_job_still_dies() -> None:
    called: list[str] = []

    def broken(record: JobRecord, exc: BaseException) -> Any:
        raise LookupError("block")

    reports = _Reports()
    decision = rule.decide(
        JobOptions(retry=1, retries_exhausted=broken), 1, ValueError("x"), _record(1), random.Random(0),
        report=reports, exhausted_called=lambda: called.append("called"),
    )
    assert decision == rule.Decision("dead", exhausted=True)
    assert called == ["called"] and reports.seen == [("LookupError", rule.EXHAUSTED_FAILED)]


def test_error_message_keeps_ten_thousand_characters_and_survives_a_broken_str() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert len(rule.error_message(ValueError("x" * 20_000))) == rule.MAX_ERROR_MESSAGE
    assert rule.error_message(Broken()) == "!!! ERROR MESSAGE THREW AN ERROR !!!"


# -- every engine follows it ------------------------------------------------------------------------------
def _run(name: str, declared: Any, hooks: dict[str, list[Any]] | None = None, **options: Any) -> Any:
    engine = get_engine(name, seed=5, **options)
    for kind, handlers in (hooks or {}).items():
        getattr(engine.hooks, kind).extend(handlers)
    with engine.activate():
        declared.enqueue()
        engine.run_until_quiet()
    engine.close()
    return engine


@pytest.mark.parametrize("name", ENGINES)
def test_every_engine_takes_its_delay_from_the_one_rule(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rule, "jitter", lambda count, rng: 7)

    @job(name="fails", retry=3)
    def fails() -> None:
        raise ValueError("down")

    engine = _run(name, fails)
    delays = [e.detail["delay"] for e in engine.events if e.kind is EventKind.RETRY_SCHEDULED]
    assert delays == [count**4 + 15 + 7 for count in range(3)]


def _contexts(errors: list[tuple[str, str]]) -> list[str]:
    return [context for _, context in errors]


@pytest.mark.parametrize("name", ENGINES)
def test_a_raising_retry_in_reaches_the_error_handlers_on_every_engine(name: str) -> None:
    errors: list[tuple[str, str]] = []

    def broken(count: int, exc: BaseException, record: JobRecord) -> Any:
        raise ZeroDivisionError("rule")

    @job(name="ruled", retry=1, retry_in=broken)
    def ruled() -> None:
        raise ValueError("down")

    handler = [lambda exc, ctx: errors.append((type(exc).__name__, ctx["context"]))]
    engine = _run(name, ruled, {"error_handlers": handler})
    rule_failed = "Failure scheduling retry using the defined `retry_in` in ruled, falling back to default"
    assert ("ZeroDivisionError", rule_failed) in errors
    assert _contexts(errors).count(rule.JOB_RAISED) == 2  # both failed attempts, as before
    [delay] = [e.detail["delay"] for e in engine.events if e.kind is EventKind.RETRY_SCHEDULED]
    assert 15 <= delay < 25  # the default delay


@pytest.mark.parametrize("name", ENGINES)
def test_a_raising_exhausted_block_and_death_handler_reach_the_error_handlers_on_every_engine(name: str) -> None:
    errors: list[tuple[str, str]] = []
    deaths: list[str] = []

    def exhausted(record: JobRecord, exc: BaseException) -> None:
        raise LookupError("exhausted block")

    def broken_death_handler(record: JobRecord, exc: BaseException) -> None:
        raise KeyError("death handler")

    @job(name="doomed", retry=0, retries_exhausted=exhausted)
    def doomed() -> None:
        raise ValueError("down")

    hooks = {
        "error_handlers": [lambda exc, ctx: errors.append((type(exc).__name__, ctx["context"]))],
        "death_handlers": [broken_death_handler, lambda record, exc: deaths.append(record.job)],
    }
    engine = _run(name, doomed, hooks)
    assert ("LookupError", rule.EXHAUSTED_FAILED) in errors
    assert ("KeyError", rule.DEATH_HANDLER_FAILED) in errors
    assert ("ValueError", rule.JOB_RAISED) in errors and len(errors) == 3
    assert deaths == ["doomed"]  # a broken death handler does not stop the next one
    assert [r.job for r in engine.dead()] == ["doomed"]
