"""The shop's error routing: transient failures are retried quietly, everything else reaches a person.

A server middleware wraps each job: an exception of a transient class (the engine-wide list plus the
job's own `transient` option) becomes an `IgnorableError`, which the engine retries and the error
handler does not report (lesson 3). Other errors are reported on every attempt (lesson 2); a job that
dies is reported once by the death handler, whatever its error (lessons 4 and 8).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from fake_services.clients import ServiceError, TransientServiceError
from scenarios.shop import app, db

if TYPE_CHECKING:
    import httpx

    from harness.engines.base import Engine, Job, JobRecord
    from harness.world import World

__all__ = [
    "TRANSIENT_ERRORS",
    "IgnorableError",
    "TransientErrors",
    "configure",
    "install",
    "report_death",
    "report_error",
    "shop_jobs",
]

log = logging.getLogger(__name__)

#: Exception classes every job treats as "will probably work if tried again".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (TransientServiceError,)


class IgnorableError(Exception):
    """A transient failure, wrapped so the error catcher ignores it; the engine still retries the job."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(f"{type(original).__name__}: {original}")
        self.original = original


class TransientErrors:
    """Server middleware: re-raise transient exceptions as `IgnorableError`.

    `jobs` supplies the per-job lists (`JobOptions.transient`); the middleware sees only the job's
    record, which names the job, so it looks the options up by that name.
    """

    def __init__(self, transient: Iterable[type[BaseException]] = TRANSIENT_ERRORS, jobs: Iterable[Job] = ()) -> None:
        self.transient = tuple(transient)
        self._per_job: dict[str, tuple[type[BaseException], ...]] = {}
        for one in jobs:
            self.register(one)

    def register(self, job: Job) -> None:
        self._per_job[job.name] = tuple(job.options.transient)

    def classes_for(self, job_name: str) -> tuple[type[BaseException], ...]:
        return self.transient + self._per_job.get(job_name, ())

    def __call__(self, record: JobRecord, call_next: Callable[[], Any]) -> Any:
        try:
            return call_next()
        except IgnorableError:
            raise
        # Only Exception: an injected crash or a shutdown is not the job's error to classify.
        except Exception as exc:
            if isinstance(exc, self.classes_for(record.job)):
                raise IgnorableError(exc) from exc
            raise


def report_error(exc: BaseException, context: dict[str, Any]) -> None:
    """Error handler: tell the error catcher about every failed attempt that a person should see."""
    if isinstance(exc, IgnorableError) or not isinstance(exc, Exception):
        return
    _notify(type(exc).__name__, str(exc))


def report_death(record: JobRecord, exc: BaseException) -> None:
    """Death handler: the job will not run again, so a person must hear about it, transient or not."""
    original = exc.original if isinstance(exc, IgnorableError) else exc
    _notify(type(original).__name__, f"{record.job} won't be retried: {original}")


def _notify(exception_class: str, message: str) -> None:
    try:
        app.error_catcher().notify(exception_class=exception_class, exception_message=message or "(no message)")
    except ServiceError as exc:
        # A failing reporter must not turn the job's failure into a different one; leave a trace instead.
        log.warning("could not report %s (%s) to the error catcher: %s", exception_class, message, exc)


def shop_jobs() -> list[Job]:
    """Every job the shop defines, in all its stages."""
    from scenarios.shop import jobs_idempotent, jobs_naive, jobs_newsletter, jobs_noretry, jobs_split

    return [
        jobs_naive.complete_order,
        jobs_split.complete_order,
        jobs_split.send_confirmation_email,
        jobs_split.request_fulfillment,
        jobs_idempotent.complete_order,
        jobs_idempotent.send_confirmation_email,
        jobs_idempotent.request_fulfillment,
        jobs_noretry.announce_order,
        jobs_newsletter.send_newsletter,
    ]


def install(
    engine: Engine,
    http: httpx.Client | None = None,
    *,
    clock: app.Clock | None = None,
    base_url: str | None = None,
    transient: Iterable[type[BaseException]] = TRANSIENT_ERRORS,
    jobs: Iterable[Job] = (),
) -> TransientErrors:
    """Wire the shop into `engine` (hooks, job registrations) and its clients onto `http`.

    Safe to call again on the same engine: the shop's previous hooks are replaced, not doubled.
    """
    app.connect(http, clock if clock is not None else engine.clock, base_url=base_url)
    every_job = [*shop_jobs(), *jobs]
    middleware = TransientErrors(transient, every_job)
    hooks = engine.hooks
    hooks.server_middleware[:] = [m for m in hooks.server_middleware if not isinstance(m, TransientErrors)]
    hooks.server_middleware.insert(0, middleware)
    if report_error not in hooks.error_handlers:
        hooks.error_handlers.append(report_error)
    if report_death not in hooks.death_handlers:
        hooks.death_handlers.append(report_death)
    for one in every_job:
        engine.register(one)
    return middleware


def configure(world: World) -> None:
    """A scenario's `configure`: install the shop on the world's engine, services and clock."""
    install(world.engine, world.http, clock=world.clock, base_url=world.base_url)
    db.database()
