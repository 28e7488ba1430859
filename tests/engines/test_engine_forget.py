"""A broker that forgets: `Engine.forget()` drops what the broker holds (queued, scheduled, retrying and
dead jobs) on every engine, logs each lost job, raises nothing, and leaves nothing to run."""

from __future__ import annotations

import pytest

from harness import VirtualClock, get_engine, job


@job(retry=3)
def fan_out(order_id: int) -> None:
    follow_up.enqueue(order_id)
    follow_up.enqueue_in(3600, order_id)


@job(retry=3)
def follow_up(order_id: int) -> None:
    if order_id == 1:
        raise RuntimeError("the partner is down")


@pytest.mark.parametrize("name", ["sim", "dramatiq", "rq", "celery"])
def test_forget_drops_queued_scheduled_and_retrying_jobs_and_logs_each(name):
    engine = get_engine(name, clock=VirtualClock())
    engine.register(fan_out)
    engine.register(follow_up)
    try:
        with engine.activate():
            engine.enqueue(fan_out, 1)
            assert engine.step()  # fan_out: one follow-up queued, one scheduled in an hour
            assert engine.step()  # the queued follow-up fails: a retry is scheduled
            assert len(engine.scheduled()) == 1 and len(engine.retries()) == 1
            lost = engine.forget()
            assert sorted(r.job.rsplit(".", 1)[-1] for r in lost) == ["follow_up", "follow_up"]
            assert (engine.queued(), engine.scheduled(), engine.retries(), engine.dead()) == ([], [], [], [])
            assert [e.detail for e in engine.events if e.kind == "lost"] == [{"cause": "broker"}] * 2
            assert engine.run_until_quiet() == 0
            # The engine goes on working after the loss: new work runs as usual.
            engine.enqueue(follow_up, 2)
            assert engine.run_until_quiet() == 1
    finally:
        engine.close()


def test_an_engine_without_the_model_says_so():
    from types import SimpleNamespace

    from harness.engines.base import Engine

    with pytest.raises(NotImplementedError, match="bare engine cannot lose"):
        Engine.forget(SimpleNamespace(name="bare"))  # type: ignore[arg-type]
