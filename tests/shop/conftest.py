"""Fixtures for the example shop's tests: its database (SQLite, and PostgreSQL when reachable) and a
world on the reference engine with the fake services in-process, the shop installed on both."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness.world import World
from scenarios.shop.db import database_beside, unreachable

#: The local server's test database; `DATABASE_URL` overrides it (CI points it at its own service).
LOCAL_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def postgres_url() -> str:
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith("postgresql") else LOCAL_POSTGRES_URL


def _per_xdist_worker(url: str) -> str:
    """Under pytest-xdist, a database of this worker's own next to `url`'s: two workers emptying and
    filling the same tables at once fail each other's tests."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return database_beside(url, worker) if worker else url


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
)
def shop_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('shop') / 'shop.sqlite3'}"
    url = postgres_url()
    reason = unreachable(url)
    if reason is not None:
        if os.environ.get("CI"):
            raise RuntimeError(f"PostgreSQL at {url} is unreachable on CI: {reason}")
        pytest.skip(f"PostgreSQL at {url} is unreachable ({reason}); start it or set DATABASE_URL")
    return _per_xdist_worker(url)


@pytest.fixture
def shop_db(shop_database_url: str) -> Iterator[str]:
    """The shop pointed at an empty database; yields the URL."""
    from scenarios.shop import db

    db.configure_database(shop_database_url)
    db.reset_data()
    yield shop_database_url
    db.dispose()


@pytest.fixture
def world(shop_db: str) -> Iterator[World]:
    """A world on the sim engine, serving the shop's queues by priority, with the shop installed."""
    from scenarios.shop.middleware import configure
    from scenarios.shop.monitoring import QUEUES

    built = World.build("sim", seed=0, queues=list(QUEUES))
    configure(built)
    with built.engine.activate():
        yield built
    built.close()
