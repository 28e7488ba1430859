"""Real workers on a real Redis (and RabbitMQ), killed in the middle of a job.

Each test starts an engine's own worker in a subprocess, kills it (or only the process running the
job) while the probe job blocks, and checks the report against the broker's own state. Each engine gets
its own Redis database, flushed afterwards, and a unique queue name.
"""

from __future__ import annotations

import os
import signal
import socket

import pytest

from harness.engines.workers import RealWorker, redis_available

REDIS = "redis://127.0.0.1:6379/{db}"
AMQP = "amqp://guest:guest@127.0.0.1:5672//"
DB = {"rq": 13, "dramatiq": 14, "celery": 15}


def _need_redis() -> None:
    if not redis_available(REDIS.format(db=0)):
        if os.environ.get("CI"):
            raise RuntimeError("Redis is not reachable on 127.0.0.1:6379 and CI is set")
        pytest.skip("no Redis on 127.0.0.1:6379")


def _need_rabbitmq() -> None:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        if os.environ.get("CI"):
            raise
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")


def _worker(engine: str, **settings) -> RealWorker:
    _need_redis()
    return RealWorker(engine, REDIS.format(db=DB[engine]), **settings)


pytestmark = [pytest.mark.redis, pytest.mark.timeout(90)]


def test_rq_abandoned_job_with_retries_is_rerun():
    with _worker("rq", retries=1) as worker:
        report = worker.kill_mid_job()
    assert report.evidence["started_registry"] is True  # the dead worker left it in StartedJobRegistry
    assert report.outcome == "recovered" and report.runs == 2 and report.forced
    assert report.evidence["after"]["failed_registry"] is False
    assert report.recovery_s is not None and report.nominal_recovery_s and report.nominal_recovery_s > 60


def test_rq_abandoned_job_without_retries_goes_to_failed_registry():
    with _worker("rq") as worker:
        report = worker.kill_mid_job()
    assert report.outcome == "dead_lettered" and report.runs == 1
    assert report.evidence["after"]["failed_registry"] is True
    assert report.evidence["after"]["status"] == "JobStatus.FAILED"


def test_rq_killed_work_horse_is_retried_by_its_worker():
    with _worker("rq", retries=1) as worker:
        report = worker.kill_mid_job(target="job")
    assert report.outcome == "recovered" and report.runs == 2
    assert report.evidence["after"]["failed_registry"] is False


def test_rq_sigterm_lets_the_job_finish():
    with _worker("rq") as worker:
        report = worker.kill_mid_job(sig=signal.SIGTERM)
    assert report.outcome == "completed" and report.runs == 1
    assert report.evidence["status"] == "JobStatus.FINISHED"


def test_dramatiq_unacked_message_is_requeued_after_the_heartbeat_timeout():
    # The worker's broker beats every few commands; a fresh broker doing maintenance on every command
    # requeues the dead broker's ack set once its heartbeat is 2 s old (60 s by default).
    with _worker("dramatiq", heartbeat_timeout_ms=2000, maintenance_chance=1_000_000) as worker:
        report = worker.kill_mid_job()
    assert report.evidence["ack_sets"] != []  # in the dead worker's ack set, not in the queue
    assert report.evidence["queued"] is False
    assert report.outcome == "recovered" and report.runs == 2 and not report.forced
    assert report.recovery_s is not None and report.recovery_s >= 1.0
    assert report.evidence["after"]["ack_sets"] == [] and not report.evidence["after"]["dead_letter_queue"]


def test_dramatiq_sigterm_lets_the_job_finish():
    with _worker("dramatiq") as worker:
        report = worker.kill_mid_job(sig=signal.SIGTERM)
    assert report.outcome == "completed" and report.runs == 1 and report.evidence["ack_sets"] == []


def test_celery_early_ack_loses_the_job_on_redis():
    with _worker("celery") as worker:
        report = worker.kill_mid_job()
    assert report.outcome == "lost" and report.runs == 1
    assert report.evidence == {**report.evidence, "unacked": [], "queued": False, "result_state": None}


def test_celery_acks_late_is_restored_after_the_visibility_timeout():
    with _worker("celery", acks_late=True, visibility_timeout=2) as worker:
        report = worker.kill_mid_job()
    assert report.evidence["unacked"] != []  # kombu's unacked hash still holds it
    assert report.outcome == "recovered" and report.runs == 2
    assert report.evidence["after"]["result_state"] == "SUCCESS"
    assert report.nominal_recovery_s == 3600.0


def test_celery_acks_late_pool_child_killed_is_failed_not_retried():
    with _worker("celery", acks_late=True) as worker:
        report = worker.kill_mid_job(target="job", recovery_timeout=15)
    assert report.outcome == "dead_lettered" and report.runs == 1
    assert report.evidence["after"]["result_state"] == "FAILURE"  # WorkerLostError, message acked


def test_celery_reject_on_worker_lost_requeues_the_job():
    with _worker("celery", acks_late=True, reject_on_worker_lost=True) as worker:
        report = worker.kill_mid_job(target="job", recovery_timeout=15)
    assert report.outcome == "recovered" and report.runs == 2
    assert report.evidence["after"]["result_state"] == "SUCCESS"


def test_celery_sigterm_is_a_warm_shutdown():
    with _worker("celery") as worker:
        report = worker.kill_mid_job(sig=signal.SIGTERM)
    assert report.outcome == "completed" and report.runs == 1


@pytest.mark.rabbitmq
def test_celery_acks_late_on_rabbitmq_is_redelivered_at_once():
    _need_rabbitmq()
    with _worker("celery", broker_url=AMQP, acks_late=True) as worker:
        report = worker.kill_mid_job()
    assert report.evidence["queue_messages"] == 1  # back in the queue once the connection closed
    assert report.outcome == "recovered" and report.runs == 2 and report.nominal_recovery_s == 0.0


@pytest.mark.rabbitmq
def test_celery_early_ack_on_rabbitmq_loses_the_job():
    _need_rabbitmq()
    with _worker("celery", broker_url=AMQP) as worker:
        report = worker.kill_mid_job()
    assert report.evidence["queue_messages"] == 0
    assert report.outcome == "lost" and report.runs == 1


@pytest.mark.parametrize("engine", sorted(DB))
def test_deliver_at_once_runs_each_delivery_in_a_worker_of_its_own(engine, tmp_path):
    with _worker(engine) as worker:
        report = worker.deliver_at_once("tests.engines.at_once_jobs:note", [str(tmp_path)], timeout=30)
    assert report.completed and report.overlapped, report
    assert report.workers == 2
    assert sorted((r.delivery, r.outcome) for r in report.runs) == [(1, "done"), (2, "done")]
    assert len({r.pid for r in report.runs}) == 2
    assert len(list(tmp_path.glob("ran-*"))) == 2  # the job itself ran once in each process


@pytest.mark.parametrize("engine", sorted(DB))
def test_deliver_at_once_lets_the_engine_retry_a_failed_delivery(engine, tmp_path):
    with _worker(engine) as worker:
        report = worker.deliver_at_once(
            "tests.engines.at_once_jobs:fails_twice", [str(tmp_path)], retries=2, retry_delay=0.5, timeout=30
        )
    assert report.completed, report
    assert report.failures() == {"RuntimeError": 2}
    assert sorted((r.delivery, r.run, r.outcome) for r in report.runs) == [
        (1, 1, "failed"), (1, 2, "done"), (2, 1, "failed"), (2, 2, "done")]


def test_deliver_at_once_refuses_bad_input_before_starting_a_worker():
    from harness.errors import ConfigurationError

    with _worker("rq") as worker:
        with pytest.raises(ConfigurationError, match="at least 2"):
            worker.deliver_at_once("tests.engines.at_once_jobs:note", ["x"], deliveries=1)
        with pytest.raises(ConfigurationError, match=r"package\.module:name"):
            worker.deliver_at_once("tests.engines.at_once_jobs.note", ["x"])
        with pytest.raises(ConfigurationError, match="cannot load"):
            worker.deliver_at_once("tests.engines.at_once_jobs:missing", ["x"])
        assert worker.processes == []


def test_deliver_at_once_reuses_its_workers_until_the_settings_change(tmp_path):
    with _worker("rq") as worker:
        worker.deliver_at_once("tests.engines.at_once_jobs:note", [str(tmp_path)], timeout=30)
        first = [p.pid for p in worker.processes]
        again = worker.deliver_at_once("tests.engines.at_once_jobs:note", [str(tmp_path)], timeout=30)
        assert again.completed and [p.pid for p in worker.processes] == first, f"{again}\n{worker.log()}"
        other = worker.deliver_at_once("tests.engines.at_once_jobs:note", [str(tmp_path)], retries=1, timeout=30)
        assert other.completed and other.workers == 2, f"{other}\n{worker.log()}"
        assert not set(p.pid for p in worker.processes) & set(first)
        assert "prefetch" not in worker.settings and "retries" not in worker.settings  # the runs' own, not kept


@pytest.mark.timeout(40)
def test_rqs_warm_shutdown_does_not_wait_on_the_command_channels_listener(monkeypatch):
    """RQ unsubscribes, then stops the listener thread; a listener woken by the confirmation before it was
    told to stop went back to a minute-long read, and the shutdown waited for it. Made certain here: the
    unsubscribe lingers after it is sent, as a loaded machine's scheduler can make it."""
    import time
    import uuid

    import redis
    from redis.client import PubSub
    from rq import Queue

    from harness.engines.workers import rq_worker_class

    _need_redis()
    sent = PubSub.unsubscribe

    def lingering(self, *args):
        done = sent(self, *args)
        time.sleep(0.5)  # the listener reads the confirmation meanwhile
        return done

    monkeypatch.setattr(PubSub, "unsubscribe", lingering)
    connection = redis.Redis.from_url(REDIS.format(db=DB["rq"]))
    name = f"t{uuid.uuid4().hex[:12]}"
    worker = rq_worker_class()([Queue(name, connection=connection)], connection=connection, name=name)
    try:
        worker.subscribe()
        listener = worker.pubsub_thread
        assert listener is not None and listener.is_alive()
        started = time.monotonic()
        worker.unsubscribe()
        assert time.monotonic() - started < 5, "the shutdown waited on the listener's read"
        assert not listener.is_alive()
    finally:
        connection.close()
