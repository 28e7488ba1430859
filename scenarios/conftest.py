"""Shared fixtures of the scenario suite: the engine chosen with `--harness-engine` (default `sim`) and
explorations cached per engine, so each lesson reads the report it needs without exploring twice."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.explore import Report, Scenario, explore
from harness.world import World


@pytest.fixture(scope="session")
def engine_name(request: pytest.FixtureRequest) -> str:
    return request.config.getoption("--harness-engine") or "sim"


@pytest.fixture(scope="session")
def explored(engine_name: str) -> Any:
    """`explored(scenario, **options)`: the report of that exploration on this run's engine, cached."""
    cache: dict[tuple[str, tuple[tuple[str, Any], ...]], Report] = {}

    def get(scenario: Scenario, **options: Any) -> Report:
        key = (scenario.name, tuple(sorted(options.items())))
        if key not in cache:
            cache[key] = explore(scenario, engine=engine_name, **options)
        return cache[key]

    return get


@pytest.fixture(scope="session")
def real_redis() -> Any:
    """`real_redis(db, lesson)`: the URL of that database of the Redis on loopback, for the cases that
    start engines' own workers. Without a Redis the case skips, saying which lesson needed it; on CI
    (`CI` set) it fails instead."""
    import os

    from harness.engines.workers import redis_available

    def url(db: int, lesson: str) -> str:
        found = f"redis://127.0.0.1:6379/{db}"
        if not redis_available(found):
            if os.environ.get("CI"):
                raise RuntimeError(f"Redis is not reachable at {found} and CI is set")
            pytest.skip(f"no Redis at {found}: {lesson} needs real workers on a real Redis")
        return found

    return url


@pytest.fixture
def shop_world(engine_name: str) -> Iterator[World]:
    """A world with the shop installed: its hooks on the engine, its clients on the services."""
    from scenarios.shop.middleware import configure
    from scenarios.shop.monitoring import QUEUES

    # sim and RQ take the worker's queue order (`rq worker high default`); see the queues lesson for
    # what Dramatiq and Celery do instead.
    options: dict[str, Any] = {"queues": QUEUES} if engine_name in ("sim", "rq") else {}
    world = World.build(engine_name, seed=0, **options)
    configure(world)
    try:
        yield world
    finally:
        world.close()
