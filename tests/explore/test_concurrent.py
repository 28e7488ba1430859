"""The concurrency explorer: deterministic interleavings of deliveries running at once, the preemption
bound and its pruning, replay, and what the scheduler cannot control (a blocked delivery, a thread)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import concurrent_jobs as jobs
import pytest

from harness.errors import ConfigurationError
from harness.explore.concurrent import DeliveryBlocked, Interleavings, explore_concurrent

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_a_read_modify_write_loses_an_update_with_one_preemption():
    assert explore_concurrent(jobs.COUNTER, preemptions=0).safe
    report = explore_concurrent(jobs.COUNTER, preemptions=1)
    [first, *_] = report.unsafe
    assert first.violations == ["2 deliveries counted 1 visits: an update was lost"]
    assert first.preemptions == 1
    assert first.story().startswith("delivery A called no service and was stopped before "
                                    "`tests/explore/concurrent_jobs.py:")


def test_three_deliveries_lose_updates_too():
    report = explore_concurrent(jobs.COUNTER, deliveries=3, preemptions=1)
    assert any("3 deliveries counted" in v for u in report.unsafe for v in u.violations)


def test_the_same_seed_gives_the_same_report():
    first = explore_concurrent(jobs.COUNTER, preemptions=2, samples=5, seed=4)
    second = explore_concurrent(jobs.COUNTER, preemptions=2, samples=5, seed=4)
    strip = lambda r: {k: v for k, v in r.to_dict().items() if k != "duration_s"}  # noqa: E731
    assert json.dumps(strip(first), sort_keys=True) == json.dumps(strip(second), sort_keys=True)


def test_pruning_skips_switches_before_steps_that_touch_nothing_and_finds_the_same_races():
    pruned = explore_concurrent(jobs.COUNTER, preemptions=2)
    full = explore_concurrent(jobs.COUNTER, preemptions=2, prune=False)
    assert pruned.pruned > 0 and full.pruned == 0
    assert pruned.interleavings_run < full.interleavings_run
    assert {tuple(u.violations) for u in pruned.unsafe} == {tuple(u.violations) for u in full.unsafe}


def test_hypothesis_finds_a_race_beyond_the_bound_and_shrinks_it_to_one_switch():
    report = explore_concurrent(jobs.COUNTER, preemptions=0, examples=30)
    [found] = report.unsafe
    assert found.preemptions == 1 and len(found.switches) == 1
    assert report.beyond == report.interleavings_run - 1  # all but the one run of the bound
    again = explore_concurrent(jobs.COUNTER, preemptions=0, examples=30)
    assert again.to_dict()["unsafe"] == report.to_dict()["unsafe"]  # derandomized: the same every time
    with pytest.raises(ConfigurationError, match="examples must be a whole number"):
        explore_concurrent(jobs.COUNTER, examples=-1)


def test_an_interleaving_replays_from_its_schedule():
    report = explore_concurrent(jobs.COUNTER, preemptions=1)
    schedule = report.unsafe[0].schedule_json()
    with Interleavings(jobs.COUNTER) as explorer:
        again = explorer.replay(schedule)
        assert again.violations == report.unsafe[0].violations
        assert explorer.replay('{"deliveries": 2, "switches": []}').violations == []


def test_a_delivery_blocked_on_a_lock_the_other_holds_is_an_error_naming_the_line():
    with pytest.raises(DeliveryBlocked, match=r"delivery B did not reach its next line within 0.5 s after "
                                              r"`tests/explore/concurrent_jobs.py:\d+`: it is blocked outside"):
        explore_concurrent(jobs.LOCKED_COUNTER, step_timeout=0.5)
    assert not jobs.LOCK.locked()  # the abandoned delivery let go of it


def test_a_thread_a_delivery_starts_is_reported_as_outside_the_scheduler():
    report = explore_concurrent(jobs.LEAVES_A_THREAD, preemptions=0)
    assert report.warnings == ["a delivery started thread lingerer, which ran outside the scheduler's control"]


@pytest.mark.parametrize("options, message", [
    ({"deliveries": 1}, "deliveries must be a whole number from 2 to 8"),
    ({"deliveries": True}, "deliveries must be a whole number from 2 to 8"),
    ({"preemptions": -1}, "preemptions must be a whole number, 0 or more"),
    ({"samples": 1.5}, "samples must be a whole number, 0 or more"),
    ({"step_timeout": 0}, "step_timeout must be a positive number"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ConfigurationError, match=message):
        explore_concurrent(jobs.COUNTER, **options)


@pytest.mark.parametrize("schedule, message", [
    ("not json", "not a schedule: not JSON"),
    ('{"switches": 3}', "a schedule is"),
    ('{"deliveries": 3, "switches": []}', "the schedule is for 3 deliveries"),
    ('{"switches": [[1, 2]]}', "each switch is \\[step, delivery\\] with a delivery below 2"),
    ('{"switches": [[-1, 0]]}', "each switch is"),
])
def test_bad_schedules_are_refused_with_what_is_expected(schedule, message):
    with Interleavings(jobs.COUNTER) as explorer, pytest.raises(ConfigurationError, match=message):
        explorer.replay(schedule)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness.cli", "explore", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_the_cli_explores_deliveries_and_replays_the_schedule_it_printed(tmp_path):
    report = run_cli("tests.explore.concurrent_jobs:COUNTER", "--deliveries", "2", "--preemptions", "1",
                     "--json", str(tmp_path / "r.json"))
    assert report.returncode == 1, report.stderr
    assert "2 deliveries at once, on sim (seed 0): UNSAFE" in report.stdout
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == "UNSAFE"
    command = next(line for line in report.stdout.splitlines() if "replay: harness explore" in line)
    schedule = command.split("--schedule ", 1)[1].strip("'")
    replayed = run_cli("tests.explore.concurrent_jobs:COUNTER", "--deliveries", "2", "--schedule", schedule)
    assert replayed.returncode == 1 and "an update was lost" in replayed.stdout
    safe = run_cli("tests.explore.concurrent_jobs:COUNTER", "--deliveries", "2", "--preemptions", "0")
    assert safe.returncode == 0 and ": SAFE" in safe.stdout


@pytest.mark.parametrize("args, message", [
    (["--deliveries", "1"], "expected a number of deliveries, from 2 to 8"),
    (["--schedule", "{}"], "go with --deliveries N"),
    (["--deliveries", "2", "--depth", "2"], "--deliveries explores interleavings"),
    (["--deliveries", "2", "--html", "x.html"], "--deliveries explores interleavings"),
    (["--deliveries", "2", "--schedule", "nope"], "not a schedule: not JSON"),
])
def test_the_cli_refuses_bad_concurrent_options(args, message):
    result = run_cli("tests.explore.concurrent_jobs:COUNTER", *args)
    assert result.returncode == 2 and message in result.stderr, result.stderr
