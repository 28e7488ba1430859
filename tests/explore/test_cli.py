"""`harness explore` and `harness demo` as a user runs them: exit codes 0/1/2, reports, replay."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent.parent


def harness(*args: str, cwd: pathlib.Path = HERE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def test_unsafe_scenario_exits_1_with_stories_and_reports(tmp_path):
    out = harness("explore", "planted:NAIVE", "--json", str(tmp_path / "r.json"), "--html", str(tmp_path / "r.html"))
    assert out.returncode == 1, out.stderr
    assert "UNSAFE" in out.stdout and "replay: harness explore planted:NAIVE" in out.stdout
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["schema"] == "harness.report/1" and data["verdict"] == "unsafe"
    assert "planted.py" in (tmp_path / "r.html").read_text()


def test_safe_scenario_exits_0():
    out = harness("explore", "planted:SAFE")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SAFE" in out.stdout


def test_replay_command_reproduces_the_violation():
    listed = harness("explore", "planted:NAIVE")
    replay = next(line.split("replay: ", 1)[1] for line in listed.stdout.splitlines() if "replay: " in line)
    args = replay.split(" ", 2)[2]  # drop "harness explore"
    out = subprocess.run(
        f"{sys.executable} -m harness.cli explore {args}", shell=True, cwd=HERE, capture_output=True, text=True
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "violation: payments.charge" in out.stdout and "UNSAFE" in out.stdout


def test_bad_usage_exits_2_with_one_line():
    for args in (["explore", "planted"], ["explore", "nowhere:THING"], ["explore", "planted:MISSING"],
                 ["explore", "planted:setup"], ["explore", "planted:NAIVE", "--replay", "not json"]):
        out = harness(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.startswith("harness: ") and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_demo_finds_the_double_charge_and_clears_the_idempotent_stage(tmp_path):
    out = harness("demo", "--json", str(tmp_path / "demo.json"), cwd=ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    reports = json.loads((tmp_path / "demo.json").read_text())
    verdicts = {r["scenario"]: r["verdict"] for r in reports}
    assert verdicts == {"shop.naive": "unsafe", "shop.split": "unsafe", "shop.idempotent": "safe"}
    naive = reports[0]["unsafe"]
    assert any("payments.charge" in v and "2 times" in v for u in naive for v in u["violations"])
    split = reports[1]["unsafe"]
    assert any("email.send" in v for u in split for v in u["violations"])


def test_a_replay_whose_fault_never_fires_is_stale_and_exits_2():
    plan = '[{"attempt":9,"fault":"crash","point":{"file":"planted.py","hit":1,"kind":"line","line":30}}]'
    out = harness("explore", "planted:NAIVE", "--replay", plan)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "verdict: STALE" in out.stdout and "never fired" in out.stderr


def test_a_reader_that_leaves_early_gets_no_traceback():
    done = subprocess.run(
        f"{sys.executable} -m harness.cli demo | head -1", shell=True, cwd=ROOT,
        capture_output=True, text=True, timeout=300,
    )
    assert done.stdout.startswith("Exploring") and "Traceback" not in done.stderr, done.stderr
