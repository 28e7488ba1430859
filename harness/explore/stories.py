"""Tell a violating run as a short story: what each attempt did, where the fault struck, what it left.

A story is a pure function of the plan and the run's result: what it needs of the world (the last call an
attempt made before it crashed) the injector wrote on the attempt's `Execution` as the attempt ended.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from harness.injection.plans import CallPoint, Duplicate, FaultStep, Outage, Plan, describe_point, span

if TYPE_CHECKING:
    from harness.explore.runner import RunResult

__all__ = ["describe_fault", "tell"]

_CALL_FAULTS = {
    ("drop", "before"): "lost the request on the way (nothing happened)",
    ("drop", "after"): "did it, but the connection dropped before the answer came back",
    ("timeout", "before"): "timed out before doing anything",
    ("timeout", "after"): "did it, but the answer timed out",
    ("429", "before"): "throttled the request (429, nothing happened)",
    ("malformed", "after"): "did it, but answered with a malformed body",
}


def describe_fault(step: FaultStep) -> str:
    point = step.point
    if isinstance(point, CallPoint):
        what = _CALL_FAULTS.get((step.fault, point.phase))
        if what is None:
            what = (
                f"did it, then answered {step.fault}"
                if point.phase == "after"
                else f"answered {step.fault} without doing anything"
            )
        nth = f" (call {point.call})" if point.call > 1 else ""
        return f"`{point.service}.{point.operation}`{nth} {what}"
    return f"crashed at `{describe_point(point)}`"


def _crash_stack(step: FaultStep, stack: tuple[str, ...]) -> str:
    """Where a crash struck, from the job's own line down to the crash point: the book's line-by-line
    assessment is about the job's lines, and a crash in a helper names the job's line that called it."""
    here = f"`{describe_point(step.point)}`"
    assert not isinstance(step.point, CallPoint)
    callers = list(stack)
    if callers and callers[-1] == step.point.where():
        callers.pop()
    else:
        callers = []  # the recorded stack is not this crash's: name the point alone
    return " → ".join([*(f"`{frame}`" for frame in callers), here])


def _short(job: str) -> str:
    return job.rsplit(".", 1)[-1]


def tell(plan: Plan, result: RunResult) -> str:
    """One sentence per attempt, joined with semicolons."""
    by_attempt: dict[int, list[FaultStep]] = {}
    for step in plan:
        if isinstance(step, FaultStep):
            by_attempt.setdefault(step.attempt, []).append(step)
    fired = set(result.fired)
    outages: dict[int, list[Outage]] = {}
    for step in plan:
        if isinstance(step, Outage):
            outages.setdefault(step.attempt, []).append(step)
    parts: list[str] = []
    redelivered = any(isinstance(step, Duplicate) for step in plan)
    entry_job = result.executions[0].job if result.executions else None
    for execution in result.executions:
        if redelivered and execution.index > 1 and execution.job == entry_job and execution.attempt == 1:
            parts.append("then the whole job was delivered again")
            redelivered = False
        for outage in outages.get(execution.index, ()):
            parts.append(f"{_outage(outage)} from the start of attempt {execution.attempt} of {_short(execution.job)}")
        head = f"attempt {execution.attempt} of {_short(execution.job)}"
        steps = [s for s in by_attempt.get(execution.index, []) if s in fired]
        if not steps:
            tail = "ran to the end" if execution.error is None else f"failed with {execution.error}"
            parts.append(f"{head} {tail}{_expired(execution.keys_expired)}")
            continue
        step = steps[0]
        if step.fault == "crash":
            sentence = f"{head} crashed at {_crash_stack(step, execution.stack)}"
        else:
            sentence = f"{head}: {describe_fault(step)}"
        if step.fault == "crash":
            last = execution.last_call
            sentence += f" just after `{last}` returned" if last else " before calling any service"
        elif execution.error is None:
            sentence += ", and the attempt carried on to the end"
        else:
            sentence += f", and the attempt failed with {execution.error}"
        parts.append(sentence + _expired(execution.keys_expired))
    for after, jobs in reversed(result.lost):
        parts.insert(min(after, len(parts)), _forgotten(jobs))
    return "; ".join(_runs(parts) if outages else parts)


def _outage(outage: Outage) -> str:
    what = f"`{outage.service}.{outage.operation}`" if outage.operation else outage.service
    return f"{what} was down for {span(outage.for_s)} (every call answered 503)"


def _expired(expiries: list[Any]) -> str:
    """What a key sent after its service dropped it did: no key can stop that second effect."""
    told = []
    for expiry in expiries:
        told.append(f", and the key had expired: {expiry.service} keeps an Idempotency-Key {span(expiry.retention_s)}, "
                    f"this retry sent {expiry.key!r} {span(expiry.age_s)} after its first use, so {expiry.service} "
                    "processed it as a new request")
    return "".join(told)


_FAILED = re.compile(r"^attempt (\d+) of (\S+) failed with (\S+)$")


def _runs(parts: list[str]) -> list[str]:
    """Runs of plain failures ("attempt 3 of x failed with E", "attempt 4 ...") told as one: an outage of a
    day fails a dozen retries alike, and the story is about the one that differs."""
    told: list[str] = []
    run: list[re.Match[str]] = []

    def flush() -> None:
        if len(run) >= 3:
            first, last = run[0], run[-1]
            told.append(f"attempts {first[1]} to {last[1]} of {first[2]} failed with {first[3]}")
        else:
            told.extend(m[0] for m in run)
        run.clear()

    for part in parts:
        match = _FAILED.match(part)
        if match is not None and (not run or (match[2], match[3]) == (run[-1][2], run[-1][3])):
            run.append(match)
            continue
        flush()
        if match is not None:
            run.append(match)
        else:
            told.append(part)
    flush()
    return told


def _forgotten(jobs: list[str]) -> str:
    """What a broker loss did, in the story's words: nothing raised, so nothing else would say it."""
    if not jobs:
        return "then the broker forgot everything it held (it held no job)"
    names = ", ".join(dict.fromkeys(jobs))
    count = "1 job" if len(jobs) == 1 else f"{len(jobs)} jobs"
    return f"then the broker forgot everything it held, {count} ({names}), and no error was raised"
