"""SQLAlchemyState: a fingerprint read again only after a change, a reset as a dying process's, and a
setup whose database is restored from a copy, on SQLite (and PostgreSQL where one answers)."""

from __future__ import annotations

import os
import sqlite3

import pytest
from sqlalchemy import Column, ForeignKey, Integer, MetaData, String, Table, create_engine, insert, select, text

from harness.databases import SQLAlchemyState
from harness.errors import ConfigurationError

metadata = MetaData()
customers = Table("customers", metadata, Column("id", Integer, primary_key=True), Column("name", String(50)))
orders = Table(
    "orders",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("customer_id", Integer, ForeignKey("customers.id")),
    Column("status", String(20)),
)
PG_URL = os.environ.get("DATABASE_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@pytest.fixture
def engine(tmp_path):
    built = create_engine(f"sqlite:///{tmp_path / 'app.sqlite3'}")
    metadata.create_all(built)
    yield built
    built.dispose()


def _place_order(engine) -> int:
    with engine.begin() as conn:
        conn.execute(orders.delete())
        conn.execute(customers.delete())
        customer = conn.execute(insert(customers).values(name="Pat")).inserted_primary_key[0]
        return int(conn.execute(insert(orders).values(customer_id=customer, status="pending")).inserted_primary_key[0])


def test_the_fingerprint_is_read_again_only_after_a_commit(engine):
    state = SQLAlchemyState(engine, tables=metadata)
    _place_order(engine)
    first = state.fingerprint()
    assert first == state.fingerprint() == state.fingerprint()
    assert state.reads == 1
    with engine.begin() as conn:
        conn.execute(orders.update().values(status="charged"))
    changed = state.fingerprint()
    assert changed != first and state.reads == 2
    assert changed[1] == ((1, 1, "charged"),)


def test_writes_that_bypass_the_engine_are_seen_on_sqlite(engine):
    state = SQLAlchemyState(engine, tables=metadata)
    _place_order(engine)
    before = state.fingerprint()
    raw = sqlite3.connect(engine.url.database)
    raw.execute("UPDATE orders SET status = 'shipped'")
    raw.commit()
    raw.close()
    assert state.fingerprint() != before
    assert state.rows("orders") == [{"id": 1, "customer_id": 1, "status": "shipped"}]


def test_every_table_is_reflected_when_none_are_named(engine):
    state = SQLAlchemyState(lambda: engine)
    _place_order(engine)
    assert [t.name for t in state.tables()] == ["customers", "orders"]
    assert state.fingerprint() == (((1, "Pat"),), ((1, 1, "pending"),))


def test_a_replayed_setup_runs_once_and_its_database_comes_back(engine):
    calls = []

    def setup(world):
        calls.append(1)
        return [_place_order(engine)]

    state = SQLAlchemyState(engine, tables=metadata)
    replayed = state.replaying(setup)
    assert replayed(None) == [1]
    clean = state.fingerprint()
    with engine.begin() as conn:
        conn.execute(orders.update().values(status="charged"))
        conn.execute(insert(customers).values(name="Sam"))
    args = replayed(None)
    assert args == [1] and calls == [1]
    assert state.fingerprint() == clean
    with engine.begin() as conn:  # ids start where the setup left them, as after a real setup
        assert conn.execute(insert(customers).values(name="Lee")).inserted_primary_key[0] == 2
    args.append("changed")
    assert replayed(None) == [1], "the recorded arguments cannot be changed by a run"


def test_reset_closes_pooled_connections_and_removes_sessions(engine):
    from sqlalchemy.orm import scoped_session, sessionmaker

    sessions = scoped_session(sessionmaker(bind=engine))
    state = SQLAlchemyState(engine, tables=metadata, sessions=[sessions])
    _place_order(engine)
    session = sessions()
    session.execute(orders.update().values(status="half done"))  # an open transaction a crash left behind
    state.reset()
    assert sessions() is not session, "the scoped session was removed"
    assert state.rows("orders")[0]["status"] == "pending", "its transaction was rolled back"
    assert engine.pool.checkedout() == 0


def test_bad_input_is_a_clear_error(engine):
    with pytest.raises(ConfigurationError, match="needs a SQLAlchemy Engine"):
        SQLAlchemyState(lambda: "sqlite://").fingerprint()
    with pytest.raises(ConfigurationError, match="no table 'nope'"):
        SQLAlchemyState(engine, tables=metadata).rows("nope")


@pytest.mark.postgres
def test_on_postgresql_commits_are_seen_and_sequences_restart():
    from scenarios.shop.db import unreachable

    reason = unreachable(PG_URL)
    if reason is not None:
        if os.environ.get("CI"):
            raise RuntimeError(f"PostgreSQL is not reachable and CI is set: {reason}")
        pytest.skip(f"no PostgreSQL at {PG_URL}: {reason}")
    engine = create_engine(PG_URL)
    own = MetaData(schema=None)
    table = Table("harness_state_probe", own, Column("id", Integer, primary_key=True), Column("v", String(10)))
    own.drop_all(engine)
    own.create_all(engine)
    try:
        state = SQLAlchemyState(engine, tables=[table])

        def setup(world):
            with engine.begin() as conn:
                conn.execute(table.delete())
                conn.execute(text("ALTER SEQUENCE harness_state_probe_id_seq RESTART"))
                conn.execute(insert(table).values(v="a"))
            return []

        replayed = state.replaying(setup)
        replayed(None)
        first = state.fingerprint()
        assert state.fingerprint() == first and state.reads == 1
        with engine.begin() as conn:
            conn.execute(insert(table).values(v="b"))
        assert state.fingerprint() != first
        replayed(None)
        assert state.fingerprint() == first
        with engine.begin() as conn:
            assert conn.execute(insert(table).values(v="c")).inserted_primary_key[0] == 2
            assert conn.execute(select(table.c.v).order_by(table.c.id)).scalars().all() == ["a", "c"]
    finally:
        own.drop_all(engine)
        engine.dispose()


def test_on_sqlite_the_fingerprint_holds_the_values_the_engine_would_return(tmp_path):
    """The state reads SQLite on a connection of its own; every type comes back as SQLAlchemy gives it."""
    import datetime
    import decimal
    import enum

    from sqlalchemy import JSON, Boolean, Date, DateTime, Enum, Float, LargeBinary, Numeric, Time, TypeDecorator

    class Colour(enum.Enum):
        RED = "red"
        BLUE = "blue"

    class Upper(TypeDecorator):  # a type of the app's own, None included
        impl = String
        cache_ok = True

        def process_result_value(self, value, dialect):
            return "NONE" if value is None else value.upper()

    typed = MetaData()
    table = Table(
        "things", typed,
        Column("id", Integer, primary_key=True),
        Column("price", Numeric(10, 2)), Column("ratio", Float), Column("paid", Boolean),
        Column("at", DateTime), Column("day", Date), Column("time", Time), Column("data", JSON),
        Column("blob", LargeBinary), Column("colour", Enum(Colour)), Column("shout", Upper(20)),
    )
    unordered = Table("unordered", typed, Column("a", Integer), Column("b", String(5)))
    built = create_engine(f"sqlite:///{tmp_path / 'typed.sqlite3'}")
    typed.create_all(built)
    with built.begin() as conn:
        conn.execute(insert(table), [
            {"id": 2, "price": decimal.Decimal("12.50"), "ratio": 0.25, "paid": True,
             "at": datetime.datetime(2026, 12, 4, 7, 0, 1, 5), "day": datetime.date(2026, 1, 2),
             "time": datetime.time(23, 59, 1), "data": {"k": [1, "two", None]}, "blob": b"\x00\xff",
             "colour": Colour.BLUE, "shout": "quiet"},
        ])
        conn.execute(insert(table).values(id=1))
        conn.execute(insert(unordered), [{"a": 2, "b": "x"}, {"a": 1, "b": None}, {"a": 1, "b": "a"}])
    state = SQLAlchemyState(built, tables=typed)
    with built.connect() as conn:
        expected = tuple(
            tuple(tuple(row) for row in conn.execute(t.select().order_by(*(t.primary_key.columns or t.columns))))
            for t in typed.sorted_tables
        )
    assert state._watch is None  # built lazily, with the first fingerprint
    got = state.fingerprint()
    assert state._watch is not None  # so this read went through the state's own connection
    assert got == expected
    assert [type(v) for v in got[0][1]] == [type(v) for v in expected[0][1]]
    assert got[0][0][-1] == "NONE" and got[0][1][4] == datetime.datetime(2026, 12, 4, 7, 0, 1, 5)
    assert state.rows("things")[1]["colour"] is Colour.BLUE
    built.dispose()
