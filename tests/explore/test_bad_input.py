"""Bad input gets one clear line and exit 2 (the CLI) or a ConfigurationError (Python), never a traceback,
a hang, or a verdict about nothing."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import planted
import pytest
import untrusted

from harness.errors import ConfigurationError
from harness.explore import Explorer, explore
from harness.explore.stories import tell
from harness.injection.plans import FaultStep

HERE = pathlib.Path(__file__).parent


def harness(*args: str, cwd: pathlib.Path = HERE) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


def _one_clean_line(out: subprocess.CompletedProcess[str], says: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("harness: ")]
    assert lines and says in lines[-1], out.stderr


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("raise RuntimeError('no settings')\n", "importing 'broken' raised RuntimeError: no settings"),
        ("def oops(:\n", "cannot import 'broken': SyntaxError"),
        ("import sys\nsys.exit(3)\n", "importing 'broken' raised SystemExit"),
        ("import not_a_module_anywhere\n", "cannot import 'broken'"),
    ],
    ids=["raises", "syntax", "exits", "imports"],
)
def test_a_scenario_module_that_cannot_be_imported_is_one_line(tmp_path, source, says):
    (tmp_path / "broken.py").write_text(source)
    _one_clean_line(harness("explore", "broken:SCENARIO", cwd=tmp_path), says)


def test_an_unwritable_report_path_is_refused_before_exploring(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for option in ("--json", "--html"):
        out = harness("explore", "planted:NAIVE", option, str(blocker / "report"))
        _one_clean_line(out, f"{option} {blocker / 'report'}: cannot write there")
        assert "UNSAFE" not in out.stdout, "refused before the exploration, not after"
    out = harness("explore", "planted:NAIVE", "--json", str(tmp_path))
    _one_clean_line(out, "is a directory")
    demo = harness("demo", "--json", str(blocker / "x.json"))
    _one_clean_line(demo, "cannot write there")


@pytest.mark.parametrize(
    ("plan", "says"),
    [
        ('[{"attempt":1,"point":{"kind":"call","service":"payments","operation":"charge","call":1,'
         '"phase":"before"},"fault":"boom"}]', "unknown fault 'boom' at a call point"),
        ('[{"attempt":1,"point":{"kind":"line","file":"planted.py","line":29,"hit":1},"fault":"503"}]',
         "unknown fault '503' at a line point"),
        ("[" * 30_000 + "]" * 30_000, "nested too deeply"),
        ("{}", "a plan is a JSON list of steps"),
        ("[1]", "each step of a plan is a JSON object"),
        ("garbage", "not JSON"),
        ('[{"attempt":0,"point":{"kind":"line","file":"planted.py","line":29},"fault":"crash"}]',
         "attempt must be a whole number, at least 1"),
    ],
    ids=["call-fault", "line-fault", "nested", "object", "number", "garbage", "attempt-0"],
)
def test_a_bad_replay_plan_is_one_line(plan, says):
    _one_clean_line(harness("explore", "planted:NAIVE", "--replay", plan), says)


def test_an_empty_plan_proves_nothing_and_is_not_called_safe():
    out = harness("explore", "planted:SAFE", "--replay", "[]")
    assert out.returncode == 2, out.stdout
    assert "verdict: STALE" in out.stdout and "SAFE" not in out.stdout.replace("STALE", "")


def test_a_job_raising_keyboard_interrupt_ends_with_one_line():
    _one_clean_line(harness("explore", "untrusted:INTERRUPTED"), "interrupted; no verdict")


@pytest.mark.parametrize("target", [None, 42, "planted", "planted:NOPE", "planted:charge_then_email"])
def test_the_python_api_refuses_what_is_not_a_scenario(target):
    with pytest.raises(ConfigurationError):
        explore(target)  # type: ignore[arg-type]


def test_the_python_api_takes_a_module_attr_reference_as_the_cli_does():
    assert not explore("planted:NAIVE", seed=3).safe


@pytest.mark.parametrize("plan", ["garbage", [1], 5, [{"attempt": 1}], "{}"])
def test_replay_refuses_what_is_not_a_plan(plan):
    explorer = Explorer(planted.NAIVE)
    try:
        with pytest.raises(ConfigurationError):
            explorer.replay(plan)
    finally:
        explorer.close()


def test_replay_takes_a_reports_plan_in_any_of_its_forms():
    report = explore(planted.NAIVE, seed=3)
    entry = report.to_dict()["unsafe"][0]
    explorer = Explorer(planted.NAIVE, seed=3)
    try:
        for form in (report.unsafe[0].plan, entry["plan"], json.dumps(entry["plan"])):
            assert explorer.replay(form).violations == entry["violations"]
    finally:
        explorer.close()


def test_a_crash_in_a_helper_is_told_from_the_jobs_own_line_down():
    report = explore(untrusted.LAYERED)
    helper_line = next(n for n, text in enumerate(_source(), 1) if "return result.charge_id" in text)
    job_line = next(n for n, text in enumerate(_source(), 1) if "charge_id = _post_charge(order_id)" in text)
    [unsafe] = [u for u in report.unsafe if isinstance(u.plan[0], FaultStep)
                and getattr(u.plan[0].point, "line", None) == helper_line]
    expected = f"crashed at `tests/explore/untrusted.py:{job_line}` → `tests/explore/untrusted.py:{helper_line}`"
    assert expected.replace("tests/explore/", "") in unsafe.story.replace("tests/explore/", ""), unsafe.story
    assert "just after `payments.charge` returned" in unsafe.story
    again = Explorer(untrusted.LAYERED)
    try:
        assert tell(unsafe.plan, again.replay(unsafe.plan)) == unsafe.story
    finally:
        again.close()


def _source() -> list[str]:
    return (HERE / "untrusted.py").read_text().splitlines()
