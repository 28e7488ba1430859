"""`engine.retry_policy(job)`: a registered job's retry settings, read from its engine's own settings, and
the routing matrix it lets the explorer check on native jobs of every engine."""

from __future__ import annotations

from typing import Any

import pytest
from native_routing import celery_charge, charge, dramatiq_charge, scenario

from harness import ConfigurationError, job
from harness.engines import RetryPolicy, get_engine
from harness.explore import Explorer

ENGINES = ["sim", "dramatiq", "rq", "celery"]


@pytest.mark.parametrize("name", ENGINES)
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, (25, True)),
        ({"retry": 4}, (4, True)),
        ({"retry": 0}, (0, True)),
        ({"retry": False}, (0, False)),
        ({"retry": 2, "dead": False}, (2, False)),
    ],
)
def test_a_harness_job_has_the_same_policy_on_every_engine(name: str, options: dict[str, Any], expected: Any):
    declared = job(name="policy", **options)(lambda: None)
    engine = get_engine(name)
    engine.register(declared)
    policy = engine.retry_policy(declared)
    assert (policy.max_retries, policy.dead) == expected
    assert engine.retry_policy("policy") == policy  # by registered name too
    engine.close()


def test_a_dramatiq_actor_s_policy_is_its_options_or_the_retries_middleware_default():
    engine = get_engine("dramatiq")
    assert engine.retry_policy(dramatiq_charge()) == RetryPolicy(
        20, source="actor native.charge: max_retries=20 (the Retries middleware's default)"
    )
    assert engine.retry_policy(dramatiq_charge(max_retries=3, throws=(KeyError,))).never_retry_on == (KeyError,)
    assert engine.retry_policy(dramatiq_charge(max_retries=3)).max_retries == 3
    with pytest.raises(ConfigurationError, match="retry_when"):
        engine.retry_policy(dramatiq_charge(retry_when=lambda retries, exc: retries < 2))
    with pytest.raises(ConfigurationError, match="without end"):
        engine.retry_policy(dramatiq_charge(max_retries=None))
    engine.close()


def test_an_rq_function_s_policy_is_the_retry_it_is_enqueued_with():
    from rq import Retry

    engine = get_engine("rq")
    assert engine.retry_policy(charge) == RetryPolicy(
        0, source="native_routing.charge enqueued without Retry: RQ fails it at once"
    )
    assert engine.retry_policy(charge, {"retry": Retry(max=2)}).max_retries == 2
    with engine.activate():
        engine.enqueue(charge, 7, retry=Retry(max=5, interval=10))
    assert engine.retry_policy(charge).max_retries == 5  # the options it was last enqueued with
    assert engine.retry_policy("native_routing.charge").max_retries == 5
    engine.close()


def test_a_celery_task_s_policy_is_its_settings():
    from fake_services.clients import TransientServiceError

    engine = get_engine("celery")
    default = engine.retry_policy(celery_charge())
    assert (default.max_retries, default.dead, default.retry_on) == (3, True, ())
    assert "self.retry()" in default.source
    retried = engine.retry_policy(celery_charge(autoretry_for=(TransientServiceError,), max_retries=5))
    assert (retried.max_retries, retried.retry_on) == (5, (TransientServiceError,))
    assert engine.retry_policy(celery_charge(ignore_result=True)).dead is False
    with pytest.raises(ConfigurationError, match="without end"):
        engine.retry_policy(celery_charge(max_retries=None))
    engine.close()


def _native(name: str) -> Any:
    from fake_services.clients import TransientServiceError

    if name == "dramatiq":
        return dramatiq_charge(max_retries=3, min_backoff=1000)
    if name == "celery":
        return celery_charge(autoretry_for=(TransientServiceError,), max_retries=3, retry_jitter=False)
    return charge


@pytest.mark.parametrize("name", ["dramatiq", "rq", "celery"])
def test_the_routing_matrix_runs_on_a_native_job(name: str):
    explorer = Explorer(scenario(_native(name)), engine=name)
    try:
        report = explorer.explore(depth=0, routing=True)
    finally:
        explorer.close()
    rows = {row["fault"]: row for row in report.routing}
    assert set(rows) == {"transient 503", "transient 429", "transient timeout", "transient drop", "permanent",
                         "exhausted"}
    assert all(row["ok"] for row in report.routing), report.routing
    retried = name != "rq"  # RQ retries only a job enqueued with Retry, and this one was not
    assert rows["transient 503"]["retried"] is retried and rows["exhausted"]["dead"] is True
    assert rows["exhausted"]["death_handler"] == 1 and rows["permanent"]["reported"] >= 1


def test_the_routing_matrix_of_an_rq_job_reads_the_retry_the_scenario_enqueues_it_with():
    from rq import Retry

    explorer = Explorer(scenario(charge, enqueue_options={"retry": Retry(max=2, interval=5)}), engine="rq")
    try:
        report = explorer.explore(depth=0, routing=True)
        assert explorer.world.engine.retry_policy(charge).max_retries == 2
    finally:
        explorer.close()
    rows = {row["fault"]: row for row in report.routing}
    assert all(row["ok"] for row in report.routing), report.routing
    assert rows["transient 503"]["retried"] and rows["transient 503"]["reported"] == 0
    assert rows["exhausted"]["dead"] and rows["exhausted"]["death_handler"] == 1
