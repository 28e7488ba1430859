"""The explorer finds a planted double charge, shrinks it, replays it, and clears the idempotent twin."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import planted
import pytest

from harness.explore import Explorer, explore
from harness.injection.plans import CallPoint, FaultStep, plan_from_json


@pytest.fixture(scope="module")
def naive_report():
    return explore(planted.NAIVE, seed=3)


def test_planted_double_charge_is_found(naive_report):
    assert naive_report.verdict == "unsafe"
    charges = naive_report.found(text="payments.charge")
    assert charges, naive_report.to_text()
    # Every violating plan is a single fault: depth 1 plans are already minimal.
    assert all(len(u.plan) == 1 for u in naive_report.unsafe)
    stories = " ".join(u.story for u in charges)
    assert "email.send" in stories and "payments.charge" in " ".join(charges[0].violations)


def test_a_crash_after_the_charge_is_reported_at_its_line(naive_report):
    crash_lines = [u for u in naive_report.unsafe if isinstance(u.plan[0], FaultStep) and u.plan[0].fault == "crash"]
    assert crash_lines, naive_report.to_text()
    assert all(u.plan[0].point.file.endswith("planted.py") for u in crash_lines)
    assert any("just after `payments.charge` returned" in u.story for u in crash_lines)


def test_the_idempotent_twin_is_safe():
    report = explore(planted.SAFE, seed=3)
    assert report.verdict == "safe", report.to_text()
    assert report.points["line"] > 0 and report.points["call"] > 0
    report.assert_safe()


def test_unsafe_report_fails_assert_safe_with_the_story(naive_report):
    with pytest.raises(AssertionError) as info:
        naive_report.assert_safe()
    assert "replay: harness explore" in str(info.value)


def test_replay_reproduces_the_violation(naive_report):
    unsafe = naive_report.unsafe[0]
    explorer = Explorer(planted.NAIVE, seed=3)
    try:
        again = explorer.replay(unsafe.plan)
    finally:
        explorer.close()
    assert again.violations == unsafe.violations


def test_json_report_follows_the_schema(naive_report):
    data = json.loads(naive_report.to_json())
    assert data["schema"] == "harness.report/1"
    for key in ("scenario", "engine", "seed", "points", "plans_run", "plans_pruned", "duration_s", "verdict"):
        assert key in data
    first = data["unsafe"][0]
    assert set(first) >= {"plan", "violations", "replay"}
    assert plan_from_json(first["plan"]) == naive_report.unsafe[0].plan


def test_same_seed_same_report():
    first = explore(planted.NAIVE, seed=11).to_dict()
    second = explore(planted.NAIVE, seed=11).to_dict()
    first.pop("duration_s"), second.pop("duration_s")
    assert first == second


def test_depth_two_runs_more_plans_and_reports_only_minimal_ones():
    one = explore(planted.SAFE, seed=1, depth=1)
    two = explore(planted.SAFE, seed=1, depth=2)
    assert two.plans_run > one.plans_run
    assert two.verdict == "safe", two.to_text()


def test_hypothesis_search_shrinks_to_one_fault():
    report = explore(planted.NAIVE, seed=5, depth=0, examples=60)
    assert report.verdict == "unsafe"
    assert min(len(u.plan) for u in report.unsafe) == 1


def test_html_report_marks_unsafe_lines(naive_report):
    page = naive_report.to_html()
    assert "class='unsafe'" in page and "planted.py" in page


def test_call_fault_plans_name_the_service(naive_report):
    email_faults = [
        u
        for u in naive_report.unsafe
        if isinstance(getattr(u.plan[0], "point", None), CallPoint) and u.plan[0].point.service == "email"
    ]
    assert email_faults, naive_report.to_text()


@pytest.mark.parametrize("engine", ["dramatiq", "rq", "celery"])
def test_real_engines_deterministic_mode_find_the_bug_and_clear_the_twin(engine):
    naive = explore(planted.NAIVE, engine=engine, seed=3)
    assert naive.engine == engine and naive.verdict == "unsafe"
    assert naive.found(text="payments.charge"), naive.to_text()
    safe = explore(planted.SAFE, engine=engine, seed=3)
    assert safe.verdict == "safe", safe.to_text()


def test_pruning_with_a_fingerprint_keeps_the_verdicts():
    import dataclasses

    fingerprinted = dataclasses.replace(planted.NAIVE, fingerprint=lambda world: len(world.services.effects()))
    pruned = explore(fingerprinted, seed=2)
    full = explore(fingerprinted, seed=2, prune=False)
    assert pruned.plans_pruned > 0 and full.plans_pruned == 0
    assert pruned.plans_run + pruned.plans_pruned == full.plans_run
    assert pruned.verdict == full.verdict == "unsafe"

    def kinds(report):
        return {(u.plan[0].fault, getattr(getattr(u.plan[0], "point", None), "service", "line")) for u in report.unsafe}

    assert kinds(pruned) == kinds(full)


def test_routing_matrix_flags_a_job_with_no_error_reporting():
    report = explore(planted.SAFE, seed=1, routing=True)
    rows = {row["fault"]: row for row in report.routing}
    assert rows["transient 503"]["ok"] and rows["transient 503"]["retried"]
    assert not rows["permanent"]["ok"]  # nothing reports the bug to the error catcher
    assert report.verdict == "unsafe"


def test_exploring_on_rq_prints_no_traceback_per_injected_failure():
    """Outside pytest (whose log capture hides it), RQ's worker logs each failed attempt with a traceback
    through handlers of its own on `rq.worker`; the explorer mutes those too."""
    pytest.importorskip("rq")
    code = "import planted; from harness.explore import explore; print(explore(planted.NAIVE, engine='rq').verdict)"
    here = pathlib.Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.strip() == "unsafe", done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[:2000]


def test_plans_that_hypothesis_ran_are_counted():
    exhaustive = explore(planted.SAFE, seed=2, depth=1)
    searched = explore(planted.SAFE, seed=2, depth=1, examples=25)
    assert searched.verdict == "safe", searched.to_text()
    # a safe job: Hypothesis finds nothing and runs its examples in full (fewer only if it ran out of plans)
    assert searched.plans_run - exhaustive.plans_run >= 10, (exhaustive.plans_run, searched.plans_run)


@pytest.mark.skipif(sys.version_info < (3, 12), reason="block recording is a sys.monitoring mode (3.12+)")
@pytest.mark.parametrize("scenario", ["NAIVE", "SAFE"])
def test_block_recording_gives_the_same_report_as_line_events(scenario, monkeypatch):
    from harness.injection import _blocks

    if not _blocks.BLOCKS_SUPPORTED:
        pytest.skip(f"block recording models 3.12 and 3.13, not {sys.version_info[:2]}")
    expanded = []
    real_expand = _blocks.expand
    monkeypatch.setattr(_blocks, "expand", lambda raw, maps: expanded.append(raw[:]) or real_expand(raw, maps))
    reports = {}
    for setting in ("0", "1"):
        monkeypatch.setenv("HARNESS_BLOCK_RECORDING", setting)
        expanded.clear()
        report = explore(getattr(planted, scenario), seed=2, depth=2).to_dict()
        report.pop("duration_s")
        reports[setting] = report
        block_entries = sum(len(entry) != 2 for raw in expanded for entry in raw)
        assert (block_entries > 0) == (setting == "1")
    assert reports["1"] == reports["0"]


def test_the_replay_command_names_where_the_scenario_is_now(monkeypatch):
    """The module:attr a report's replay command names is remembered per scenario, and looked for again
    once the module no longer holds the scenario under that name."""
    import dataclasses
    import types

    from harness.explore.report import scenario_ref

    scenario = dataclasses.replace(planted.NAIVE)  # held by the modules below only
    first = types.ModuleType("first_home")
    first.SCENARIO = scenario
    monkeypatch.setitem(sys.modules, "first_home", first)
    assert scenario_ref(scenario) == "first_home:SCENARIO"
    assert scenario_ref(scenario) == "first_home:SCENARIO"
    del first.SCENARIO
    second = types.ModuleType("second_home")
    second.MOVED = scenario
    monkeypatch.setitem(sys.modules, "second_home", second)
    assert scenario_ref(scenario) == "second_home:MOVED"
    del second.MOVED
    assert scenario_ref(scenario) == scenario.name  # nowhere to import it from
