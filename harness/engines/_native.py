"""What kind of job an object is (a harness job, a Dramatiq actor, a Celery task, a plain function), read
from its type without importing any engine, and the engine that runs it.

`choose_engine` is how the explorer and the pytest fixture pick an engine for a job they were handed: a
native job runs on its own engine unless told otherwise, a harness job on the one asked for, and a plain
function is an RQ job only when someone says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from harness.engines.base import Job
from harness.errors import ConfigurationError

if TYPE_CHECKING:
    from harness.engines.base import Engine

__all__ = ["JobKind", "choose_engine", "job_function", "job_kind", "job_name"]

JobKind = Literal["harness", "dramatiq", "celery", "function"]
_NATIVE_WORDS = {"dramatiq": "a Dramatiq actor", "celery": "a Celery task", "function": "a plain function"}


def job_kind(job: object) -> JobKind | None:
    """"harness" for `@job`, "dramatiq" for an actor, "celery" for a task (or the lazy proxy an unfinalised
    app hands out), "function" for a plain function; None for anything else."""
    if isinstance(job, Job):
        return "harness"
    for cls in type(job).__mro__:
        root = cls.__module__.split(".", 1)[0]
        if root == "dramatiq" and cls.__name__ == "Actor":
            return "dramatiq"
        if root == "celery" and (cls.__name__ == "Task" or cls.__module__ == "celery.local"):
            return "celery" if hasattr(job, "apply_async") else None
    if callable(job) and hasattr(job, "__code__") and hasattr(job, "__qualname__"):
        return "function"
    return None


def job_function(job: Any) -> Callable[..., Any]:
    """The Python function a job runs (its code is what the explorer crashes line by line)."""
    kind = job_kind(job)
    if kind in ("harness", "dramatiq"):
        fn: Callable[..., Any] = job.fn
        return fn
    if kind == "celery":
        run = job.run
        return getattr(run, "__func__", run)
    if kind == "function":
        return job
    raise ConfigurationError(_not_a_job(job))


def job_name(job: Any) -> str:
    """The name a job is registered under on its engine."""
    kind = job_kind(job)
    if kind == "harness":
        return str(job.name)
    if kind == "dramatiq":
        return str(job.actor_name)
    if kind == "celery":
        return str(job.name)
    if kind == "function":
        return f"{job.__module__}.{job.__qualname__}"
    raise ConfigurationError(_not_a_job(job))


def describe(job: Any) -> str:
    """`job` in words, for error messages: "the Dramatiq actor shop.charge"."""
    kind = job_kind(job)
    if kind is None:
        return repr(job)
    if kind == "harness":
        return f"the harness job {job_name(job)}"
    return f"{_NATIVE_WORDS[kind].replace('a ', 'the ', 1)} {job_name(job)}"


def choose_engine(job: Any, engine: str | Engine | None = None, *, default: str = "sim") -> str | Engine:
    """The engine to explore `job` on.

    `engine` is what the caller asked for (None: nothing). A harness job runs on it, else on `default`.
    A Dramatiq actor or a Celery task runs on its own engine; asking for another is refused. A plain
    function is an RQ job only when someone says so: `engine="rq"`, or `default="rq"` (the pytest
    option `--harness-engine rq`). Anything else is refused with what to pass instead.
    """
    asked = engine if isinstance(engine, str) or engine is None else engine.name
    kind = job_kind(job)
    if kind == "harness":
        return engine if engine is not None else default
    if kind in ("dramatiq", "celery"):
        if asked is None or asked == kind:
            return engine if engine is not None else kind
        raise ConfigurationError(
            f"{describe(job)} runs on the {kind} engine, not {asked!r}; leave engine= out (or pass "
            f"engine={kind!r}), or declare the job with @harness.job to explore it on any engine"
        )
    if kind == "function":
        if asked == "rq" or (asked is None and default == "rq"):
            return engine if engine is not None else "rq"
        said = "nothing" if asked is None else repr(asked)
        raise ConfigurationError(
            f"{describe(job)} is an RQ job only when you say so (you said {said}): pass engine='rq', "
            "or declare it with @harness.job to explore it on any engine"
        )
    raise ConfigurationError(_not_a_job(job))


def _not_a_job(job: object) -> str:
    return (
        f"{job!r} is not a job: pass a Scenario, a @harness.job, a Dramatiq actor, a Celery task, or a "
        "function with engine='rq'"
    )
