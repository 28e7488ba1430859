"""Native jobs end to end: `harness.explore(job, args)` takes a Dramatiq actor, an RQ function or a
Celery task and picks its engine; a scenario carries the options production code enqueues with; and a
chain written natively (each job enqueueing the next through the team's own broker, app or queue) runs
on the engine under test, so the explorer finds a double email planted in its middle step and clears
the fixed twin."""

from __future__ import annotations

from typing import Any

import pytest
from native_chains import CHAINS, ENQUEUE_OPTIONS, configure
from native_jobs import BODY, native_job
from native_routing import charge, dramatiq_charge

from harness import ConfigurationError, explore, job
from harness.engines import get_engine
from harness.engines._native import choose_engine, job_kind

NATIVE = ["dramatiq", "rq", "celery"]


def _explore_chain(name: str, safe: bool) -> Any:
    entry = CHAINS[name](safe)
    engine = "rq" if name == "rq" else None  # a plain function is an RQ job when someone says so
    return explore(entry, [7], engine=engine, configure=configure, targets=["native_chains"],
                   enqueue_options=ENQUEUE_OPTIONS.get(name))


@pytest.mark.parametrize("name", NATIVE)
def test_a_native_chain_with_a_planted_double_email_is_unsafe(name: str):
    report = _explore_chain(name, safe=False)
    assert report.engine == name
    # The clean run reached all three services (each call a point before and after its effect): the chain
    # ran on the engine under test.
    assert report.points["call"] == 6, report.to_text()
    twice = report.found(text="email.send")
    assert twice and all("happened 2 times" in " ".join(u.violations) for u in twice), report.to_text()
    assert not report.found(text="payments.charge") and not report.found(text="fulfillment.request")
    assert any("chain.email" in u.story or "email" in u.story for u in twice)


@pytest.mark.parametrize("name", NATIVE)
def test_its_fixed_twin_is_safe(name: str):
    report = _explore_chain(name, safe=True)
    assert report.points["call"] == 7, report.to_text()  # charge, send, request, and the search (no effect)
    assert report.safe, report.to_text()


# -- picking the engine from the job ------------------------------------------------------------------
def test_each_kind_of_job_is_recognised():
    import native_routing

    assert job_kind(dramatiq_charge()) == "dramatiq"
    assert job_kind(native_routing.celery_charge()) == "celery"
    assert job_kind(charge) == "function"
    assert job_kind(job(lambda: None)) == "harness"
    assert job_kind("native_routing:charge") is None and job_kind(None) is None


def test_a_native_job_runs_on_its_own_engine_unless_told_otherwise():
    import native_routing

    assert choose_engine(dramatiq_charge()) == "dramatiq"
    assert choose_engine(native_routing.celery_charge(), None, default="rq") == "celery"
    with pytest.raises(ConfigurationError, match="runs on the dramatiq engine, not 'celery'"):
        choose_engine(dramatiq_charge(), "celery")
    built = get_engine("dramatiq")
    assert choose_engine(dramatiq_charge(), built) is built
    assert choose_engine(job(lambda: None)) == "sim" and choose_engine(job(lambda: None), "rq") == "rq"


def test_a_plain_function_is_an_rq_job_only_when_said():
    assert choose_engine(charge, "rq") == "rq" and choose_engine(charge, None, default="rq") == "rq"
    with pytest.raises(ConfigurationError, match=r"RQ job only when you say so \(you said nothing\)"):
        choose_engine(charge)
    with pytest.raises(ConfigurationError, match="you said 'dramatiq'"):
        choose_engine(charge, "dramatiq")


@pytest.mark.parametrize("thing", [None, 42, str])
def test_what_is_not_a_job_is_refused_with_what_to_pass(thing: Any):
    with pytest.raises(ConfigurationError, match=r"not a job: pass a Scenario, a @harness\.job"):
        explore(thing, [7])


def test_asking_for_another_engine_names_the_one_a_native_job_needs():
    with pytest.raises(ConfigurationError, match=r"native\.charge runs on the dramatiq engine, not 'sim'"):
        explore(dramatiq_charge(), [7], engine="sim", configure=configure, targets=["native_routing"])
    with pytest.raises(ConfigurationError, match=r"Dramatiq actor native\.charge; it runs on the dramatiq engine"):
        get_engine("sim").register(dramatiq_charge())
    with pytest.raises(ConfigurationError, match="takes no engine options at enqueue"):
        get_engine("sim").enqueue(job(name="j")(lambda: None), retry=3)


def test_a_bare_job_keeps_its_enqueue_options_and_a_scenario_refuses_extra_ones():
    from rq import Retry

    from harness.explore.explorer import scenario_for

    built = scenario_for(charge, [7], enqueue_options={"retry": Retry(max=2)})
    assert built.name == "native_routing.charge" and built.target_modules == ["native_routing"]
    assert built.enqueue_options["retry"].max == 2
    with pytest.raises(ConfigurationError, match="carries its own"):
        scenario_for(built, enqueue_options={"retry": Retry(max=1)})


# -- what production code passes at enqueue --------------------------------------------------------------
def test_rq_retry_given_on_the_scenario_retries_the_job():
    from rq import Retry

    from harness.explore import Scenario

    runs: list[int] = []

    def body(n: int) -> None:
        runs.append(n)
        if len(runs) < 3:
            raise RuntimeError("down")

    BODY["body"] = body
    native, _ = native_job("rq")
    engine = get_engine("rq")
    scenario = Scenario(name="rq.retry", job=native, setup=lambda world: [5], targets=["native_jobs"],
                        enqueue_options={"retry": Retry(max=2, interval=[10, 20])})
    with engine.activate():
        engine.enqueue(scenario.job, 5, **scenario.enqueue_options)
        engine.run_until_quiet()
    assert runs == [5, 5, 5] and engine.dead() == []
    assert [e.detail["delay"] for e in engine.events if e.kind.value == "retry_scheduled"] == [10, 20]


def test_celery_apply_async_options_are_honoured():
    ran: list[float] = []
    native, _ = native_job("celery")
    engine = get_engine("celery")
    BODY["body"] = lambda *args: ran.append(engine.clock.time())
    start = engine.clock.time()
    with engine.activate():
        engine.enqueue(native, 1, countdown=30, queue="urgent", priority=3)
        assert [r.queue for r in engine.scheduled()] == ["urgent"]
        engine.run_until_quiet()
    assert ran == [start + 30]
    with pytest.raises(ConfigurationError, match="task_id"):
        engine.enqueue(native, 1, task_id="mine")


def test_dramatiq_message_options_are_checked_against_the_middleware():
    native, _ = native_job("dramatiq", max_retries=5)
    engine = get_engine("dramatiq")
    BODY["body"] = lambda *args: (_ for _ in ()).throw(RuntimeError("down"))
    with engine.activate():
        engine.enqueue(native, 1, max_retries=1)  # a per-message option, as send_with_options takes it
        engine.run_until_quiet()
    assert len([e for e in engine.events if e.kind.value == "started"]) == 2
    with pytest.raises(ConfigurationError, match="declared by no middleware"):
        engine.enqueue(native, 1, time_limit=10)


@pytest.mark.parametrize("name", NATIVE)
def test_native_sends_outside_an_engine_are_left_alone(name: str):
    # The routing of native enqueues applies only while an engine of that kind is current.
    import native_chains

    if name == "rq":
        before = native_chains.TEAM_QUEUE.count
        native_chains.TEAM_QUEUE.enqueue(native_chains.rq_fulfil_order, 1)
        assert native_chains.TEAM_QUEUE.count == before + 1
        native_chains.TEAM_QUEUE.empty()
    elif name == "dramatiq":
        actor = dramatiq_charge()
        actor.send(1)
        assert actor.broker.queues["default"].qsize() == 1
    else:
        import native_routing

        task = native_routing.celery_charge()
        assert task.delay(1).id  # published on the team's memory:// broker


@pytest.mark.parametrize("name", NATIVE)
def test_a_native_enqueue_with_keyword_arguments_is_refused_clearly(name: str):
    import native_chains

    engine = get_engine(name)
    with engine.activate(), pytest.raises(ConfigurationError, match="positional arguments only"):
        if name == "rq":
            native_chains.TEAM_QUEUE.enqueue(native_chains.rq_fulfil_order, order_id=1)
        elif name == "dramatiq":
            dramatiq_charge().send(order_id=1)
        else:
            import native_routing

            native_routing.celery_charge().delay(order_id=1)
    engine.close()


# -- the pytest fixture ------------------------------------------------------------------------------------
FIXTURE_TESTS = """
import pytest
from rq import Retry

import native_chains

OPTIONS = {"configure": native_chains.configure, "targets": ["native_chains"]}


def test_an_actor_is_explored_on_dramatiq(harness):
    report = harness.explore(native_chains.dramatiq_chain(False), [7], **OPTIONS)
    assert report.engine == "dramatiq" and report.found(text="email.send"), report.to_text()


def test_a_task_is_explored_on_celery(harness):
    harness.explore(native_chains.celery_chain(True), [7], **OPTIONS).assert_safe()


def test_a_plain_function_is_rq_when_said(harness, request):
    retry = {"retry": Retry(max=3, interval=10)}
    if request.config.getoption("--harness-engine") == "rq":
        harness.explore(native_chains.rq_chain(True), [7], enqueue_options=retry, **OPTIONS).assert_safe()
    else:
        with pytest.raises(pytest.UsageError, match="RQ job only when you say so"):
            harness.explore(native_chains.rq_chain(True), [7], enqueue_options=retry, **OPTIONS)
        harness.explore(native_chains.rq_chain(True), [7], engine="rq", enqueue_options=retry, **OPTIONS).assert_safe()
"""


@pytest.mark.parametrize("option", [(), ("--harness-engine", "rq")], ids=["default", "harness-engine-rq"])
def test_the_harness_fixture_takes_native_jobs(pytester: pytest.Pytester, option: tuple[str, ...]):
    import pathlib

    pytester.makepyfile(native_chains=(pathlib.Path(__file__).parent / "native_chains.py").read_text())
    pytester.makepyfile(test_native=FIXTURE_TESTS)
    pytester.runpytest_subprocess("-p", "no:cacheprovider", *option).assert_outcomes(passed=3)


# -- the command line ------------------------------------------------------------------------------------
def _cli(*args: str) -> Any:
    import pathlib
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "harness.cli", "explore", *args], cwd=pathlib.Path(__file__).parent,
                          capture_output=True, text=True, timeout=300)


def test_the_cli_explores_a_native_scenario_on_its_engine():
    unsafe = _cli("native_chains:DRAMATIQ_NAIVE", "--engine", "dramatiq")
    assert unsafe.returncode == 1 and "email.send" in unsafe.stdout, unsafe.stdout + unsafe.stderr
    safe = _cli("native_chains:RQ_SAFE", "--engine", "rq")
    assert safe.returncode == 0 and "SAFE" in safe.stdout, safe.stdout + safe.stderr


def test_the_cli_names_the_engine_a_native_scenario_needs():
    out = _cli("native_chains:DRAMATIQ_NAIVE")  # the CLI's default engine is sim
    assert out.returncode == 2 and out.stderr.startswith("harness: "), out.stdout + out.stderr
    assert "--engine dramatiq" in out.stderr and len(out.stderr.strip().splitlines()) == 1
