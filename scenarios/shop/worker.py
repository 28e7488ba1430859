"""The example shop on a real RQ worker: real Redis, real processes, the fake services over HTTP.

`python -m scenarios.shop.worker` runs RQ's own forking worker on the shop's queues (`high` before
`default`), with the shop's hooks installed (transient errors retried quietly, other failures and deaths
reported to the error catcher) and its clients pointed at the fake services' URL. `enqueue-order` places
an order and enqueues the job that completes it; `stats` prints the queues as the shop's monitoring sees
them. It is what the `shop-worker` service of `compose.yaml` runs.

Options have environment equivalents (`REDIS_URL`, `HARNESS_SERVICES_URL`, `DATABASE_URL`,
`SHOP_QUEUE_PREFIX`, `SHOP_RETRY_DELAY_SCALE`); an option given on the command line wins.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from harness.clock import RealClock
from harness.engines._retry_rule import default_retry_delay
from harness.engines.base import Engine, Event, Job, JobRecord, Stats, check_json_args
from harness.errors import ConfigurationError, EngineUnavailable

__all__ = ["PERFORM", "RedisQueues", "Settings", "enqueue_order", "main", "perform", "work"]

#: What RQ runs for every shop job: `perform(job_name, *args)` finds the shop's job by name.
PERFORM = "scenarios.shop.worker.perform"

#: A file every process on one machine agrees on, so `enqueue-order` and the worker share the orders.
DEFAULT_DATABASE_URL = f"sqlite:///{os.path.join(tempfile.gettempdir(), 'retry-harness-shop.sqlite3')}"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_SERVICES_URL = "http://127.0.0.1:8888"

_PREFIX = re.compile(r"[A-Za-z0-9_]+")


@dataclass(frozen=True)
class Settings:
    """Where the worker finds Redis, the fake services and the shop's database.

    `queue_prefix` names the shop's queues (`<prefix>-high`, `<prefix>-default`) and job ids, so two
    shops can share a Redis database. `retry_delay_scale` multiplies Sidekiq's delays between retries
    (15 s and more); 0.1 makes a demo or a test wait seconds instead.
    """

    redis_url: str = DEFAULT_REDIS_URL
    services_url: str = DEFAULT_SERVICES_URL
    database_url: str = DEFAULT_DATABASE_URL
    queue_prefix: str = "shop"
    retry_delay_scale: float = 1.0

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.queue_prefix):
            raise ConfigurationError(f"the queue prefix may hold letters, digits and _ only, not {self.queue_prefix!r}")
        if self.retry_delay_scale < 0:
            raise ConfigurationError(f"the retry delay scale cannot be negative ({self.retry_delay_scale})")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from the environment; `overrides` that are not None win."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {
            "redis_url": env.get("REDIS_URL") or DEFAULT_REDIS_URL,
            "services_url": env.get("HARNESS_SERVICES_URL") or DEFAULT_SERVICES_URL,
            "database_url": env.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
            "queue_prefix": env.get("SHOP_QUEUE_PREFIX") or "shop",
            "retry_delay_scale": _number("SHOP_RETRY_DELAY_SCALE", env.get("SHOP_RETRY_DELAY_SCALE") or "1"),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class RedisQueues(Engine):
    """The engine protocol over RQ queues on a real Redis, in real time: what the worker and the shop share.

    `enqueue` pushes a harness job as RQ's `perform(job_name, *args)` with `Retry(max=N)` and Sidekiq's
    delays (scaled), so a job that enqueues the next one (`send_confirmation_email.enqueue(...)`) reaches
    Redis. `queued`, `scheduled`, `retries` and `dead` read RQ's queues and registries; `stats` counts the
    attempts the worker ran. Jobs run in the worker's processes, never in `step()`; there is no event log.
    `retry_in` rules and `dead=False` are Sidekiq options RQ has no place for: such jobs are refused.
    """

    name = "rq-redis"

    def __init__(self, connection: Any, *, prefix: str = "shop", retry_delay_scale: float = 1.0) -> None:
        super().__init__()
        self.clock = RealClock()  # type: ignore[assignment]  # the wall clock: real workers, real waits
        self.connection = connection
        self.prefix = prefix
        self.retry_delay_scale = retry_delay_scale
        self._jobs: dict[str, Job] = {}
        self._queues: dict[str, Any] = {}
        self._rng = random.Random()

    @classmethod
    def connect(cls, settings: Settings) -> RedisQueues:
        """An engine on the Redis of `settings`; EngineUnavailable when it does not answer."""
        import redis

        connection = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5)
        try:
            connection.ping()
        except redis.RedisError as exc:
            connection.close()
            raise EngineUnavailable(f"no Redis answers at {_redact(settings.redis_url)}: {exc}") from None
        return cls(connection, prefix=settings.queue_prefix, retry_delay_scale=settings.retry_delay_scale)

    # -- jobs -------------------------------------------------------------------------------------------
    def queue_name(self, queue: str) -> str:
        return f"{self.prefix}-{queue}"

    def _queue(self, queue: str) -> Any:
        found = self._queues.get(queue)
        if found is None:
            from rq import Queue

            found = self._queues[queue] = Queue(self.queue_name(queue), connection=self.connection)
        return found

    def register(self, job: Job) -> None:
        if not isinstance(job, Job):
            raise ConfigurationError(f"cannot register {job!r}: the shop's worker runs harness jobs (@job)")
        if job.options.retry_in is not None or not job.options.dead:
            raise ConfigurationError(f"{job.name}: retry_in rules and dead=False have no RQ equivalent here")
        self._jobs.setdefault(job.name, job)
        self._queue(job.options.queue)

    def job(self, name: str) -> Job:
        try:
            return self._jobs[name]
        except KeyError:
            raise ConfigurationError(f"no job named {name!r} is registered; known: {', '.join(self._jobs)}") from None

    def retry_delays(self, retries: int) -> list[int]:
        """Sidekiq's delay before each retry (`count**4 + 15 + rand(10 * (count + 1))`), scaled, in seconds."""
        delays = []
        for count in range(retries):
            delay = default_retry_delay(count, self._rng) * self.retry_delay_scale
            delays.append(max(1, round(delay)) if self.retry_delay_scale else 0)
        return delays

    def enqueue(
        self, job: Job | str, *args: Any, delay: float | None = None, at: float | None = None
    ) -> str | None:
        from rq import Retry

        if isinstance(job, str):
            job = self.job(job)
        self.register(job)
        arguments = check_json_args(job.name, args)
        now = self.clock.time()
        when = at if at is not None else (now + delay if delay else None)
        retries = job.options.max_retries
        record = JobRecord(
            id=f"{self.prefix}-{uuid.uuid4().hex}",
            job=job.name,
            args=arguments,
            queue=job.options.queue,
            enqueued_at=now,
            run_at=when,
        )
        options: dict[str, Any] = {
            "args": [job.name, *arguments],
            "job_id": record.id,
            "description": f"{job.name}({', '.join(map(repr, arguments))})",
            "meta": {"max_retries": retries or 0},
            "retry": Retry(max=retries, interval=self.retry_delays(retries)) if retries else None,
        }

        def push() -> str:
            queue = self._queue(job.options.queue)
            if when is None or when <= now:
                queue.enqueue_call(PERFORM, **options)
            else:
                queue.enqueue_at(datetime.fromtimestamp(when, UTC), PERFORM, **options)
            return record.id

        chain: Callable[[], str | None] = push
        for middleware in reversed(self.hooks.client_middleware):
            chain = _bind(middleware, record, chain)
        return chain()

    # -- running (in the worker's work horse) -------------------------------------------------------------
    def perform(self, name: str, args: list[Any], rq_job: Any) -> Any:
        """Run one attempt of a job as Sidekiq's server would: middleware around it, handlers after a failure.

        RQ decides whether the job runs again (`retries_left`); this attempt is its last when none are
        left, and then the death handlers run, before the error handlers, as in Sidekiq.
        """
        job = self.job(name)
        record = self.record(rq_job)
        chain: Callable[[], Any] = lambda: job.fn(*args)  # noqa: E731 (the innermost link of the chain)
        for middleware in reversed(self.hooks.server_middleware):
            chain = _bind(middleware, record, chain)
        self._count("processed")
        with self.activate():
            try:
                return chain()
            except Exception as exc:
                self._count("failed")
                before = record.to_dict()
                record.retry_count = 0 if record.retry_count is None else record.retry_count + 1
                record.error_class, record.error_message = type(exc).__name__, str(exc)
                if job.options.max_retries is not None and not rq_job.retries_left:
                    if job.options.retries_exhausted is not None:
                        _guarded(job.options.retries_exhausted, record, exc)
                    for handler in self.hooks.death_handlers:
                        _guarded(handler, record, exc)
                for error_handler in self.hooks.error_handlers:
                    _guarded(error_handler, exc, {"context": "Job raised exception", "job": before})
                raise

    def record(self, rq_job: Any) -> JobRecord:
        """The Sidekiq-shaped record of an RQ job of this engine (retry fields from RQ's `retries_left`)."""
        name, *args = rq_job.args
        max_retries = int((rq_job.meta or {}).get("max_retries", 0))
        left = rq_job.retries_left
        failures = max_retries - left if max_retries and left is not None else 0
        enqueued = rq_job.enqueued_at or rq_job.created_at
        return JobRecord(
            id=rq_job.id,
            job=name,
            args=list(args),
            queue=rq_job.origin.removeprefix(f"{self.prefix}-"),
            enqueued_at=_timestamp(enqueued) if enqueued else self.clock.time(),
            retry_count=failures - 1 if failures else None,
        )

    def step(self) -> bool:
        """Nothing runs in this process: the worker's processes run the jobs."""
        return False

    def run_until_quiet(self, *, max_time: float | None = None, max_steps: int = 1_000_000) -> int:
        """Wait, in real time, until no job is queued, running or scheduled (or `max_time` seconds pass).

        Returns the attempts the worker ran meanwhile.
        """
        deadline = None if max_time is None else time.monotonic() + max_time
        before = self.stats.processed
        while self.busy():
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        return self.stats.processed - before

    def busy(self) -> bool:
        """True while a job is queued, running, or waiting for its time (a retry included)."""
        from rq.registry import StartedJobRegistry

        for queue in self._queues.values():
            started = StartedJobRegistry(queue.name, connection=self.connection)
            if queue.count or started.count:
                return True
        return self.next_due() is not None

    def next_due(self) -> float | None:
        scores = [score for score, _ in self._scheduled_entries()]
        return min(scores) if scores else None

    # -- inspecting -------------------------------------------------------------------------------------
    def _fetch(self, ids: list[str]) -> list[Any]:
        from rq.job import Job as RQJob

        return [found for found in RQJob.fetch_many(ids, connection=self.connection) if found is not None]

    def queued(self, queue: str | None = None) -> list[JobRecord]:
        names = [queue] if queue is not None else list(self._queues)
        ids = [job_id for name in names if name in self._queues for job_id in self._queues[name].job_ids]
        return [self.record(found) for found in self._fetch(ids)]

    def _scheduled_entries(self) -> list[tuple[float, str]]:
        from rq.registry import ScheduledJobRegistry

        entries: list[tuple[float, str]] = []
        for queue in self._queues.values():
            key = ScheduledJobRegistry(queue.name, connection=self.connection).key
            entries += [(score, raw.decode()) for raw, score in self.connection.zrange(key, 0, -1, withscores=True)]
        return sorted(entries)

    def _waiting(self, retries: bool) -> list[JobRecord]:
        entries = self._scheduled_entries()
        at = {job_id: score for score, job_id in entries}
        out = []
        for found in self._fetch([job_id for _, job_id in entries]):
            record = self.record(found)
            if (record.retry_count is not None) == retries:
                record.run_at = at[found.id]
                out.append(record)
        return out

    def scheduled(self) -> list[JobRecord]:
        return self._waiting(retries=False)

    def retries(self) -> list[JobRecord]:
        return self._waiting(retries=True)

    def dead(self) -> list[JobRecord]:
        """RQ's failed-job registries: jobs whose last attempt failed, most recent first."""
        from rq.registry import FailedJobRegistry

        entries: list[tuple[float, str]] = []
        for queue in self._queues.values():
            key = FailedJobRegistry(queue.name, connection=self.connection).key
            entries += [(score, raw.decode()) for raw, score in self.connection.zrange(key, 0, -1, withscores=True)]
        ids = [job_id for _, job_id in sorted(entries, reverse=True)]
        records = [self.record(found) for found in self._fetch(ids)]
        for record in records:  # RQ kept no count of the last failure, which sent it here
            record.retry_count = 0 if record.retry_count is None else record.retry_count + 1
        return records

    @property
    def events(self) -> list[Event]:
        return []

    @property
    def stats(self) -> Stats:
        processed, failed = self.connection.mget(self._stats_key("processed"), self._stats_key("failed"))
        return Stats(processed=int(processed or 0), failed=int(failed or 0))

    def _stats_key(self, what: str) -> str:
        return f"{self.prefix}-stats:{what}"

    def _count(self, what: str) -> None:
        self.connection.incr(self._stats_key(what))

    def reset(self) -> None:
        """Delete this prefix's queues, registries, jobs, results and counts; other prefixes are untouched."""
        from rq.defaults import RQ_KEY_PREFIX as RQ

        for pattern in (f"{RQ}:*:{self.prefix}-*", f"{self.prefix}-stats:*"):
            keys = list(self.connection.scan_iter(match=pattern, count=500))
            if keys:
                self.connection.delete(*keys)
        mine = f"{RQ}:queue:{self.prefix}-"
        ours = [m for m in self.connection.smembers(f"{RQ}:queues") if m.decode().startswith(mine)]
        if ours:
            self.connection.srem(f"{RQ}:queues", *ours)

    def close(self) -> None:
        self.connection.close()


def _bind(middleware: Callable[..., Any], record: JobRecord, call_next: Callable[[], Any]) -> Callable[[], Any]:
    return lambda: middleware(record, call_next)


def _guarded(handler: Callable[..., Any], *args: Any) -> None:
    """A broken handler must not hide the job's own error: print it and go on."""
    try:
        handler(*args)
    except Exception as exc:
        print(f"shop worker: handler {handler!r} raised {type(exc).__name__}: {exc}", file=sys.stderr)


def _number(name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, not {text!r}") from None


def _timestamp(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _redact(url: str) -> str:
    return re.sub(r"://([^:@/]*):[^@/]*@", r"://\1:***@", url)


# -- process-wide wiring --------------------------------------------------------------------------------
_engine: RedisQueues | None = None


def shop_engine(settings: Settings) -> RedisQueues:
    """The engine of this process, with the shop installed: its hooks, its jobs, its clients and database."""
    global _engine
    from scenarios.shop import db
    from scenarios.shop.middleware import install

    if _engine is None:
        engine = RedisQueues.connect(settings)
        install(engine, None, clock=engine.clock, base_url=settings.services_url)  # type: ignore[arg-type]
        db.configure_database(settings.database_url)
        # A forked work horse must open its own connections, not share the parent's pooled ones.
        db.dispose()
        _engine = engine
    return _engine


def perform(job_name: str, *args: Any) -> Any:
    """The function RQ runs for every shop job. A worker started another way (`rq worker`) is wired
    from the environment on its first job."""
    from rq import get_current_job

    engine = _engine if _engine is not None else shop_engine(Settings.from_env())
    return engine.perform(job_name, list(args), get_current_job())


def work(settings: Settings, *, burst: bool = False, logging_level: str = "INFO") -> bool:
    """Run RQ's forking worker (and its scheduler, which releases due retries) on the shop's queues.

    SIGTERM or SIGINT asks for a warm shutdown: the running job finishes, then the worker exits.
    """
    from harness.engines.workers import rq_worker_class
    from scenarios.shop.monitoring import QUEUES

    engine = shop_engine(settings)
    queues = [engine._queue(name) for name in QUEUES]  # strict priority: `high` is always read first
    for name in {job.options.queue for job in engine._jobs.values()} - set(QUEUES):
        queues.append(engine._queue(name))
    worker = rq_worker_class()(
        queues, connection=engine.connection, name=f"{settings.queue_prefix}-{uuid.uuid4().hex[:12]}")
    print(
        f"shop worker {worker.name}: queues {', '.join(q.name for q in queues)} on {_redact(settings.redis_url)}; "
        f"services at {settings.services_url}; database {_redact(settings.database_url)}",
        flush=True,
    )
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level=logging_level))


def enqueue_order(
    settings: Settings,
    *,
    stage: str = "idempotent",
    email: str = "pat@example.com",
    price_cents: int = 4200,
    quantity: int = 1,
) -> dict[str, Any]:
    """Create a customer, a product and an order, then enqueue the order's completion job of `stage`.

    Returns the order id and the job's name and id. A price of 9999 cents is declined by payments.
    """
    from scenarios.shop import jobs_idempotent, jobs_naive, jobs_split
    from scenarios.shop.orders import create_order, create_product, create_user

    stages = {"naive": jobs_naive, "split": jobs_split, "idempotent": jobs_idempotent}
    if stage not in stages:
        raise ConfigurationError(f"stage must be one of {', '.join(stages)}, not {stage!r}")
    engine = shop_engine(settings)
    job = stages[stage].complete_order
    with engine.activate(), _capture_enqueue(engine) as pushed:
        order_id = create_order(create_user(email=email), create_product(price_cents=price_cents), quantity,
                                complete_with=job)
    return {"order_id": order_id, "job": job.name, "job_id": pushed[0] if pushed else None}


@contextmanager
def _capture_enqueue(engine: RedisQueues) -> Iterator[list[str]]:
    """Collect the ids of the jobs pushed inside the block (a client middleware, removed afterwards)."""
    pushed: list[str] = []

    def note(record: JobRecord, call_next: Callable[[], str | None]) -> str | None:
        job_id = call_next()
        if job_id is not None:
            pushed.append(job_id)
        return job_id

    engine.hooks.client_middleware.append(note)
    try:
        yield pushed
    finally:
        with suppress(ValueError):
            engine.hooks.client_middleware.remove(note)


# -- the command line -----------------------------------------------------------------------------------
COMMANDS = ("work", "enqueue-order", "stats")


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--engine", choices=["rq"], default="rq", help="the job engine (RQ's forking worker)")
    common.add_argument("--redis-url", help=f"Redis ($REDIS_URL, default {DEFAULT_REDIS_URL})")
    common.add_argument("--services-url", help=f"fake services ($HARNESS_SERVICES_URL, default {DEFAULT_SERVICES_URL})")
    common.add_argument("--database-url", help="the shop's database ($DATABASE_URL, default a SQLite file in /tmp)")
    common.add_argument("--queue-prefix", help="names the queues and job ids ($SHOP_QUEUE_PREFIX, default shop)")
    common.add_argument("--retry-delay-scale", type=float, help="times Sidekiq's delays ($SHOP_RETRY_DELAY_SCALE)")
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.shop.worker",
        description="The example shop's jobs on a real RQ worker. Without a command: work.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    # No abbreviated options: a command line in a compose file or a script should say what it means.
    shared: dict[str, Any] = {"parents": [common], "allow_abbrev": False}
    worker = sub.add_parser("work", **shared, help="run the worker until SIGTERM or SIGINT (the default)")
    worker.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    worker.add_argument("--log-level", default="INFO", help="RQ's logging level (default INFO)")
    order = sub.add_parser("enqueue-order", **shared, help="place an order and enqueue its completion job")
    order.add_argument("--stage", choices=["naive", "split", "idempotent"], default="idempotent",
                       help="which completion job (default idempotent)")
    order.add_argument("--email", default="pat@example.com", help="the customer's address")
    order.add_argument("--price-cents", type=int, default=4200, help="the product's price (9999 is declined)")
    order.add_argument("--quantity", type=int, default=1)
    sub.add_parser("stats", **shared, help="print the queues, retries and dead jobs as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*COMMANDS, "-h", "--help"):
        argv.insert(0, "work")
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env(
            redis_url=args.redis_url,
            services_url=args.services_url,
            database_url=args.database_url,
            queue_prefix=args.queue_prefix,
            retry_delay_scale=args.retry_delay_scale,
        )
        if args.command == "work":
            work(settings, burst=args.burst, logging_level=args.log_level)
        elif args.command == "enqueue-order":
            placed = enqueue_order(settings, stage=args.stage, email=args.email, price_cents=args.price_cents,
                                   quantity=args.quantity)
            print(json.dumps(placed))
        else:
            from scenarios.shop.monitoring import stats

            print(json.dumps(stats(shop_engine(settings)), sort_keys=True))
    except (ConfigurationError, EngineUnavailable) as exc:
        print(f"shop worker: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    # Run the importable module's main, not this `__main__` copy: RQ's work horse imports
    # `scenarios.shop.worker.perform`, which must see the engine that main() wires.
    from scenarios.shop.worker import main as _main

    sys.exit(_main())
