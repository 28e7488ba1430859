"""Parallel exploration: plans spread over worker processes, the report identical to a serial run's."""

from __future__ import annotations

import dataclasses
import json
import os

import planted
import pytest

from harness.errors import ConfigurationError, ScenarioError
from harness.explore import Explorer
from scenarios.shop.scenarios import SPLIT


def _report(scenario, *, jobs: int, depth: int = 2) -> str:
    explorer = Explorer(scenario)
    try:
        data = explorer.explore(depth=depth, jobs=jobs).to_dict()
    finally:
        explorer.close()
    data.pop("duration_s")
    return json.dumps(data, sort_keys=True)


def test_two_workers_give_the_serial_report_byte_for_byte_on_the_shop():
    assert _report(SPLIT, jobs=2) == _report(SPLIT, jobs=1)


def test_workers_of_a_scenario_without_external_state_need_no_isolation():
    assert _report(planted.NAIVE, jobs=3) == _report(planted.NAIVE, jobs=1)


def test_every_worker_is_isolated_with_its_own_number(tmp_path):
    seen = tmp_path / "workers"
    seen.mkdir()

    def isolate(worker: int) -> None:
        (seen / str(worker)).write_text("")

    scenario = dataclasses.replace(planted.NAIVE, isolate=isolate)
    _report(scenario, jobs=3)  # the exploring process is one of the three: two workers are forked
    assert sorted(p.name for p in seen.iterdir()) == ["1", "2"]


def test_the_exploring_process_runs_a_share_of_the_plans_beside_its_workers(tmp_path, monkeypatch):
    from harness.explore.runner import RunSession

    ran = tmp_path / "pids"
    run = RunSession.run

    def counted(self, plan, **options):
        with open(ran, "a") as out:  # one short append per plan: whole lines, whichever process writes
            out.write(f"{os.getpid()}\n")
        return run(self, plan, **options)

    monkeypatch.setattr(RunSession, "run", counted)  # forked workers inherit the patch
    explorer = Explorer(planted.NAIVE)
    try:
        report = explorer.explore(depth=2, jobs=2)
    finally:
        explorer.close()
    pids = ran.read_text().split()
    here = pids.count(str(os.getpid()))
    assert len(set(pids)) == 2, "one forked worker for jobs=2, and this process"
    assert 0 < here < len(pids)
    assert len(pids) >= report.plans_run - 1  # every plan ran somewhere (the clean runs come on top)


def test_a_worker_that_cannot_isolate_itself_stops_the_exploration_with_the_reason():
    def isolate(worker: int) -> None:
        raise RuntimeError("no database server")

    scenario = dataclasses.replace(planted.NAIVE, isolate=isolate)
    with pytest.raises(ScenarioError, match=r"isolate of scenario 'planted.naive' raised RuntimeError"):
        _report(scenario, jobs=2)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_failing_worker_never_leaves_the_pool_hanging_at_its_end():
    """A worker that fails every chunk at once is often sending a result when the pool is torn down;
    killed then, it would keep the result queue's lock and the exploration would never return. Repeated,
    since the race is one of timing: before the fix, one run in about a hundred hung here."""

    def isolate(worker: int) -> None:
        raise RuntimeError("no database server")

    scenario = dataclasses.replace(planted.NAIVE, isolate=isolate)
    for _ in range(150):
        explorer = Explorer(scenario)
        try:
            with pytest.raises(ScenarioError, match="no database server"):
                explorer.explore(depth=2, jobs=2)
        finally:
            explorer.close()


def _in_workers(monkeypatch, action) -> None:
    """Call `action()` before every plan a forked worker runs (not its clean run, the empty plan)."""
    from harness.explore.runner import RunSession

    parent = os.getpid()
    run = RunSession.run

    def acting(self, plan, **options):
        if os.getpid() != parent and plan:
            action()
        return run(self, plan, **options)

    monkeypatch.setattr(RunSession, "run", acting)  # forked workers inherit the patch


@pytest.mark.timeout(60)
def test_a_worker_killed_with_plans_in_hand_stops_the_exploration_with_the_reason(monkeypatch):
    import signal

    _in_workers(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGKILL))
    explorer = Explorer(planted.NAIVE)
    try:
        with pytest.raises(ScenarioError, match=r"worker 1 of the exploration ended \(exit code -9\) with plans"):
            explorer.explore(depth=2, jobs=2)
    finally:
        explorer.close()


@pytest.mark.timeout(60)
def test_a_thread_a_job_left_running_in_a_worker_does_not_keep_the_exploration_waiting(monkeypatch):
    import threading
    import time

    # A non-daemon thread: a process waits for it at its exit.
    _in_workers(monkeypatch, lambda: threading.Thread(target=time.sleep, args=(3600,), name="left-behind").start())
    assert _report(planted.NAIVE, jobs=2)  # returns, its worker ended past the thread


def test_the_workers_are_gone_when_the_exploration_returns():
    import multiprocessing

    explorer = Explorer(planted.NAIVE)
    try:
        explorer.explore(depth=2, jobs=3)
    finally:
        explorer.close()
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("jobs", [0, -1, 1.5, True])
def test_jobs_must_be_a_whole_number_of_processes(jobs):
    explorer = Explorer(planted.NAIVE)
    try:
        with pytest.raises(ConfigurationError, match="jobs must be a whole number"):
            explorer.explore(jobs=jobs)
    finally:
        explorer.close()


def test_the_cli_runs_in_parallel_by_default_only_a_scenario_that_isolates_its_workers():
    import argparse

    from harness.cli import _jobs

    assert _jobs(argparse.Namespace(jobs=None), planted.NAIVE) == 1
    assert _jobs(argparse.Namespace(jobs=None), SPLIT) >= 1
    assert _jobs(argparse.Namespace(jobs=None), SPLIT) == (__import__("os").cpu_count() or 1)
    assert _jobs(argparse.Namespace(jobs=3), planted.NAIVE) == 3


def test_the_cli_reports_the_same_with_workers(tmp_path):
    import subprocess
    import sys

    outputs = []
    for jobs in ("1", "2"):
        path = tmp_path / f"r{jobs}.json"
        run = subprocess.run(
            [sys.executable, "-m", "harness.cli", "explore", "scenarios.shop.scenarios:NAIVE", "--depth", "2",
             "--jobs", jobs, "--json", str(path), "--no-progress"],
            capture_output=True, text=True, timeout=300,
        )
        assert run.returncode == 1, run.stderr
        data = json.loads(path.read_text())
        data.pop("duration_s")
        outputs.append(data)
    assert outputs[0] == outputs[1]


def test_workers_end_cleanly_and_never_run_the_parents_code(tmp_path):
    """A worker keeps the session's guards on for its whole life (they refuse `os._exit`), so it must turn
    them off before its own last `os._exit`; a worker whose exit was refused would go on running the code
    of the process that forked it, and print what only that one prints."""
    import os
    import pathlib
    import subprocess
    import sys

    script = tmp_path / "explore_twice.py"
    script.write_text(
        "from harness.explore import Explorer\n"
        "from scenarios.shop.scenarios import SPLIT\n"
        "explorer = Explorer(SPLIT)\n"
        "report = explorer.explore(depth=2, jobs=2)\n"
        "explorer.close()\n"
        "print('explored', report.plans_run)\n"
    )
    root = pathlib.Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("explored") == 1, done.stdout
    assert "Traceback" not in done.stderr and "ProcessExit" not in done.stderr, done.stderr


def test_ctrl_c_stops_the_workers_quietly(tmp_path):
    """Ctrl-C reaches the whole process group: the exploring process answers it and stops its workers,
    which say nothing of their own (each printed a traceback of its interrupted plan before)."""
    import pathlib
    import signal
    import subprocess
    import sys
    import time

    running = tmp_path / "worker-running"
    script = tmp_path / "interrupted.py"
    script.write_text(
        "import os, time\n"
        "import planted\n"
        "from harness.explore import Explorer\n"
        "from harness.explore.runner import RunSession\n"
        "parent, run = os.getpid(), RunSession.run\n"
        "def slow_in_a_worker(self, plan, **options):\n"
        "    if os.getpid() != parent and plan:\n"
        f"        open({str(running)!r}, 'w').close()\n"
        "        time.sleep(60)\n"
        "    return run(self, plan, **options)\n"
        "RunSession.run = slow_in_a_worker\n"
        "explorer = Explorer(planted.NAIVE)\n"
        "try:\n"
        "    explorer.explore(depth=2, jobs=2)\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted')\n"
        "finally:\n"
        "    explorer.close()\n"
    )
    root = pathlib.Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(root), str(root / "tests" / "explore")])
    process = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=root, env={**os.environ, "PYTHONPATH": path}, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not running.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.exists(), process.communicate(timeout=10)
        os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: every process of the group
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert out.strip() == "interrupted", (out, err)
    assert "Traceback" not in err and "harness-plans" not in err, err
