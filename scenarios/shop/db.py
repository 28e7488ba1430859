"""The shop's database: products, users and orders, through SQLAlchemy Core.

SQLite in a temporary file by default, PostgreSQL when `DATABASE_URL` names one. The engine is
process state (a pool of open connections): `dispose()` drops it as a dying process would, while the
data stays in the database, and `reset_data()` empties the tables cheaply between exploration runs.
"""

from __future__ import annotations

import os
import tempfile
import threading
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    text,
)

from harness.databases import SQLAlchemyState

__all__ = [
    "STATE",
    "configure_database",
    "database",
    "database_beside",
    "database_url",
    "dispose",
    "isolate_worker",
    "metadata",
    "orders",
    "products",
    "reset_data",
    "snapshot",
    "users",
]

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("price_cents", Integer, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("email", String(200), nullable=False),
    Column("payment_method_id", String(100), nullable=False),
    Column("address", String(500), nullable=False),
)

# One row per order; every column after `created_at` records something a job did, so the row can be
# compared with what the fake services saw. Times are the shop clock's epoch seconds.
orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("amount_cents", Integer, nullable=False),
    Column("address", String(500), nullable=False),
    Column("email", String(200), nullable=False),
    Column("payment_method_id", String(100), nullable=False),
    Column("status", String(20), nullable=False, default="pending"),
    Column("created_at", Float, nullable=False),
    Column("charge_id", String(50)),
    Column("charged_at", Float),
    Column("decline_reason", String(200)),
    Column("email_id", String(50)),
    Column("emailed_at", Float),
    Column("fulfillment_request_id", String(50)),
    Column("fulfilled_at", Float),
    Column("announced_at", Float),
)

_lock = threading.Lock()
_url: str | None = None
_engine: Engine | None = None
_tables_ready: set[str] = set()


def database_url() -> str:
    """The URL in use: the configured one, else `DATABASE_URL`, else a SQLite file in a temp dir."""
    global _url
    with _lock:
        if _url is None:
            _url = os.environ.get("DATABASE_URL") or _default_sqlite_url()
        return _url


def _default_sqlite_url() -> str:
    directory = tempfile.mkdtemp(prefix="shop-db-")
    return f"sqlite:///{os.path.join(directory, 'shop.sqlite3')}"


def configure_database(url: str | None = None) -> Engine:
    """Point the shop at `url` (None: `DATABASE_URL` or a fresh SQLite file) and create the tables."""
    global _url, _engine
    with _lock:
        engine, _engine = _engine, None
        _url = url or os.environ.get("DATABASE_URL") or _default_sqlite_url()
    if engine is not None:
        engine.dispose()
    return database()


def database() -> Engine:
    """The shop's SQLAlchemy engine, built on first use (again after `dispose()`)."""
    global _engine
    url = database_url()
    with _lock:
        if _engine is None:
            _engine = _build_engine(url)
        if url not in _tables_ready:
            _prepare(_engine)
            _tables_ready.add(url)
        return _engine


def _prepare(engine: Engine) -> None:
    """Create the tables; a SQLite file is also put in WAL mode, which the file keeps.

    Set once here, not on each connection: the shop opens a connection after every crash the explorer
    injects, and asking for a journal mode on each cost more than opening the connection did. A commit
    appends to the log instead of rewriting pages, as in most SQLite deployments.
    """
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
    metadata.create_all(engine)


def _build_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # The file is a test database: durability buys nothing and fsync costs most of a commit.
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _no_fsync_wait(dbapi_connection: Any, _record: Any) -> None:
        # Losing the last commits in a server crash is harmless for an example shop's test data.
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
        dbapi_connection.commit()

    return engine


def dispose() -> None:
    """Close every pooled connection (rolling back what they hold), as a fresh process would.

    The engine object stays: what a new process would rebuild besides its connections is SQLAlchemy's
    cache of compiled statements, which holds no data, and compiling every statement again after each
    injected crash cost the explorer a third of its time.
    """
    with _lock:
        engine = _engine
    if engine is not None:
        engine.dispose()


def isolate_worker(worker: int) -> None:
    """Give a worker process of a parallel exploration a database of its own: a fresh SQLite file, or on
    PostgreSQL a database named after the configured one and the worker (created when missing)."""
    global _engine
    # The engine came with the fork: its connections are the parent's, to be forgotten, never closed here.
    with _lock:
        inherited, _engine = _engine, None
    if inherited is not None:
        inherited.dispose(close=False)
    url = database_url()
    if url.startswith("sqlite"):
        configure_database(_default_sqlite_url())
        return
    configure_database(database_beside(url, f"worker{worker}"))


def database_beside(url: str, suffix: str) -> str:
    """The URL of the PostgreSQL database named after `url`'s and `suffix` (`test_worker1`), on the same
    server; the database is created when missing."""
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_{suffix}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if conn.execute(text("select 1 from pg_database where datname = :n"), {"n": name}).first() is None:
                conn.execute(text(f'create database "{name}"'))
    finally:
        admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def unreachable(url: str) -> str | None:
    """None when a connection to `url` works, else the reason it does not (for skips and CI errors)."""
    probe = create_engine(url, connect_args={"connect_timeout": 2} if url.startswith("postgresql") else {})
    try:
        with probe.connect() as conn:
            conn.execute(text("select 1"))
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        probe.dispose()
    return None


def reset_data() -> None:
    """Empty the tables and restart their ids at 1, so every run names the same order ids."""
    engine = database()
    with engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            conn.execute(table.delete())
        # Without AUTOINCREMENT, SQLite hands out max(rowid) + 1, so an empty table starts at 1 again.
        # PostgreSQL's sequences must be told; DELETE and RESTART cost a third of a TRUNCATE here.
        if engine.dialect.name == "postgresql":
            for table in metadata.sorted_tables:
                conn.execute(text(f"ALTER SEQUENCE {table.name}_id_seq RESTART"))


def snapshot() -> tuple[tuple[tuple[Any, ...], ...], ...]:
    """Every row of every table, in id order: what the database would hand a job that starts now.

    The explorer compares snapshots to see that two crash points leave the same state behind (then
    it needs to run only one of them), so nothing is left out, timestamps included.
    """
    with database().connect() as conn:
        return tuple(
            tuple(tuple(row) for row in conn.execute(table.select().order_by(table.c.id)))
            for table in metadata.sorted_tables
        )


#: The shop's database as the explorer sees it: every row, read again only after a commit (its scenarios'
#: fingerprint, and what the invariants read), and a setup restored from a copy after its first run.
STATE = SQLAlchemyState(database, tables=metadata)
