"""The protocol every engine backend implements, and the vocabulary they share.

A *job* is a Python callable plus its options (queue, retries, dead, a retry-in rule, a
retries-exhausted callback), declared once with `@job` and run by any backend. A backend turns the
engine's native mechanisms into the same *events* and calls the same *hooks*, so the explorer, the
pytest plugin and the scenarios never need to know which engine ran a job.

The shape follows Sidekiq's: a job record (the payload) with its retry fields, a retry set, a dead set,
error handlers on every failed attempt, death handlers when a job dies, server middleware around each
execution and client middleware around each enqueue. `AttemptObserver` is the seam the injector uses:
it is told when each attempt starts and ends, with the attempt number.
"""

from __future__ import annotations

import contextvars
import enum
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal, TypeAlias

from harness.clock import VirtualClock
from harness.errors import ConfigurationError, JobArgumentError

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "AttemptObserver",
    "Engine",
    "Event",
    "EventKind",
    "Hooks",
    "Job",
    "JobOptions",
    "JobRecord",
    "RetryDecision",
    "RetryPolicy",
    "Stats",
    "check_json_args",
    "current_engine",
    "job",
]

#: Sidekiq's default number of retries (`retry: true`).
DEFAULT_MAX_RETRIES = 25

#: What a retry-in rule may answer: a delay in seconds, None (use the engine's default delay),
#: "discard" (drop the job, run death handlers only) or "kill" (straight to the dead set).
RetryDecision: TypeAlias = "float | int | Literal['discard', 'kill'] | None"
RetryIn: TypeAlias = "Callable[[int, BaseException, JobRecord], RetryDecision]"
RetriesExhausted: TypeAlias = "Callable[[JobRecord, BaseException], object]"


@dataclass(frozen=True)
class JobOptions:
    """A job's options, with Sidekiq's meanings.

    `retry`: True means `DEFAULT_MAX_RETRIES` retries, an int that many (0 = straight to exhaustion on
    the first failure), False no retry at all (no retry set, no dead set; error handlers still run).
    `dead`: False keeps exhausted jobs out of the dead set (death handlers still run).
    `retry_in(count, exc, record)`: per-exception delay rule; see `RetryDecision`.
    `retries_exhausted(record, exc)`: runs at exhaustion, before the dead set and the death handlers.
    `transient`: exception classes this job treats as transient, on top of the engine-wide list (the
    server middleware of the example shop reads it; engines carry it and do not interpret it).
    """

    queue: str = "default"
    retry: bool | int = True
    dead: bool = True
    retry_in: RetryIn | None = None
    retries_exhausted: RetriesExhausted | None = None
    transient: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.queue, str) or not self.queue:
            raise ConfigurationError(f"queue must be a non-empty string, not {self.queue!r}")
        if not isinstance(self.retry, bool) and (not isinstance(self.retry, int) or self.retry < 0):
            raise ConfigurationError(
                f"retry must be True, False or a non-negative int, not {self.retry!r}"
            )

    @property
    def max_retries(self) -> int | None:
        """How many retries the job gets; None when `retry=False` (no retry machinery at all)."""
        if self.retry is True:
            return DEFAULT_MAX_RETRIES
        if self.retry is False:
            return None
        return int(self.retry)


@dataclass(frozen=True)
class RetryPolicy:
    """A registered job's retry settings, as its engine reads them from its own settings.

    - `max_retries`: how many times a failed job is retried (N retries: N+1 runs); 0 when a failure is
      never retried (Sidekiq's `retry=0` and `retry=False`, an RQ job enqueued without `Retry`).
    - `dead`: whether a job that failed for good is kept where the engine keeps failed jobs (Sidekiq's
      dead set, Dramatiq's dead-letter queue, RQ's `FailedJobRegistry`, Celery's FAILURE results);
      False for `retry=False` and `dead=False`.
    - `retry_on`: the exception classes the engine retries (Celery: `autoretry_for`, empty when the task
      retries only by calling `self.retry()`); `never_retry_on`: those it never retries (Dramatiq's
      `throws`, Celery's `dont_autoretry_for`).
    - `source`: where the numbers were read, in words.
    """

    max_retries: int
    dead: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    never_retry_on: tuple[type[BaseException], ...] = ()
    source: str = ""

    @classmethod
    def of(cls, options: JobOptions) -> RetryPolicy:
        """The policy of a harness job (`@job`), the same on every engine."""
        retries = options.max_retries
        return cls(
            max_retries=retries or 0,
            dead=retries is not None and options.dead,
            source=f"@job(retry={options.retry!r}, dead={options.dead!r})",
        )


class Job:
    """A callable with job options. Calling it runs the function directly, as a test would."""

    def __init__(self, fn: Callable[..., Any], *, name: str | None = None, options: JobOptions) -> None:
        self.fn = fn
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self.options = options
        self.__doc__ = fn.__doc__
        self.__wrapped__ = fn

    def __call__(self, *args: Any) -> Any:
        return self.fn(*args)

    def __repr__(self) -> str:
        return f"<Job {self.name} queue={self.options.queue!r} retry={self.options.retry!r}>"

    def with_options(self, **changes: Any) -> Job:
        """The same function under the same name, with some options changed."""
        return Job(self.fn, name=self.name, options=replace(self.options, **changes))

    # Enqueueing goes to the engine that is current (see `Engine.activate`), as Sidekiq's
    # `perform_async` goes to the configured Redis: jobs can enqueue jobs without knowing the engine.
    # None when a client middleware stopped the push, as Sidekiq's `perform_async` returns nil then.
    def enqueue(self, *args: Any) -> str | None:
        return current_engine().enqueue(self, *args)

    def enqueue_in(self, seconds: float, *args: Any) -> str | None:
        return current_engine().enqueue(self, *args, delay=seconds)

    def enqueue_at(self, when: float, *args: Any) -> str | None:
        return current_engine().enqueue(self, *args, at=when)


def job(
    fn: Callable[..., Any] | None = None,
    *,
    name: str | None = None,
    queue: str = "default",
    retry: bool | int = True,
    dead: bool = True,
    retry_in: RetryIn | None = None,
    retries_exhausted: RetriesExhausted | None = None,
    transient: Sequence[type[BaseException]] = (),
) -> Any:
    """Declare a job: `@job` or `@job(queue="high", retry=5)`."""
    options = JobOptions(
        queue=queue,
        retry=retry,
        dead=dead,
        retry_in=retry_in,
        retries_exhausted=retries_exhausted,
        transient=tuple(transient),
    )

    def wrap(f: Callable[..., Any]) -> Job:
        return Job(f, name=name, options=options)

    return wrap(fn) if fn is not None else wrap


def check_json_args(job_name: str, args: Sequence[Any]) -> list[Any]:
    """Return `args` as a list after proving they survive a JSON round trip; refuse them otherwise."""
    try:
        round_tripped = json.loads(json.dumps(list(args)))
    except (TypeError, ValueError) as exc:
        raise JobArgumentError(
            f"arguments of {job_name} must be JSON-simple (str, int, float, bool, None, list, dict "
            f"with str keys): {exc}"
        ) from None
    if round_tripped != list(args):
        raise JobArgumentError(
            f"arguments of {job_name} change in a JSON round trip ({list(args)!r} became "
            f"{round_tripped!r}); pass lists instead of tuples and str keys in dicts"
        )
    return round_tripped


@dataclass
class JobRecord:
    """One enqueued job: the payload an engine stores, with Sidekiq's retry fields.

    `retry_count` is None until the first failure, then 0, 1, ... (Sidekiq's numbering). Times are
    the engine clock's seconds (virtual under deterministic engines).
    """

    id: str
    job: str
    args: list[Any]
    queue: str
    enqueued_at: float
    retry_count: int | None = None
    error_class: str | None = None
    error_message: str | None = None
    failed_at: float | None = None
    retried_at: float | None = None
    discarded_at: float | None = None
    run_at: float | None = None

    @property
    def attempt(self) -> int:
        """1 for the first run, 2 for the first retry, and so on."""
        return 1 if self.retry_count is None else self.retry_count + 2

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job": self.job,
            "args": self.args,
            "queue": self.queue,
            "enqueued_at": self.enqueued_at,
            "retry_count": self.retry_count,
            "error_class": self.error_class,
            "error_message": self.error_message,
            "failed_at": self.failed_at,
            "retried_at": self.retried_at,
            "discarded_at": self.discarded_at,
            "run_at": self.run_at,
        }


class EventKind(enum.StrEnum):
    ENQUEUED = "enqueued"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RETRY_SCHEDULED = "retry_scheduled"
    DISCARDED = "discarded"
    DEAD = "dead"
    EXHAUSTED_CALLED = "exhausted_called"
    ERROR_HANDLER_CALLED = "error_handler_called"
    DEATH_HANDLER_CALLED = "death_handler_called"
    PUSHED_BACK = "pushed_back"
    #: The worker process died mid-attempt (an injected crash); the engine's delivery decides what follows.
    CRASHED = "crashed"
    #: A dead worker's job went back to its queue (redelivered), with no retry counted.
    RECOVERED = "recovered"
    #: A dead worker's job is gone for good: nothing will run it again.
    LOST = "lost"


@dataclass(frozen=True)
class Event:
    """One entry of an engine's ordered event log. `detail` holds JSON-simple values only."""

    time: float
    kind: EventKind
    job_id: str
    job: str
    attempt: int
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "kind": self.kind.value,
            "job_id": self.job_id,
            "job": self.job,
            "attempt": self.attempt,
            "detail": self.detail,
        }


@dataclass
class Stats:
    processed: int = 0
    failed: int = 0


class AttemptObserver:
    """Told when each attempt of each job starts and ends. The injector's seam; does nothing here.

    `attempt_started` runs before server middleware, `attempt_finished` after it, with the exception
    that escaped the attempt (None on success). Both run in the thread that runs the job.

    `attempt` numbers the runs of one job: 1 for the first, then 2, 3, ... whether the run follows a
    retry or a redelivery (a crashed worker's job run again, which counts no retry). Without
    redeliveries it equals `record.attempt`.
    """

    def attempt_started(self, record: JobRecord, attempt: int) -> None:
        """Called as an attempt begins; `attempt` is 1-based (the run number of this job)."""

    def attempt_finished(self, record: JobRecord, attempt: int, exc: BaseException | None) -> None:
        """Called as an attempt ends, whatever its outcome."""


def caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    """`exc` is a `kind`, or was raised while one was being handled (the cause chain, as Sidekiq walks it).

    An injected crash stands for the death of the process: whatever a `finally` block raised after it
    never happened in the real world, so such an exception counts as the crash.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


ErrorHandler: TypeAlias = "Callable[[BaseException, dict[str, Any]], object]"
DeathHandler: TypeAlias = "Callable[[JobRecord, BaseException], object]"
ServerMiddleware: TypeAlias = "Callable[[JobRecord, Callable[[], Any]], Any]"
ClientMiddleware: TypeAlias = "Callable[[JobRecord, Callable[[], str | None]], str | None]"


@dataclass
class Hooks:
    """Hooks normalised across engines.

    - `error_handlers`: `(exc, context)` on every failed attempt; `context` is
      `{"context": "Job raised exception", "job": record_dict}`.
    - `death_handlers`: `(record, exc)` once when a job dies (exhausted, killed or discarded).
    - `server_middleware`: `(record, call_next)` around each execution; return `call_next()`'s result.
    - `client_middleware`: `(record, call_next)` around each enqueue; not calling `call_next` stops
      the push (the job is not enqueued and `enqueue` returns None).
    - `observers`: `AttemptObserver`s (the injector).
    """

    error_handlers: list[ErrorHandler] = field(default_factory=list)
    death_handlers: list[DeathHandler] = field(default_factory=list)
    server_middleware: list[ServerMiddleware] = field(default_factory=list)
    client_middleware: list[ClientMiddleware] = field(default_factory=list)
    observers: list[AttemptObserver] = field(default_factory=list)


_current: contextvars.ContextVar[Engine | None] = contextvars.ContextVar("harness_engine", default=None)


def current_engine() -> Engine:
    """The engine jobs enqueue onto; set by `Engine.activate()`."""
    engine = _current.get()
    if engine is None:
        raise ConfigurationError(
            "no engine is active: enqueue inside `with engine.activate():` (the explorer and the "
            "pytest fixtures do this for you)"
        )
    return engine


class Engine(ABC):
    """One backend. Deterministic backends run single-threaded on `clock`, a `VirtualClock`.

    Lifecycle: build it, `register` jobs (or let `enqueue` register them), enqueue inside
    `activate()`, then `run_until_quiet()`. `reset()` empties queues, sets, events and counts but
    keeps registrations and hooks, so one engine serves thousands of exploration runs.
    """

    name: ClassVar[str]

    def __init__(self, *, clock: VirtualClock | None = None, seed: int = 0, hooks: Hooks | None = None):
        self.clock = clock if clock is not None else VirtualClock()
        self.seed = seed
        self.hooks = hooks if hooks is not None else Hooks()

    @contextmanager
    def activate(self) -> Iterator[Engine]:
        token = _current.set(self)
        try:
            yield self
        finally:
            _current.reset(token)

    # -- jobs ---------------------------------------------------------------------------------------
    @abstractmethod
    def register(self, job: Job) -> None:
        """Make the engine able to run `job` (idempotent)."""

    @abstractmethod
    def enqueue(
        self, job: Job | str, *args: Any, delay: float | None = None, at: float | None = None
    ) -> str | None:
        """Push a job now, in `delay` seconds or at clock time `at`; returns its id (None if a client
        middleware stopped the push). Arguments that fail `check_json_args` are refused."""

    def retry_policy(self, job: Job | Any, options: Mapping[str, Any] | None = None) -> RetryPolicy:
        """How `job` is retried on this engine, read from the engine's own settings.

        A harness job's policy comes from its options; a backend that runs native jobs reads theirs
        (a Dramatiq actor's options, a Celery task's settings, the `Retry` an RQ job is enqueued with:
        `options` are the options `enqueue` is given, and without them the ones this engine last saw).
        """
        if isinstance(job, Job):
            return RetryPolicy.of(job.options)
        raise ConfigurationError(
            f"the {self.name} engine reads the retry policy of harness jobs (@job) only, not {job!r}"
        )

    # -- running ------------------------------------------------------------------------------------
    @abstractmethod
    def step(self) -> bool:
        """Run one job that is due now, if any; True if one ran. Never moves the clock by itself."""

    @abstractmethod
    def next_due(self) -> float | None:
        """Clock time of the earliest scheduled or retrying job, None when nothing waits."""

    def run_until_quiet(self, *, max_time: float | None = None, max_steps: int = 1_000_000) -> int:
        """Run every due job, move the clock to the next scheduled one, repeat until nothing is left.

        `max_time` bounds the virtual time spent (seconds from now); jobs scheduled past it stay
        scheduled. Returns the number of jobs run.
        """
        deadline = None if max_time is None else self.clock.time() + max_time
        ran = 0
        while ran < max_steps:
            if self.step():
                ran += 1
                continue
            due = self.next_due()
            if due is None or (deadline is not None and due > deadline):
                break
            if due > self.clock.time():
                self.clock.advance_to(due)
        return ran

    # -- inspecting ---------------------------------------------------------------------------------
    @abstractmethod
    def queued(self, queue: str | None = None) -> list[JobRecord]:
        """Jobs waiting in queues (one queue, or all in priority order)."""

    @abstractmethod
    def scheduled(self) -> list[JobRecord]:
        """Jobs enqueued for later (not retries), earliest first."""

    @abstractmethod
    def retries(self) -> list[JobRecord]:
        """The retry set, earliest first."""

    @abstractmethod
    def dead(self) -> list[JobRecord]:
        """The dead set, most recent first (as Sidekiq lists it)."""

    @property
    @abstractmethod
    def events(self) -> list[Event]:
        """The ordered event log since the last reset."""

    @property
    @abstractmethod
    def stats(self) -> Stats:
        """Processed and failed counts since the last reset."""

    def queue_sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for record in self.queued():
            sizes[record.queue] = sizes.get(record.queue, 0) + 1
        return sizes

    @abstractmethod
    def reset(self) -> None:
        """Drop all jobs, sets, events and counts; keep registrations and hooks."""

    def forget(self) -> list[JobRecord]:
        """The broker loses what it holds, as a Redis restarted without persistence (or flushed, or failed
        over to an empty replica) does: queued, scheduled and retrying jobs, and the dead set. No error is
        raised anywhere; each lost job is logged as LOST with `cause="broker"`. A job running now is in
        the worker's hands and goes on. Returns the jobs lost, as they were."""
        raise NotImplementedError(f"the {self.name} engine cannot lose its broker's state")

    def close(self) -> None:  # noqa: B027 (a hook with nothing to release by default)
        """Release what the backend holds (connections, workers). Safe to call twice."""
