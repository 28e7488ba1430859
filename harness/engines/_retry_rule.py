"""Sidekiq's retry rule, written once: the fields a failure writes, the delay before the next try, and what
becomes of a failed attempt (retried, dead, discarded, dropped).

Every engine routes a harness job's failure through here: `sim` acts on the `Decision` itself, the
Dramatiq, RQ and Celery adapters translate it into their engine's own mechanism. The rule is Sidekiq
7.x's (`lib/sidekiq/job_retry.rb`): the delay before the retry that follows failure `count` (0-based)
is `count**4 + 15` seconds plus a jitter of `rand(10 * (count + 1))`. Sidekiq 6.x drew the jitter as
`rand(10) * (count + 1)`, which only reaches multiples of `count + 1`.

Hooks the rule calls (`retry_in`, `retries_exhausted`) may raise; as in Sidekiq, the error goes to the
error handlers (through the `report` callback the engine passes) and the rule carries on with its
default.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from harness.engines.base import JobOptions, JobRecord

__all__ = [
    "DEATH_HANDLER_FAILED",
    "EXHAUSTED_FAILED",
    "JOB_RAISED",
    "MAX_ERROR_MESSAGE",
    "Decision",
    "Report",
    "decide",
    "default_retry_delay",
    "error_message",
    "jitter",
    "record_failure",
]

_log = logging.getLogger("harness.engines")

#: Sidekiq keeps the first 10,000 characters of an error message in the job's payload.
MAX_ERROR_MESSAGE = 10_000

#: The `context` of the error handlers' second argument, as Sidekiq words it, per occasion.
JOB_RAISED = "Job raised exception"
EXHAUSTED_FAILED = "Error calling retries_exhausted"
DEATH_HANDLER_FAILED = "Error calling death handler"
_RETRY_IN_FAILED = "Failure scheduling retry using the defined `retry_in` in {job}, falling back to default"

#: `report(error, context)`: hand an error raised by a hook to the engine's error handlers.
Report = Callable[[BaseException, str], None]


def jitter(count: int, rng: random.Random) -> int:
    """Sidekiq 7.x's jitter for failure `count`: Ruby's `rand(10 * (count + 1))`, an int in [0, 10 * (count + 1))."""
    return rng.randrange(10 * (count + 1))


def default_retry_delay(count: int, rng: random.Random) -> int:
    """Sidekiq's delay before the retry that follows failure `count` (0-based): count**4 + 15 + jitter."""
    return count**4 + 15 + jitter(count, rng)


def error_message(exc: BaseException) -> str:
    """The message Sidekiq stores: the first 10,000 characters, or a placeholder if `str()` breaks."""
    try:
        return str(exc)[:MAX_ERROR_MESSAGE]
    except Exception:  # a broken __str__ must not stop the retry from being recorded
        return "!!! ERROR MESSAGE THREW AN ERROR !!!"


def record_failure(record: JobRecord, exc: BaseException, now: float, options: JobOptions) -> int | None:
    """Write Sidekiq's retry fields for a failure and return the new `retry_count` (0 on the first).

    `retry=False` writes nothing and returns None: Sidekiq hands such a job to its death handlers as it
    was enqueued, with no retry fields.
    """
    if options.max_retries is None:
        return None
    record.error_class = type(exc).__name__
    record.error_message = error_message(exc)
    if record.retry_count is None:
        record.failed_at = now
        record.retry_count = 0
    else:
        record.retried_at = now
        record.retry_count += 1
    return record.retry_count


@dataclass(frozen=True)
class Decision:
    """What becomes of a failed attempt.

    - `retry`: try again after `delay` seconds (whole seconds, jitter included).
    - `dead`: exhausted (or killed by `retry_in`): the exhausted block ran, the job goes to the dead set,
      then the death handlers.
    - `discard`: no dead set, death handlers only; `reason` says why ("retry_in", "dead=False",
      "retries_exhausted"); `exhausted` says whether the exhausted block ran first.
    - `drop`: `retry=False`: no retry set, no dead set; the death handlers run.
    """

    kind: Literal["retry", "dead", "discard", "drop"]
    delay: int | None = None
    exhausted: bool = False
    reason: str | None = None


_DROP = Decision("drop")
_DISCARD_BY_RULE = Decision("discard", reason="retry_in")


def decide(
    options: JobOptions,
    count: int | None,
    exc: BaseException,
    record: JobRecord,
    rng: random.Random,
    *,
    report: Report,
    exhausted_called: Callable[[], None] | None = None,
) -> Decision:
    """Route the failure after which the job's `retry_count` is `count` (None for `retry=False`), with
    Sidekiq's order of checks. At exhaustion the job's `retries_exhausted` block runs here
    (`exhausted_called()` is told just before); hooks that raise go to `report`."""
    max_retries = options.max_retries
    if max_retries is None or count is None:
        return _DROP
    if count >= max_retries:
        return _exhaust(options, record, exc, report, exhausted_called)
    answer: Any = None
    if options.retry_in is not None:
        try:
            answer = options.retry_in(count, exc, record)
        except Exception as rule_error:
            report(rule_error, _RETRY_IN_FAILED.format(job=record.job))
            answer = None
    if isinstance(answer, str):
        if answer == "discard":
            return _DISCARD_BY_RULE
        if answer == "kill":
            return _exhaust(options, record, exc, report, exhausted_called)
        _log.warning("retry_in of %s answered %r; using the default delay", record.job, answer)
    delay = count**4 + 15
    if isinstance(answer, float) and math.isfinite(answer):
        answer = int(answer)  # Ruby's Float#to_i: whole seconds
    if isinstance(answer, int) and not isinstance(answer, bool) and answer > 0:
        delay = answer
    return Decision("retry", delay + jitter(count, rng))


def _exhaust(
    options: JobOptions,
    record: JobRecord,
    exc: BaseException,
    report: Report,
    exhausted_called: Callable[[], None] | None,
) -> Decision:
    """The exhausted block, then the dead set unless `dead=False` or the block answered "discard"."""
    answer: Any = None
    callback = options.retries_exhausted
    if callback is not None:
        if exhausted_called is not None:
            exhausted_called()
        try:
            answer = callback(record, exc)
        except Exception as callback_error:
            report(callback_error, EXHAUSTED_FAILED)
    if not options.dead:
        return Decision("discard", exhausted=True, reason="dead=False")
    if isinstance(answer, str) and answer == "discard":
        return Decision("discard", exhausted=True, reason="retries_exhausted")
    return Decision("dead", exhausted=True)
