"""Native jobs for the engine tests: a Dramatiq actor, an RQ function, a Celery task, declared the way a
team declares them (on their own broker, module or app), each calling `body(*args)`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: What each native job runs; a test sets it before enqueueing.
BODY: dict[str, Callable[..., Any]] = {"body": lambda *args: None}


def rq_job(*args: Any) -> Any:
    """An RQ job is any importable function."""
    return BODY["body"](*args)


def dramatiq_actor(**options: Any) -> Any:
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    def native_actor(*args: Any) -> Any:
        return BODY["body"](*args)

    return dramatiq.actor(native_actor, broker=StubBroker(), actor_name="native_actor", **options)


def celery_task(**options: Any) -> Any:
    from celery import Celery

    app = Celery("team_app", broker="memory://", set_as_current=False)

    def native_task(*args: Any) -> Any:
        return BODY["body"](*args)

    return app.task(native_task, name="team.native_task", shared=False, **options)


def native_job(engine: str, **options: Any) -> tuple[Any, dict[str, Any]]:
    """A native job of `engine` and the options `engine.enqueue` needs for it (RQ's `retry=`)."""
    if engine == "dramatiq":
        return dramatiq_actor(**options), {}
    if engine == "celery":
        return celery_task(**options), {}
    if engine == "rq":
        return rq_job, options
    raise ValueError(f"no native jobs on {engine!r}")
