"""Verdicts are earned: the explorer refuses to judge a job it did not exercise, and answers a user's
mistakes with a clear error instead of a verdict, on every engine."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import untrusted

from harness.errors import CleanRunError, ConfigurationError, JobExitError, ScenarioError
from harness.explore import explore, runner

HERE = pathlib.Path(__file__).parent
ENGINES = ["sim", "dramatiq", "rq", "celery"]


def harness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], cwd=HERE, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("engine", ENGINES)
def test_a_clean_run_that_fails_is_no_verdict_and_says_what_it_did(engine):
    with pytest.raises(CleanRunError) as info:
        explore(untrusted.UNCONFIGURED, engine=engine)
    message = str(info.value)
    assert "the clean run of scenario 'untrusted.unconfigured' failed" in message
    assert "Connection refused" in message
    assert "untrusted.py:" in message, "the job's own line that failed"
    assert "configure" in message


@pytest.mark.parametrize("engine", ENGINES)
def test_a_job_that_reaches_no_service_gets_no_verdict_unless_it_says_so(engine):
    with pytest.raises(CleanRunError, match="reached no fake service"):
        explore(untrusted.CALLS_NOTHING, engine=engine)
    assert explore(untrusted.CALLS_NOTHING_SAID, engine=engine).safe


@pytest.mark.parametrize("engine", ENGINES)
def test_a_typo_in_targets_is_bad_usage_on_every_engine(engine):
    with pytest.raises(ConfigurationError, match="cannot import target module 'untrustd'"):
        explore(untrusted.TARGET_TYPO, engine=engine)


def test_an_invariant_that_answers_a_number_is_a_broken_invariant():
    with pytest.raises(ScenarioError, match=r"invariant answers_a_number .* returned 42; an invariant returns None"):
        explore(untrusted.NUMBER_INVARIANT)


def test_an_assert_in_an_invariant_is_its_violation_sentence():
    report = explore(untrusted.ASSERT_INVARIANT)
    assert not report.safe
    assert any("expected one charge, found 2" in v for u in report.unsafe for v in u.violations)
    bare = explore(untrusted.BARE_ASSERT_INVARIANT)
    sentences = {v for u in bare.unsafe for v in u.violations}
    said = "invariant asserts_without_message failed (an assert with no message) at "
    assert any(v.startswith(said) for v in sentences)


def test_a_configure_that_raises_is_a_scenario_error():
    with pytest.raises(ScenarioError, match=r"configure of scenario 'untrusted.broken_configure' raised RuntimeError"):
        explore(untrusted.BROKEN_CONFIGURE)


@pytest.mark.parametrize(
    ("ref", "says"),
    [
        ("untrusted:UNCONFIGURED", "harness: the clean run of scenario 'untrusted.unconfigured' failed"),
        ("untrusted:CALLS_NOTHING", "reached no fake service"),
        ("untrusted:NUMBER_INVARIANT", "returned 42"),
        ("untrusted:BROKEN_CONFIGURE", "configure of scenario"),
    ],
)
def test_the_cli_answers_each_mistake_with_one_line_and_exit_2(ref, says):
    out = harness("explore", ref)
    assert out.returncode == 2, out.stdout + out.stderr
    assert says in out.stderr
    assert "Traceback" not in out.stderr
    assert "SAFE" not in out.stdout


@pytest.mark.parametrize("engine", ENGINES)
def test_the_cli_refuses_a_target_typo_on_every_engine(engine):
    out = harness("explore", "untrusted:TARGET_TYPO", "--engine", engine)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "cannot import target module 'untrustd'" in out.stderr
    assert "UNSAFE" not in out.stdout and "Traceback" not in out.stderr


# A busy job here spins in C (CHURNS): a loop of bare Python lines can fill the recording budget before the
# time limit on a fast machine, and is stopped for that instead (the budget has its own test below).
@pytest.mark.parametrize("scenario", [untrusted.SLEEPS, untrusted.CHURNS, untrusted.WAITS], ids=lambda s: s.name)
def test_a_clean_run_that_hangs_is_stopped_and_named(scenario):
    with pytest.raises(CleanRunError) as info:
        explore(scenario)
    message = str(info.value)
    assert f"the clean run of scenario {scenario.name!r} hung" in message
    assert "still running after 0.5 s of wall time at " in message and "untrusted.py:" in message


def test_a_loop_without_end_is_stopped_by_its_recording_budget_before_it_fills_memory(monkeypatch):
    # No time limit at all: only the budget on recorded events can stop the clean run (kept small here).
    monkeypatch.setattr(runner, "MAX_RECORDED_EVENTS", 50_000)
    with pytest.raises(CleanRunError) as info:
        explore(untrusted.SPINS_UNLIMITED)
    message = str(info.value)
    assert "ran more than 50,000 lines of its own code without finishing at " in message
    assert "untrusted.py:" in message


@pytest.mark.parametrize("engine", ENGINES)
def test_a_plan_that_makes_an_attempt_hang_is_a_finding_and_the_exploration_goes_on(engine):
    report = explore(untrusted.HANGS_ON_A_503, engine=engine)
    hung = report.found(text="was still running after 0.5 s")
    assert hung, report.to_text()
    assert all(step.fault == "503" for u in hung for step in u.plan)
    assert report.plans_run > len(hung) + 1, "the other plans still ran"


def test_the_time_limit_is_set_per_scenario_and_overridden_by_the_caller():
    with pytest.raises(ConfigurationError, match="positive number of seconds"):
        explore(untrusted.SLEEPS, attempt_timeout=-1)
    with pytest.raises(CleanRunError, match=r"still running after 0\.2 s"):
        explore(untrusted.SLEEPS, attempt_timeout=0.2)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize(
    ("scenario", "says"),
    [(untrusted.EXITS, "called os._exit(3)"), (untrusted.SYS_EXIT, "raised SystemExit(4)")],
    ids=["os._exit", "sys.exit"],
)
def test_a_job_that_ends_the_process_is_refused_with_its_line(scenario, says, engine):
    with pytest.raises(JobExitError) as info:
        explore(scenario, engine=engine)
    assert says in str(info.value)
    assert "untrusted.py:" in str(info.value)


@pytest.mark.parametrize("engine", ENGINES)
def test_calls_made_by_a_thread_after_the_attempt_and_threads_left_running_are_said(engine):
    report = explore(untrusted.THREADED, engine=engine)
    text = report.to_text()
    assert any("left 1 thread(s) running (charger)" in w for w in report.warnings), text
    assert any("were made while no attempt ran (payments.charge" in w for w in report.warnings), text
    assert "warning: " in text and report.to_dict()["warnings"] == report.warnings


def test_a_module_level_connection_without_reset_is_warned_about():
    report = explore(untrusted.SQLITE_NO_RESET)
    assert any("untrusted.DB (Connection)" in w and "no `reset`" in w for w in report.warnings), report.warnings
    with_reset = explore(untrusted._scenario("untrusted.sqlite_reset", job=untrusted.books_in_sqlite,
                                             reset=untrusted.DB.rollback))
    assert not any("no `reset`" in w for w in with_reset.warnings)


def test_the_cli_stops_a_hanging_clean_run_and_does_not_wait_for_threads_a_job_left():
    hung = harness("explore", "untrusted:SLEEPS")
    assert hung.returncode == 2 and "hung" in hung.stderr and "Traceback" not in hung.stderr
    override = harness("explore", "untrusted:CHURNS", "--attempt-timeout", "0.3")
    assert override.returncode == 2 and "still running after 0.3 s" in override.stderr
    lingering = harness("explore", "untrusted:LINGERS", "--no-progress")
    assert lingering.returncode in (0, 1), lingering.stderr
    assert "left 1 thread(s) running (lingerer)" in lingering.stderr + lingering.stdout
    exits = harness("explore", "untrusted:EXITS")
    assert exits.returncode == 2 and "os._exit(3)" in exits.stderr
