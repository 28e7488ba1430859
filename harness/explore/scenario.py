"""A scenario: a job, how to set the world up for it, and what must hold afterwards."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.engines._native import job_function
from harness.errors import ConfigurationError

if TYPE_CHECKING:
    from harness.engines.base import Job
    from harness.world import World

__all__ = ["Invariant", "Scenario"]

#: An invariant looks at the world after a run and answers None (or an empty list) when it holds, or
#: one sentence (or several) naming the evidence when it does not.
Invariant = Callable[["World"], "str | Sequence[str] | None"]


@dataclass(frozen=True)
class Scenario:
    """What the explorer needs to know about one job.

    - `job`: the entry job; `jobs`: other jobs it may enqueue (registered up front).
    - `configure(world)`: once per world: install the app's hooks on `world.engine.hooks` and point
      its service clients at `world.http`.
    - `setup(world)`: before every plan, after the world was reset: prepare data, return the job's
      arguments (a list).
    - `invariants`: checks on the world after the run (the explorer always adds its own baseline check
      that the effects equal the clean run's unless `compare_to_clean_run=False`).
    - `targets`: module or package names whose lines are crash points (default: the job's package).
    - `fingerprint(world)`: see the field's comment.
    - `reset()`: drop process state after an injected crash (roll back and close connections, clear
      caches), as a fresh process would start.
    - `calls_nothing`: the job truly calls no service; see the field's comment.
    """

    name: str
    job: Job
    setup: Callable[[World], Sequence[Any]] = lambda world: []
    configure: Callable[[World], None] | None = None
    invariants: Sequence[Invariant] = ()
    targets: Sequence[str] = ()
    exclude: Sequence[str] = ()
    reset: Callable[[], None] | None = None
    jobs: Sequence[Job] = ()
    compare_to_clean_run: bool = True
    #: A hashable summary of the app's own state (its database rows, say). With it the explorer can
    #: tell that two crash points leave the same world and run only one of them (pruning).
    fingerprint: Callable[[World], Hashable] | None = None
    #: Virtual-time bound for one plan's run (seconds); 25 Sidekiq retries take about 21 days.
    max_time: float = 30 * 24 * 3600.0
    description: str = ""
    tags: Sequence[str] = field(default_factory=tuple)
    #: The explorer earns a verdict only from a clean run that succeeded and reached at least one service
    #: call (or changed what `fingerprint` sees): a job whose client was never pointed at the fakes fails or
    #: does nothing in every plan, and would look safe. A job that truly calls nothing says so here.
    calls_nothing: bool = False
    #: Wall-clock seconds one attempt may run before it is reported as hung (None: no limit). Virtual
    #: time makes retries and slow services instant, so an attempt that runs this long is stuck.
    attempt_timeout: float | None = 60.0
    #: Called in each worker process of a parallel exploration (`jobs` > 1: `jobs - 1` workers, the
    #: exploring process being the last), before its world is built, with the worker's number (1, 2, ...):
    #: give the process resources of its own (a database, a Redis database) so workers do not see each
    #: other's runs, nor the exploring process's, which keeps the scenario's own. State in process memory
    #: and the in-process fake services need nothing: each worker is a process of its own.
    isolate: Callable[[int], None] | None = None
    #: Engine options the entry job is enqueued with, as production code passes them: RQ's
    #: `retry=Retry(...)` and `on_failure=`, `queue=`, Celery's `apply_async` options, Dramatiq's message options.
    enqueue_options: Mapping[str, Any] = field(default_factory=dict)
    #: Also explore a broker that forgets (a Redis restarted without persistence): after each attempt of
    #: the clean run, one plan drops every job the broker holds. No error is raised when that happens, so
    #: only an invariant on business outcomes (`harness.invariants.completed_within`) can notice.
    broker_loss: bool = False
    #: Jobs a scheduler outside the broker enqueues on a timer (cron, a Kubernetes CronJob), as
    #: (job, every seconds): once the run has gone quiet, each is enqueued every `every` seconds of
    #: virtual time for `periodic_for` seconds, and the engine runs what follows. A reconciler that
    #: re-enqueues stuck work lives here; the jobs must be registered too (`jobs=`).
    periodic: Sequence[tuple[Job, float]] = ()
    periodic_for: float = 2 * 3600.0
    #: Also explore outages longer than a retry: for each attempt of the clean run and each service it
    #: called, one plan per duration here (seconds of virtual time) takes that service down from the
    #: attempt's start (every call answered 503). Retries run into it on the engine's own schedule, so a
    #: retry that comes after the service forgot an idempotency key sends the key as a new request.
    outages: Sequence[float] = ()
    #: How long each service keeps an idempotency key, in seconds, where it differs from the default of
    #: 24 hours (as Stripe keeps them): `{"payments": 3600}`.
    key_retention: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from fake_services.behaviours import MAX_OUTAGE_S

        if not self.name:
            raise ConfigurationError("a scenario needs a name")
        if isinstance(self.outages, str | bytes) or not isinstance(self.outages, Sequence):
            raise ConfigurationError(f"scenario {self.name!r}: outages is a list of durations in seconds, "
                                     f"not {self.outages!r}")
        for length in self.outages:
            if isinstance(length, bool) or not isinstance(length, int | float) or not 0 < length <= MAX_OUTAGE_S:
                raise ConfigurationError(f"scenario {self.name!r}: an outage lasts more than 0 and at most "
                                         f"{MAX_OUTAGE_S:g} seconds (90 days), not {length!r}")
        if not isinstance(self.key_retention, Mapping):
            raise ConfigurationError(f"scenario {self.name!r}: key_retention maps service names to seconds, "
                                     f"not {self.key_retention!r}")
        if not callable(self.setup):
            raise ConfigurationError(f"scenario {self.name!r}: setup must be callable")
        for entry in self.periodic:
            every = entry[1] if isinstance(entry, tuple) and len(entry) == 2 else None
            if isinstance(every, bool) or not isinstance(every, int | float) or every <= 0:
                raise ConfigurationError(f"scenario {self.name!r}: periodic takes (job, every seconds) pairs "
                                         f"with a positive interval, not {entry!r}")

    @property
    def target_modules(self) -> list[str]:
        if self.targets:
            return list(self.targets)
        module = job_function(self.job).__module__
        return [module.rsplit(".", 1)[0] if "." in module else module]
