"""An injected crash is the death of the worker: each deterministic engine does with the job what its real
worker does with a killed process's job, side by side with what the real workers were seen to do.

The real-worker table of docs/engines.md (what tests/engines/test_real_workers.py observes on real
workers) is read here row by row; each row about a whole worker's death is replayed on the deterministic
engine with the same native job and settings, and must end the same way. Then the defaults of each
engine, and the explorer's verdicts on a native Celery task with each acknowledgement setting.
"""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest
from native_jobs import BODY, native_job

from harness import InjectedCrash
from harness.engines import EventKind, get_engine

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "engines.md"

#: Each "worker" row of the docs table: (engine, engine options, native job options, enqueue options,
#: seconds from the crash to the job's second run, or None when it never runs again).
REPLAYED: dict[str, tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], float | None]] = {
    "RQ, `Retry(max=1)`": ("rq", {}, {}, {"retry": ("Retry", 1)}, 240.0),
    "RQ, no retry": ("rq", {}, {}, {}, None),
    "Dramatiq, `heartbeat_timeout=2 s`": ("dramatiq", {"heartbeat_timeout_ms": 2000}, {}, {}, 2.0),
    "Celery on Redis, defaults": ("celery", {}, {}, {}, None),
    "Celery on Redis, `acks_late`, `visibility_timeout=2`": (
        "celery", {"visibility_timeout": 2}, {"acks_late": True}, {}, 2.0,
    ),
    "Celery on RabbitMQ, `acks_late`": ("celery", {"visibility_timeout": 0}, {"acks_late": True}, {}, 0.0),
    "Celery on RabbitMQ, defaults": ("celery", {"visibility_timeout": 0}, {}, {}, None),
}
#: Rows whose kill is not a whole worker's death: the deterministic crash does not model them.
NOT_REPLAYED = {"work horse", "pool child", "SIGTERM"}


def _real_worker_rows() -> list[tuple[str, str, str]]:
    text = DOCS.read_text()
    table = text.split("What the tests in `tests/engines/test_real_workers.py` observe:", 1)[1]
    rows = []
    for line in table.strip().splitlines():
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("engine, settings",) or set(cells[0]) <= {"-"}:
            continue
        rows.append((cells[0], cells[1], cells[2]))
    return rows


ROWS = _real_worker_rows()


def _outcome_word(cell: str) -> str:
    return re.split(r"[\s(]", cell, maxsplit=1)[0].replace("-", "_")


def test_every_row_of_the_docs_table_is_replayed_or_out_of_the_model():
    assert len(ROWS) >= 10
    for settings, kill, _ in ROWS:
        assert settings in REPLAYED if kill == "worker" else kill in NOT_REPLAYED, (settings, kill)


def _crash_once() -> list[float]:
    runs: list[float] = []

    def body(*args: Any) -> None:
        runs.append(1.0)
        if len(runs) == 1:
            raise InjectedCrash("the worker was killed here")

    BODY["body"] = body
    return runs


def _replay(name: str, engine_options: dict[str, Any], job_options: dict[str, Any], enqueue: dict[str, Any]):
    engine = get_engine(name, seed=1, **engine_options)
    native, options = native_job(name, **job_options)
    if "retry" in enqueue:
        from rq import Retry

        options = {"retry": Retry(max=enqueue["retry"][1])}
    runs = _crash_once()
    with engine.activate():
        engine.enqueue(native, 7, **options)
        engine.run_until_quiet()
    return engine, runs


def _classify(engine: Any, runs: list[float]) -> str:
    succeeded = [e for e in engine.events if e.kind is EventKind.SUCCEEDED]
    if engine.dead():
        return "dead_lettered"
    if len(runs) == 2 and succeeded:
        return "recovered"
    if len(runs) == 1 and not (engine.queued() or engine.retries() or engine.scheduled()):
        return "lost"
    return f"unclear: {len(runs)} runs, {[e.kind.value for e in engine.events]}"


@pytest.mark.parametrize(("settings", "kill", "observed"), [r for r in ROWS if r[1] == "worker"], ids=lambda v: v)
def test_the_deterministic_crash_ends_as_the_real_worker_did(settings: str, kill: str, observed: str):
    name, engine_options, job_options, enqueue, delay = REPLAYED[settings]
    engine, runs = _replay(name, engine_options, job_options, enqueue)
    assert _classify(engine, runs) == _outcome_word(observed), [e.kind.value for e in engine.events]
    [crashed] = [e for e in engine.events if e.kind is EventKind.CRASHED]
    starts = [e.time for e in engine.events if e.kind is EventKind.STARTED]
    if delay is not None:
        assert starts[1] - crashed.time == delay
    if "no retry is counted" in observed or name in ("dramatiq", "celery"):
        assert not [e for e in engine.events if e.kind is EventKind.RETRY_SCHEDULED]
    engine.close()


@pytest.mark.parametrize(
    ("name", "engine_options", "job_options", "outcome", "delay"),
    [
        ("sim", {}, {}, "recovered", 60.0),
        ("sim", {"fetch": "basic"}, {}, "lost", None),
        ("dramatiq", {}, {}, "recovered", 60.0),
        ("celery", {}, {"autoretry_for": (Exception,), "max_retries": 3}, "lost", None),
        ("celery", {}, {"acks_late": True, "reject_on_worker_lost": True}, "recovered", 3600.0),
    ],
)
def test_the_defaults_of_each_engine(name, engine_options, job_options, outcome, delay):
    # The "worker SIGKILLed mid-job" row of the table of differences, with each engine's defaults.
    if name == "sim":
        from harness import job

        runs = _crash_once()
        declared = job(name="probe")(lambda n: BODY["body"](n))
        engine = get_engine("sim", **engine_options)
        with engine.activate():
            declared.enqueue(7)
            engine.run_until_quiet()
    else:
        engine, runs = _replay(name, engine_options, job_options, {})
    assert _classify(engine, runs) == outcome
    kinds = [e.kind.value for e in engine.events]
    assert kinds[:3] == ["enqueued", "started", "crashed"]
    assert ("lost" in kinds) == (outcome == "lost") and ("recovered" in kinds) == (outcome == "recovered")
    assert "error_handler_called" not in kinds and "failed" not in kinds
    if delay is not None:
        starts = [e.time for e in engine.events if e.kind is EventKind.STARTED]
        assert starts[1] - starts[0] == delay
    engine.close()


# -- the explorer's verdicts on a native Celery task ------------------------------------------------------
def _celery_charge_scenario(**task_options: Any) -> Any:
    from celery import Celery

    from fake_services.clients import PaymentsClient
    from harness.explore import Scenario

    app = Celery("shop_app", broker="memory://", set_as_current=False)
    clients: dict[str, Any] = {}

    def configure(world: Any) -> None:
        clients["payments"] = PaymentsClient(world.base_url, http=world.http)

    def charge_order(order_id: int) -> None:
        clients["payments"].charge(
            customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id},
            idempotency_key=f"charge-order-{order_id}",
        )

    task = app.task(charge_order, name="shop.charge_order", shared=False, **task_options)
    return Scenario(name="celery.charge", job=task, setup=lambda world: [7], configure=configure,
                    targets=[__name__])


RETRIED = {"autoretry_for": (Exception,), "max_retries": 3, "retry_jitter": False}


def test_an_early_ack_task_loses_its_effect_whatever_its_autoretry():
    from harness.explore import explore

    report = explore(_celery_charge_scenario(**RETRIED), engine="celery")
    lost = report.found(fault="crash", text="an effect was lost")
    assert lost and len(lost) == len(report.unsafe), report.to_text()


def test_the_same_task_acknowledged_late_is_safe():
    from harness.explore import explore

    report = explore(_celery_charge_scenario(**RETRIED, acks_late=True, reject_on_worker_lost=True), engine="celery")
    assert report.safe, report.to_text()
