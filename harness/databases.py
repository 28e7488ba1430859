"""The app's own database, as the explorer needs to see it: a fingerprint, a reset, a setup restored fast.

`SQLAlchemyState(engine)` gives a scenario, for any SQLAlchemy engine (SQLite, PostgreSQL, ...), and
`DjangoState()` for a Django project's database (its models' tables, through Django's connection):

- `fingerprint(world)`: every row of every table, by primary key, so the explorer can tell that two crash
  points leave the same database behind. It is read again only when the database changed: SQLite's
  `data_version` says when any connection (or process) committed; on other databases the engine's own
  commits and writes say so. Reading every row at every line point is what makes an exploration slow.
  On SQLite the rows are read on the state's own connection, through the engine's result processors.
- `reset()`: what a dying process drops: the scoped sessions it was given (rolled back and removed) and
  the engine's pooled connections (closed, rolling back what they hold). The data stays.
- `replaying(setup)`: a scenario's setup that only writes the database runs once; later runs restore the
  database it left (SQLite: a page copy with the backup API; others: the rows, in one transaction) and
  return the same arguments.

```python
state = SQLAlchemyState(lambda: app.db.engine, tables=app.db.metadata)
Scenario(..., fingerprint=state.fingerprint, reset=state.reset, setup=state.replaying(place_order))
```

SQLAlchemy and Django are imported only when a state is built.
"""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from harness.errors import ConfigurationError

__all__ = ["DjangoState", "SQLAlchemyState"]

#: Every state, so that a forked worker process can let go of the connections it inherited.
_STATES: weakref.WeakSet[SQLAlchemyState] = weakref.WeakSet()
#: Inherited connections are kept, never closed: closing a SQLite connection a parent opened is unsafe.
_INHERITED: list[sqlite3.Connection] = []

_READS = ("SELECT", "PRAGMA", "SHOW", "EXPLAIN", "SET", "BEGIN", "SAVEPOINT", "RELEASE")


class SQLAlchemyState:
    """Fingerprint, reset and setup replay for the database behind a SQLAlchemy engine.

    `engine`: an `Engine`, or a function returning the one the app uses now (an app that builds its
    engine lazily). `tables`: a `MetaData` or tables to read (default: every table, reflected once).
    `sessions`: `scoped_session`s to roll back and remove on `reset()`. `cache=False` reads every row
    at every fingerprint (for writers the state cannot see: another engine, raw DB-API connections on a
    database other than SQLite).
    """

    def __init__(
        self,
        engine: Any,
        *,
        tables: Any = None,
        sessions: Sequence[Any] = (),
        cache: bool = True,
    ) -> None:
        try:
            import sqlalchemy  # noqa: F401 (fail early, with the install hint)
        except ImportError as exc:
            raise ConfigurationError(f"SQLAlchemyState needs SQLAlchemy ({exc}); pip install sqlalchemy") from None
        self._engine_of: Callable[[], Any] = engine if callable(engine) and not _is_engine(engine) else lambda: engine
        self._tables_given = tables
        self._sessions = list(sessions)
        self._cache = cache
        self._watched: Any = None
        self._watch: sqlite3.Connection | None = None
        self._version: int | None = None
        self._dirty = True
        self._cached: tuple[Any, ...] | None = None
        self._tables: list[Any] | None = None
        self._sqlite_reads: list[tuple[str, list[Any]]] | None = None
        self._recorded: dict[int, tuple[Any, Any]] = {}
        #: How many fingerprints read the database (the rest came from the cache), for benchmarks and tests.
        self.reads = 0
        _STATES.add(self)

    def _forget_inherited(self) -> None:
        if self._watch is not None:
            _INHERITED.append(self._watch)
        self._watch = None
        self._watched = None
        self._dirty = True

    # -- the engine and what changes it -----------------------------------------------------------
    def _engine(self) -> Any:
        engine = self._engine_of()
        if not _is_engine(engine):
            raise ConfigurationError(f"SQLAlchemyState needs a SQLAlchemy Engine, got {type(engine).__name__}")
        if engine is not self._watched:
            self._watch_engine(engine)
        return engine

    def _watch_engine(self, engine: Any) -> None:
        from sqlalchemy import event

        if self._watch is not None:
            self._watch.close()
            self._watch = None
        self._watched = engine
        self._dirty = True
        self._tables = None
        self._sqlite_reads = None
        if engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            # A connection of our own: its data_version moves whenever any other connection commits.
            self._watch = sqlite3.connect(engine.url.database, check_same_thread=False)
            # Restores write through this connection: a test database's copy needs no fsync (it cost
            # nine tenths of a restore), and the app's own connections keep their settings.
            self._watch.execute("PRAGMA synchronous=OFF")
            self._version = self._data_version()
        else:
            event.listen(engine, "commit", self._changed)
            event.listen(engine, "after_cursor_execute", self._after_execute)

    def _changed(self, *args: Any) -> None:
        self._dirty = True

    def _after_execute(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # Writes in autocommit mode reach the database with no commit event.
        if not statement.lstrip().upper().startswith(_READS):
            self._dirty = True

    def _data_version(self) -> int:
        assert self._watch is not None
        return int(self._watch.execute("PRAGMA data_version").fetchone()[0])

    def _changed_since_read(self) -> bool:
        if not self._cache or self._dirty or self._cached is None:
            return True
        if self._watch is not None:
            return self._data_version() != self._version
        return False

    # -- fingerprint --------------------------------------------------------------------------------
    def tables(self) -> list[Any]:
        """The tables read, in dependency order."""
        engine = self._engine()
        if self._tables is None:
            from sqlalchemy import MetaData

            given = self._tables_given
            if given is None:
                reflected = MetaData()
                reflected.reflect(engine)
                self._tables = list(reflected.sorted_tables)
            elif isinstance(given, MetaData):
                self._tables = list(given.sorted_tables)
            else:
                self._tables = list(given)
        return self._tables

    def fingerprint(self, world: Any = None) -> Hashable:
        """Every row of every table, ordered by primary key; read again only after the database changed."""
        self._engine()
        if not self._changed_since_read():
            return self._cached
        if self._watch is not None:
            self._version = self._data_version()
        self._dirty = False
        self._cached = self._read()
        self.reads += 1
        return self._cached

    def rows(self, table: str) -> list[dict[str, Any]]:
        """The rows of one table as dicts, from the fingerprint (read again only after a change)."""
        snapshot = self.fingerprint()
        for known, rows in zip(self.tables(), snapshot, strict=True):  # type: ignore[call-overload]
            if known.name == table:
                names = [column.name for column in known.columns]
                return [dict(zip(names, row, strict=True)) for row in rows]
        raise ConfigurationError(f"no table {table!r}; the tables are {', '.join(t.name for t in self.tables())}")

    def _read(self) -> tuple[Any, ...]:
        if self._watch is not None:
            return self._read_sqlite(self._watch)
        engine = self._engine()
        with engine.connect() as conn:
            return tuple(
                tuple(tuple(row) for row in conn.execute(table.select().order_by(*_order(table))))
                for table in self.tables()
            )

    def _read_sqlite(self, watch: sqlite3.Connection) -> tuple[Any, ...]:
        """The same rows as `table.select()` through the engine, read on the state's own connection: the
        statements are compiled once and the values go through the engine's own result processors (a
        `Numeric` comes back a `Decimal`, a `DateTime` a `datetime`), without a pooled connection and
        SQLAlchemy's result objects, which cost most of a read."""
        reads = self._sqlite_reads
        if reads is None:
            engine = self._engine()
            dialect = engine.dialect
            reads = []
            for table in self.tables():
                statement = table.select().order_by(*_order(table))
                sql = str(statement.compile(dialect=dialect))
                processors = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                              for column in table.columns]
                reads.append((sql, processors))
            self._sqlite_reads = reads
        snapshot = []
        for sql, processors in reads:
            rows = watch.execute(sql).fetchall()
            if any(processors):
                rows = [tuple(value if convert is None else convert(value)
                              for convert, value in zip(processors, row, strict=True)) for row in rows]
            snapshot.append(tuple(rows))
        return tuple(snapshot)

    # -- reset --------------------------------------------------------------------------------------
    def reset(self) -> None:
        """Drop what a dying process holds: sessions (rolled back, removed) and pooled connections."""
        for session in self._sessions:
            remove = getattr(session, "remove", None)
            if remove is not None:
                remove()
            else:
                session.rollback()
                session.close()
        engine = self._engine_of()
        if _is_engine(engine):
            engine.dispose()
        self._dirty = True

    # -- setup replay -------------------------------------------------------------------------------
    def replaying(self, setup: Callable[[Any], Sequence[Any]]) -> Callable[[Any], list[Any]]:
        """`setup`, run once; later calls restore the database it left and return the same arguments.

        Only for a setup whose whole effect is on this database (and the arguments it returns): anything
        else it does (files, module state) is not repeated.
        """
        return _replaying(self, setup, lambda: id(self._engine()))

    def _capture(self) -> Any:
        if self._watch is not None:
            template = sqlite3.connect(":memory:", check_same_thread=False)
            self._watch.backup(template)
            return template
        engine = self._engine()
        with engine.connect() as conn:
            return [(table, [dict(row) for row in conn.execute(table.select()).mappings()]) for table in self.tables()]

    def _restore(self, saved: Any) -> None:
        if isinstance(saved, sqlite3.Connection):
            assert self._watch is not None
            saved.backup(self._watch)
        else:
            engine = self._engine()
            with engine.begin() as conn:
                for table, _ in reversed(saved):
                    conn.execute(table.delete())
                for table, rows in saved:
                    if rows:
                        conn.execute(table.insert(), rows)
                if engine.dialect.name == "postgresql":
                    _restart_sequences(conn, saved)
        self._dirty = True


def _after_fork_in_child() -> None:
    for state in list(_STATES):
        state._forget_inherited()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _is_engine(value: Any) -> bool:
    try:
        from sqlalchemy.engine import Engine
    except ImportError:  # pragma: no cover - checked in __init__
        return False
    return isinstance(value, Engine)


def _order(table: Any) -> list[Any]:
    keys = list(table.primary_key.columns)
    return keys or list(table.columns)


def _replaying(state: Any, setup: Callable[[Any], Sequence[Any]],
               key: Callable[[], Hashable]) -> Callable[[Any], list[Any]]:
    """`setup` run once per database (`key()` names it); later calls put back what `state._capture()` saw
    it leave (`state._restore`) and return copies of the same arguments."""

    def replayed(world: Any) -> list[Any]:
        recorded = state._recorded.get(key())
        if recorded is None:
            args = list(setup(world))
            state._recorded[key()] = (state._capture(), _frozen(args))
            return args
        saved, args = recorded
        state._restore(saved)
        return copy.deepcopy(args)

    replayed.__name__ = getattr(setup, "__name__", "setup")
    replayed.__doc__ = setup.__doc__
    return replayed


def _frozen(args: list[Any]) -> list[Any]:
    """The arguments as JSON would carry them, so that no later run can change the recorded ones."""
    return list(json.loads(json.dumps(args)))


def _restart_sequences(conn: Any, saved: Any) -> None:
    from sqlalchemy import text

    for table, rows in saved:
        for column in table.primary_key.columns:
            try:
                whole = column.type.python_type is int
            except NotImplementedError:  # a type that names no Python type has no serial sequence either
                whole = False
            if not whole or column.autoincrement is False:
                continue
            sequence = conn.execute(
                text("select pg_get_serial_sequence(:t, :c)"), {"t": table.name, "c": column.name}
            ).scalar()
            if sequence is None:
                continue
            top = max((row[column.name] for row in rows), default=None)
            if top is None:
                conn.execute(text("select setval(:s, 1, false)"), {"s": sequence})
            else:
                conn.execute(text("select setval(:s, :v, true)"), {"s": sequence, "v": top})


class DjangoState:
    """Fingerprint, reset and setup replay for a Django project's database (connection `using`).

    `models`: the models whose tables are read (default: every installed model with a table). The
    fingerprint is read again only after a statement that can change data went through the connection;
    inside an open transaction (pytest-django's `db` fixture wraps each test in one) a rollback could undo
    writes without a statement, so there every fingerprint is read afresh: prefer
    `@pytest.mark.django_db(transaction=True)` for explorations.
    """

    def __init__(self, *, using: str = "default", models: Sequence[Any] | None = None, cache: bool = True) -> None:
        try:
            from django.db import connections
        except ImportError as exc:
            raise ConfigurationError(f"DjangoState needs Django ({exc}); pip install django") from None
        self.using = using
        self._connections = connections
        self._models_given = models
        self._cache = cache
        self._dirty = True
        self._cached: tuple[Any, ...] | None = None
        self._wrapped: Any = None
        self._recorded: dict[Any, tuple[Any, Any]] = {}
        self.reads = 0

    @property
    def connection(self) -> Any:
        connection = self._connections[self.using]
        if connection is not self._wrapped:
            connection.execute_wrappers.append(self._watch)
            self._wrapped = connection
            self._dirty = True
        return connection

    def _watch(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if not str(sql).lstrip().upper().startswith(("SELECT", "SAVEPOINT", "RELEASE")):
            self._dirty = True
        return execute(sql, params, many, context)

    def models(self) -> list[Any]:
        """The models read, parents before children (as their foreign keys need)."""
        if self._models_given is not None:
            return list(self._models_given)
        from django.apps import apps

        found = [m for m in apps.get_models() if m._meta.managed and not m._meta.proxy]
        return _by_dependency(found)

    def fingerprint(self, world: Any = None) -> Hashable:
        """Every row of every model's table, by primary key; read again only after a change."""
        connection = self.connection
        cacheable = self._cache and not connection.in_atomic_block
        if cacheable and not self._dirty and self._cached is not None:
            return self._cached
        self._dirty = False
        self._cached = self._read(connection)
        self.reads += 1
        return self._cached

    def _read(self, connection: Any) -> tuple[Any, ...]:
        quote = connection.ops.quote_name
        rows = []
        with connection.cursor() as cursor:
            for model in self.models():
                meta = model._meta
                cursor.execute(f"SELECT * FROM {quote(meta.db_table)} ORDER BY {quote(meta.pk.column)}")
                rows.append(tuple(tuple(row) for row in cursor.fetchall()))
        return tuple(rows)

    def rows(self, model: Any) -> list[dict[str, Any]]:
        """The rows of one model's table as dicts of column values, from the fingerprint."""
        snapshot = self.fingerprint()
        for known, found in zip(self.models(), snapshot, strict=True):  # type: ignore[call-overload]
            if known is model:
                columns = [field.column for field in known._meta.concrete_fields]
                return [dict(zip(columns, row, strict=False)) for row in found]
        raise ConfigurationError(f"{model!r} is not among the models read")

    def reset(self) -> None:
        """Drop what a dying process holds: connections not inside a transaction of the test itself are
        closed (a new one rolls nothing forward), and the next fingerprint is read afresh."""
        for connection in self._connections.all(initialized_only=True):
            if not connection.in_atomic_block:
                connection.close()
        self._dirty = True

    def replaying(self, setup: Callable[[Any], Sequence[Any]]) -> Callable[[Any], list[Any]]:
        """`setup`, run once; later calls put the models' rows back as it left them (and the id sequences)
        and return the same arguments. Only for a setup whose whole effect is on this database."""
        return _replaying(self, setup, lambda: (self.using, id(self.connection.settings_dict)))

    def _capture(self) -> Any:
        connection = self.connection
        quote = connection.ops.quote_name
        saved = []
        with connection.cursor() as cursor:
            for model in self.models():
                table = model._meta.db_table
                cursor.execute(f"SELECT * FROM {quote(table)}")
                columns = [column[0] for column in cursor.description]
                saved.append((table, columns, cursor.fetchall()))
            sequences = None
            if connection.vendor == "sqlite":
                cursor.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_sequence'")
                if cursor.fetchone() is not None:
                    cursor.execute("SELECT name, seq FROM sqlite_sequence")
                    sequences = cursor.fetchall()
        return saved, sequences

    def _restore(self, recorded: Any) -> None:
        from django.core.management.color import no_style
        from django.db import transaction

        saved, sequences = recorded
        connection = self.connection
        quote = connection.ops.quote_name
        with transaction.atomic(using=self.using), connection.cursor() as cursor:
            for table, _, _ in reversed(saved):
                cursor.execute(f"DELETE FROM {quote(table)}")
            for table, columns, rows in saved:
                if rows:
                    names = ", ".join(quote(c) for c in columns)
                    marks = ", ".join(["%s"] * len(columns))
                    cursor.executemany(f"INSERT INTO {quote(table)} ({names}) VALUES ({marks})", rows)
            if sequences is not None:
                cursor.execute("DELETE FROM sqlite_sequence")
                cursor.executemany("INSERT INTO sqlite_sequence (name, seq) VALUES (%s, %s)", sequences)
            for statement in connection.ops.sequence_reset_sql(no_style(), self.models()):
                cursor.execute(statement)
        self._dirty = True


def _by_dependency(models: list[Any]) -> list[Any]:
    """Models ordered so that each comes after the models its foreign keys point to (cycles keep order)."""
    ordered: list[Any] = []
    placed: set[Any] = set()
    remaining = list(models)
    while remaining:
        progressed = False
        for model in list(remaining):
            targets = {
                f.related_model for f in model._meta.concrete_fields
                if f.is_relation and f.related_model is not None and f.related_model is not model
            }
            if targets <= placed | (targets - set(models)):
                ordered.append(model)
                placed.add(model)
                remaining.remove(model)
                progressed = True
        if not progressed:  # a cycle of foreign keys: keep the given order for the rest
            ordered.extend(remaining)
            break
    return ordered
