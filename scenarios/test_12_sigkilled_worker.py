"""Lesson 12: a worker SIGKILLed mid-job (an OOM kill, a lost machine) runs no shutdown code, so whether
its job ever runs again is up to the engine and its delivery settings: kept and run again after a
timeout, filed as failed, or lost without a trace. A job that may run again must be idempotent; a job
that may be lost needs the business-outcome checks of lesson 11.

Each case starts the engine's own worker on a real Redis, SIGKILLs its process group while the probe job
runs, starts a fresh worker and reads the broker's own state (`harness.engines.workers`). These cases are
about the engines themselves, so they run whatever `--harness-engine` says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from harness.engines.workers import KillReport, RealWorker

REDIS = "redis://127.0.0.1:6379/{db}"
#: A Redis database per engine, flushed when its worker closes.
DB = {"rq": 10, "dramatiq": 11, "celery": 12}

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(150)]


@contextmanager
def _database_to_ourselves(engine: str) -> Iterator[None]:
    """Hold the engine's Redis database while a case runs. A worker flushes its database on close, so two
    test runs on one machine (two checkouts, two terminals) would wipe each other's broker state."""
    import redis

    client = redis.Redis.from_url(REDIS.format(db=0))
    try:
        with client.lock(f"retry-harness:scenarios:sigkill:db{DB[engine]}", timeout=120, blocking_timeout=120):
            yield
    finally:
        client.close()


def rq_keeps_it_in_the_started_registry_and_retries_it(report: KillReport) -> None:
    # The dead worker left the job in StartedJobRegistry; RQ's abandoned-job cleanup (run early by the
    # harness instead of after the job's heartbeat TTL and the maintenance interval) retries it.
    assert report.evidence["started_registry"] is True
    assert report.outcome == "recovered" and report.runs == 2 and report.forced
    assert report.evidence["after"] == {**report.evidence["after"], "status": "JobStatus.FINISHED"}
    assert report.evidence["after"]["failed_registry"] is False
    assert report.recovery_s is not None and report.nominal_recovery_s is not None
    assert report.nominal_recovery_s > report.recovery_s


def rq_without_retries_files_it_as_failed(report: KillReport) -> None:
    # The same cleanup, for a job with no retries left: failed (AbandonedJobError), never run again.
    assert report.evidence["started_registry"] is True
    assert report.outcome == "dead_lettered" and report.runs == 1
    assert report.evidence["after"]["failed_registry"] is True
    assert report.evidence["after"]["status"] == "JobStatus.FAILED"


def dramatiq_redelivers_it_after_the_heartbeat_timeout(report: KillReport) -> None:
    # The message sat in the dead worker's ack set, not in the queue; another broker's maintenance
    # requeued it once the dead one's heartbeat was older than the timeout. No retry was counted.
    assert report.evidence["ack_sets"] != [] and report.evidence["queued"] is False
    assert report.outcome == "recovered" and report.runs == 2 and not report.forced
    assert report.recovery_s is not None and report.recovery_s >= 1.0
    assert report.evidence["after"]["ack_sets"] == [] and not report.evidence["after"]["dead_letter_queue"]


def celery_early_ack_loses_it(report: KillReport) -> None:
    # Acknowledged as the task started: not in kombu's unacked hash, not queued, no result. Gone.
    assert report.outcome == "lost" and report.runs == 1
    assert report.evidence["unacked"] == [] and report.evidence["queued"] is False
    assert report.evidence["result_state"] is None
    assert report.recovery_s is None


def celery_acks_late_restores_it_after_the_visibility_timeout(report: KillReport) -> None:
    # Acknowledged only at the end: kombu's unacked hash still held it, and it was restored to the queue
    # once the visibility timeout had passed (an hour by default, 2 s here).
    assert report.evidence["unacked"] != []
    assert report.outcome == "recovered" and report.runs == 2
    assert report.evidence["after"]["result_state"] == "SUCCESS"
    assert report.nominal_recovery_s == 3600.0


CASES = [
    pytest.param("rq", {"retries": 1}, rq_keeps_it_in_the_started_registry_and_retries_it, id="rq-retry"),
    pytest.param("rq", {}, rq_without_retries_files_it_as_failed, id="rq-no-retry"),
    pytest.param(
        "dramatiq",
        {"heartbeat_timeout_ms": 2000, "maintenance_chance": 1_000_000},
        dramatiq_redelivers_it_after_the_heartbeat_timeout,
        id="dramatiq",
    ),
    pytest.param("celery", {}, celery_early_ack_loses_it, id="celery-early-ack"),
    pytest.param(
        "celery",
        {"acks_late": True, "visibility_timeout": 2},
        celery_acks_late_restores_it_after_the_visibility_timeout,
        id="celery-acks-late",
    ),
]


@pytest.mark.parametrize(("engine", "settings", "expect"), CASES)
def test_what_happens_to_the_job_of_a_sigkilled_worker(
    engine: str, settings: dict[str, Any], expect: Callable[[KillReport], None], real_redis: Any
) -> None:
    url = real_redis(DB[engine], "the SIGKILL lesson")
    with _database_to_ourselves(engine), RealWorker(engine, url, **settings) as worker:
        report = worker.kill_mid_job()
    assert (report.engine, report.signal) == (engine, "SIGKILL")
    expect(report)
