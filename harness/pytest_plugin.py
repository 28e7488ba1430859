"""The harness's pytest plugin: fixtures, options and a marker. Loading it imports no job engine, no web
framework and no Hypothesis; fixtures import what they need when a test asks for them.

Fixtures: `harness` (explore scenarios or bare jobs, routing checks, real workers), `harness_world`
(clock, fake services, engine, in-process http client), `fake_services` (the in-process services, fresh
per test), `fake_services_url` (the services on a loopback socket, or `--harness-services-url`),
`fake_services_handle` (per-service handles on those: behaviours, fault rules, journal),
`harness_redis_url`, `harness_engine_name`, `harness_seed`. A fault rule scheduled through any of them
that is still armed and never struck a call fails the test at teardown: it tested nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from fake_services import FakeServices
    from fake_services.handles import ServicesHandle
    from harness.engines.base import Job
    from harness.explore.report import Report
    from harness.explore.scenario import Scenario
    from harness.world import World

ENGINE_OPTION = "--harness-engine"
SEED_OPTION = "--harness-seed"
SERVICES_URL_OPTION = "--harness-services-url"
REDIS_URL_OPTION = "--harness-redis-url"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
ENGINES = ("sim", "dramatiq", "rq", "celery")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "retry-safety harness")
    group.addoption(
        ENGINE_OPTION,
        action="store",
        default=None,
        choices=ENGINES,
        help="engine backend for harness fixtures and scenarios (default: sim)",
    )
    group.addoption(
        SEED_OPTION,
        action="store",
        type=int,
        default=None,
        help="seed for every random choice of the harness (default: 0)",
    )
    group.addoption(
        SERVICES_URL_OPTION,
        action="store",
        default=None,
        help="use fake services already running there (e.g. from compose) instead of starting them",
    )
    group.addoption(
        REDIS_URL_OPTION,
        action="store",
        default=None,
        help="Redis for real-worker engine tests (default: $REDIS_URL or redis://127.0.0.1:6379/0)",
    )


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' own plugin loads the profile it was asked for
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "harness(engine=None, seed=None, depth=None, examples=None): configure the harness fixtures for one test",
    )
    _check_urls(config)
    asked = _option(config, "hypothesis_profile")
    if "hypothesis" in sys.modules or (isinstance(asked, str) and asked.startswith(PROFILE_PREFIX)):
        register_hypothesis_profiles()


def _check_urls(config: pytest.Config) -> None:
    """Refuse a malformed URL option before any test runs, naming the option."""
    services = config.getoption(SERVICES_URL_OPTION)
    if services and not services.startswith(("http://", "https://")):
        raise pytest.UsageError(f"{SERVICES_URL_OPTION}={services!r}: give an http:// URL, e.g. http://localhost:8000")
    redis_url = config.getoption(REDIS_URL_OPTION)
    if redis_url and not redis_url.startswith(("redis://", "rediss://", "unix://")):
        raise pytest.UsageError(f"{REDIS_URL_OPTION}={redis_url!r}: give a redis:// URL, e.g. {DEFAULT_REDIS_URL}")


def _option(config: pytest.Config, name: str) -> Any:
    try:
        return config.getoption(name)
    except ValueError:  # that plugin is not loaded
        return None


PROFILE_PREFIX = "harness-"


def register_hypothesis_profiles() -> None:
    """Register the Hypothesis profiles that suit exploration: `harness-ci` (derandomized, no deadline, no
    example database, failing examples printed as blobs) and `harness-dev`. The plugin calls it when
    Hypothesis is loaded or `--hypothesis-profile=harness-...` is given; a conftest that loads a profile
    at import time calls it first. Loading the plugin alone imports no Hypothesis."""
    from hypothesis import HealthCheck, settings

    settings.register_profile(
        f"{PROFILE_PREFIX}ci",
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.register_profile(
        f"{PROFILE_PREFIX}dev", deadline=None, suppress_health_check=[HealthCheck.too_slow]
    )


@dataclass(frozen=True, kw_only=True)
class HarnessOptions:
    """What a test may set with `@pytest.mark.harness(...)`; a misspelt name fails the test."""

    engine: str | None = None
    seed: int | None = None
    depth: int | None = None
    examples: int | None = None

    def __post_init__(self) -> None:
        if self.engine is not None and self.engine not in ENGINES:
            raise pytest.UsageError(f"@pytest.mark.harness(engine={self.engine!r}): choose one of {', '.join(ENGINES)}")
        if self.depth is not None and self.depth not in (0, 1, 2):
            raise pytest.UsageError(f"@pytest.mark.harness(depth={self.depth!r}): depth is 0, 1 or 2")


def _options(request: pytest.FixtureRequest) -> HarnessOptions:
    merged: dict[str, Any] = {}
    for marker in reversed(list(request.node.iter_markers("harness"))):
        if marker.args:
            raise pytest.UsageError("@pytest.mark.harness takes keyword arguments only, e.g. engine='rq'")
        merged.update(marker.kwargs)
    try:
        return HarnessOptions(**merged)
    except TypeError as exc:
        known = ", ".join(HarnessOptions.__dataclass_fields__)
        raise pytest.UsageError(f"@pytest.mark.harness: {exc}; known arguments: {known}") from None


def _engine_name(request: pytest.FixtureRequest) -> str:
    return _options(request).engine or request.config.getoption(ENGINE_OPTION) or "sim"


def _seed(request: pytest.FixtureRequest) -> int:
    marked = _options(request).seed
    if marked is not None:
        return marked
    option = request.config.getoption(SEED_OPTION)
    return 0 if option is None else int(option)


@pytest.fixture
def harness_engine_name(request: pytest.FixtureRequest) -> str:
    """The engine chosen for this test: marker, then `--harness-engine`, then `sim`."""
    return _engine_name(request)


@pytest.fixture
def harness_seed(request: pytest.FixtureRequest) -> int:
    """The seed for this test: marker, then `--harness-seed`, then 0."""
    return _seed(request)


@dataclass
class Harness:
    """The `harness` fixture: explores scenarios with this test's engine and seed.

    `harness.explore(scenario)` returns a `Report`; `report.assert_safe()` fails the test with the
    stories of the violating plans. Faults scheduled through `harness.schedule(...)` on `harness.world`
    that never fired fail the test at teardown.
    """

    engine: str
    seed: int
    depth: int = 1
    examples: int = 0
    reports: list[Report] = field(default_factory=list)
    _worlds: list[World] = field(default_factory=list)
    _scheduled: list[tuple[str, str, World]] = field(default_factory=list)
    _closers: list[Any] = field(default_factory=list)
    config: pytest.Config | None = None

    def explore(
        self,
        target: Scenario | Job | Any,
        args: Sequence[Any] | None = None,
        *,
        invariants: Sequence[Any] = (),
        configure: Any = None,
        targets: Sequence[str] = (),
        depth: int | None = None,
        examples: int | None = None,
        routing: bool = False,
        engine: str | None = None,
        enqueue_options: Mapping[str, Any] | None = None,
    ) -> Report:
        """Explore a `Scenario`, or a bare job run with `args` (plus `invariants`, `configure(world)` to
        point its clients at the world's services, `targets`, the modules whose lines are crash points, and
        `enqueue_options`, the engine options production code enqueues it with). The job may be a
        `@harness.job`, a Dramatiq actor or a Celery task (each explored on its own engine unless `engine=`
        says otherwise), or a plain function when the engine is `rq` (`engine="rq"` or `--harness-engine rq`).
        """
        from harness.engines._native import choose_engine
        from harness.errors import ConfigurationError
        from harness.explore import explore

        scenario = _as_scenario(
            target, args, invariants=invariants, configure=configure, targets=targets, enqueue_options=enqueue_options
        )
        try:
            chosen = choose_engine(scenario.job, engine, default=self.engine)
        except ConfigurationError as exc:
            raise pytest.UsageError(f"harness.explore: {exc}") from None
        report = explore(
            scenario,
            engine=chosen,
            seed=self.seed,
            depth=self.depth if depth is None else depth,
            examples=self.examples if examples is None else examples,
            routing=routing,
            progress=_progress_lines(self.config, scenario.name),
        )
        self.reports.append(report)
        return report

    def routing(self, target: Scenario | Job, args: Sequence[Any] | None = None, **options: Any) -> Report:
        """Only the routing checks (no line or call exploration): was each kind of failure retried,
        reported, sent to the dead set as the declared policy says? `report.routing` holds the matrix and
        `report.assert_safe()` fails on a row that broke the policy."""
        return self.explore(target, args, depth=0, routing=True, **options)

    def real_worker(self, engine: str, **settings: Any) -> Any:
        """A `RealWorker` of `engine` (rq, dramatiq, celery) on the Redis of `--harness-redis-url`: a
        real worker process the test can SIGKILL mid-job (`kill_mid_job()`), closed at teardown. The
        worker flushes that Redis database when it closes: point the option at a database of its own.
        Skips the test when no Redis answers there."""
        from harness.engines.workers import RealWorker

        worker = RealWorker(engine, _redis_url(self.config), **settings)
        self._closers.append(worker.close)
        return worker

    def world(self) -> World:
        """A fresh world (clock, services, engine, http client) for hand-written checks."""
        from harness.world import World

        built = World.build(self.engine, seed=self.seed)
        self._worlds.append(built)
        return built

    def schedule(self, world: World, service: str, rule: Any) -> Any:
        """Schedule a fault rule on `world`'s services and expect it to strike before the test ends."""
        rule_id = world.services.schedule(service, rule)
        self._scheduled.append((service, rule_id, world))
        return rule_id

    def _check_and_close(self) -> None:
        __tracebackhide__ = True
        unfired = []
        for service, rule_id, world in self._scheduled:
            armed = {r["id"]: r for r in world.services.faults(service)}
            if rule_id in armed and armed[rule_id]["fired"] == 0:
                unfired.append(_describe_rule(service, armed[rule_id]))
        for world in self._worlds:
            world.close()
        for close in reversed(self._closers):
            close()
        if unfired:
            _fail_unfired(unfired)


def _as_scenario(target: Scenario | Job | Any, args: Sequence[Any] | None, *, invariants: Sequence[Any],
                 configure: Any, targets: Sequence[str], enqueue_options: Mapping[str, Any] | None) -> Scenario:
    from harness.errors import ConfigurationError
    from harness.explore.explorer import scenario_for

    try:
        return scenario_for(target, args, invariants=invariants, configure=configure, targets=targets,
                            enqueue_options=enqueue_options)
    except ConfigurationError as exc:
        raise pytest.UsageError(f"harness.explore: {exc}") from None


def _progress_lines(config: pytest.Config | None, label: str) -> Any:
    """Progress of a long exploration as lines in pytest's output (written past capture, as pytest's own
    reports are), so a CI log shows a test that explores for minutes is still at work."""
    reporter = config.pluginmanager.get_plugin("terminalreporter") if config is not None else None
    if reporter is None or config is None:
        return None
    capture = config.pluginmanager.get_plugin("capturemanager")
    from contextlib import nullcontext

    from harness.explore.progress import ProgressLine

    def write_line(text: str) -> None:
        # A test's output is captured at the file descriptor; pytest's live logging steps past it the same way.
        with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
            reporter.ensure_newline()
            reporter.write_line(f"harness: {text}")

    return ProgressLine(label, write_line=write_line)


def _describe_rule(service: str, rule: dict[str, Any]) -> str:
    shown = {k: v for k, v in rule.items()
             if v is not None and k not in ("id", "seen", "fired", "seed", "opens", "closes")
             and not (k == "after_s" and v == 0)}
    fields = ", ".join(f"{k}={v!r}" for k, v in shown.items())
    return f"{service} rule {rule['id']} ({fields}; saw {rule['seen']} calls)"


def _fail_unfired(unfired: list[str]) -> None:
    __tracebackhide__ = True
    pytest.fail(
        "these scheduled faults never fired, so the test did not exercise what it meant to: "
        + "; ".join(unfired)
        + ". Make the job call the service, or drop the rule.",
        pytrace=False,
    )


@pytest.fixture
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    """Explore scenarios and check safety with this test's engine and seed."""
    options = _options(request)
    fixture = Harness(
        engine=_engine_name(request),
        seed=_seed(request),
        depth=options.depth if options.depth is not None else 1,
        examples=options.examples or 0,
        config=request.config,
    )
    yield fixture
    fixture._check_and_close()


def _redis_url(config: pytest.Config | None) -> str:
    """`--harness-redis-url`, else `$REDIS_URL`, else the local default; skips when nothing answers."""
    __tracebackhide__ = True
    option = config.getoption(REDIS_URL_OPTION) if config is not None else None
    url = option or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    from harness.engines.workers import redis_available

    if not redis_available(url):
        pytest.skip(f"no Redis answers at {url} (set {REDIS_URL_OPTION} or $REDIS_URL)")
    return url


@pytest.fixture
def harness_redis_url(request: pytest.FixtureRequest) -> str:
    """The Redis for tests of real workers: `--harness-redis-url`, else `$REDIS_URL`, else
    redis://127.0.0.1:6379/0; the test skips with the reason when no Redis answers there."""
    return _redis_url(request.config)


@pytest.fixture
def harness_world(request: pytest.FixtureRequest) -> Iterator[World]:
    """A world for this test: virtual clock, in-process fake services, the chosen engine, http client."""
    from harness.world import World

    world = World.build(_engine_name(request), seed=_seed(request))
    try:
        yield world
        unfired = _unfired_in_process(world.services)
    finally:
        world.close()
    if unfired:
        _fail_unfired(unfired)


@pytest.fixture
def fake_services(request: pytest.FixtureRequest) -> Iterator[FakeServices]:
    """The fake services in-process, fresh for this test (seeded: ids are deterministic). A fault rule
    scheduled on them that is still armed at the end and never struck a call fails the test."""
    from fake_services import FakeServices

    services = FakeServices(seed=_seed(request))
    yield services
    unfired = _unfired_in_process(services)
    if unfired:
        _fail_unfired(unfired)


def _unfired_in_process(services: FakeServices) -> list[str]:
    from fake_services.state import SERVICE_NAMES

    return [_describe_rule(name, rule) for name in SERVICE_NAMES for rule in services.faults(name)
            if rule["fired"] == 0]


@pytest.fixture(scope="session")
def _harness_services_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    url = request.config.getoption(SERVICES_URL_OPTION) or os.environ.get("HARNESS_SERVICES_URL")
    if url:
        yield url.rstrip("/"), None
        return
    from fake_services import FakeServices
    from fake_services.testing import serve_in_thread

    services = FakeServices(seed=0)
    with serve_in_thread(services) as base_url:
        yield base_url, services


@pytest.fixture
def fake_services_url(_harness_services_server: tuple[str, Any]) -> str:
    """Base URL of fake services on a socket, reset before this test: started on a free loopback port
    in a background thread, or the `--harness-services-url` ones (reset over HTTP)."""
    url, services = _harness_services_server
    if services is not None:
        services.reset()
    else:
        import httpx

        try:
            httpx.post(f"{url}/reset", timeout=10).raise_for_status()
        except httpx.HTTPError as exc:
            if isinstance(exc, httpx.HTTPStatusError):
                why: object = f"{exc.response.status_code} {exc.response.reason_phrase}"
            else:
                why = exc
            pytest.fail(
                f"--harness-services-url {url}: the fake services do not answer there ({why}); start them with "
                "`harness serve` (or `docker compose up`), or drop the option to run them in-process",
                pytrace=False,
            )
    return url


@pytest.fixture
def fake_services_handle(fake_services_url: str) -> Iterator[ServicesHandle]:
    """Per-service handles on the socket services of `fake_services_url` (or `--harness-services-url`):
    `fake_services_handle.payments.behave(crash=True)`, `.email.schedule(FaultRule(...))`,
    `.payments.effects("charge")`. A rule scheduled here that never struck a call fails the test."""
    from fake_services.handles import ServicesHandle

    handle = ServicesHandle.remote(fake_services_url)
    try:
        yield handle
        unfired = [_describe_rule(service, rule) for service, rules in handle.unfired().items() for rule in rules]
    finally:
        handle.close()
    if unfired:
        _fail_unfired(unfired)
