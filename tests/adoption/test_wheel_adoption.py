"""Another project adopts the harness from its wheel alone.

The wheel is built from a copy of this source tree and installed, with one real engine's extra and
pytest, in a fresh virtual environment outside the repository. The project in `downstream/` (a billing
job with a planted double charge and its fixed twin) runs its own tests there through the plugin's
entry point; the planted one must fail with the shrunk story and a replay command, and that command,
run with the wheel's `harness` script, must reproduce the violation.

Failures to build or install that come from outside the project (no route to the package registry, no
`ensurepip`) skip the tests, except under `CI=true`, where they fail.
"""

from __future__ import annotations

import configparser
import pathlib
import re
import shlex
import shutil
import time
import tomllib
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field

import pytest
from adoption_support import REPO, build_wheel, clean_env, make_venv, run_step, tail

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

DOWNSTREAM = pathlib.Path(__file__).resolve().parent / "downstream"
#: The real engine the downstream project picks; its deterministic in-process mode needs no server.
ENGINE = "dramatiq"

@dataclass
class Adoption:
    """What the adoption built, where it lives, and how long each step took (seconds)."""

    source: pathlib.Path
    wheel: pathlib.Path
    venv: pathlib.Path
    project: pathlib.Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def python(self) -> pathlib.Path:
        return self.venv / "bin" / "python"

    @property
    def env(self) -> dict[str, str]:
        env = clean_env(self.venv)
        # The downstream test reads it to prove the harness it imports is not this source tree.
        env["ADOPTION_SOURCE_TREE"] = str(REPO)
        return env


@pytest.fixture(scope="module")
def adoption(tmp_path_factory: pytest.TempPathFactory) -> Adoption:
    """Build the wheel, make a fresh venv with the wheel, its engine extra and pytest, copy the project."""
    root = tmp_path_factory.mktemp("adoption")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    source, wheel = build_wheel(root)
    timings["build"] = time.perf_counter() - started
    started = time.perf_counter()
    venv = make_venv(root, [f"{wheel}[{ENGINE}]", "pytest"])
    timings["venv and install"] = time.perf_counter() - started

    project = root / "billing-project"
    shutil.copytree(DOWNSTREAM, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return Adoption(source=source, wheel=wheel, venv=venv, project=project, timings=timings)


@dataclass
class DownstreamRun:
    """The downstream project's pytest run: its exit code, output and per-test outcomes."""

    returncode: int
    output: str
    outcomes: dict[str, str]


@pytest.fixture(scope="module")
def downstream(adoption: Adoption) -> DownstreamRun:
    """The downstream suite, run by the new venv's python from the project's own folder."""
    junit = adoption.project / "junit.xml"
    started = time.perf_counter()
    done = run_step(
        [
            adoption.python,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-rP",
            f"--junitxml={junit}",
            "--harness-engine",
            ENGINE,
        ],
        what="the downstream pytest run",
        cwd=adoption.project,
        timeout=180,
        env=adoption.env,
    )
    adoption.timings["downstream pytest"] = time.perf_counter() - started
    output = done.stdout + done.stderr
    assert junit.exists(), f"the downstream run wrote no report (exit {done.returncode}):\n{tail(output)}"
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        outcomes[case.attrib["name"]] = "failed" if failed else "skipped" if skipped else "passed"
    return DownstreamRun(returncode=done.returncode, output=output, outcomes=outcomes)


def _line_after(path: pathlib.Path, function: str, needle: str) -> int:
    """The number (1-based) of the line after the first one in `function` that contains `needle`."""
    lines = path.read_text().splitlines()
    start = lines.index(next(line for line in lines if line.startswith(f"def {function}(")))
    return next(i for i in range(start, len(lines)) if needle in lines[i]) + 2


def test_the_wheel_carries_the_plugin_the_script_and_the_package_data(adoption: Adoption) -> None:
    with zipfile.ZipFile(adoption.wheel) as wheel:
        names = set(wheel.namelist())
        info = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        entry_points = configparser.ConfigParser()
        entry_points.read_string(wheel.read(info).decode())
        metadata = wheel.read(info.replace("entry_points.txt", "METADATA")).decode()
    assert entry_points.get("pytest11", "harness") == "harness.pytest_plugin"
    assert entry_points.get("console_scripts", "harness") == "harness.cli:run"
    assert f"Provides-Extra: {ENGINE}" in metadata

    # Every module, and every file the package-data patterns name, in the tree the wheel was built from.
    source = adoption.source
    package_data = tomllib.loads((source / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    wanted = {
        path.relative_to(source).as_posix()
        for package, patterns in package_data.items()
        for pattern in patterns
        for path in (source / package.replace(".", "/")).glob(pattern)
    }
    assert any(name.endswith(".html") for name in wanted), "the UIs' templates are no longer package data"
    assert wanted <= names, f"missing from the wheel: {sorted(wanted - names)}"
    modules = {
        path.relative_to(source).as_posix()
        for package in ("harness", "fake_services")
        for path in (source / package).rglob("*.py")
    }
    assert modules <= names, f"modules missing from the wheel: {sorted(modules - names)}"


def test_downstream_suite_passes_the_fix_and_fails_the_planted_double_charge(downstream: DownstreamRun) -> None:
    assert downstream.outcomes == {
        "test_the_harness_is_the_installed_wheel": "passed",
        "test_fixed_version_is_retry_safe": "passed",
        "test_first_version_is_retry_safe": "failed",
    }, tail(downstream.output, 80)
    assert downstream.returncode == 1
    # The plugin came in through the wheel's entry point, and the chosen engine really ran.
    assert "retry-harness-" in downstream.output
    assert f"billing.charge_once on {ENGINE} (seed 0): SAFE" in downstream.output
    assert f"billing.charge_twice on {ENGINE} (seed 0): UNSAFE" in downstream.output


def test_the_failure_tells_the_shrunk_story_and_how_to_replay_it(adoption: Adoption, downstream: DownstreamRun) -> None:
    jobs = adoption.project / "billing" / "jobs.py"
    after_charge = _line_after(jobs, "charge_then_email", ".charge(")
    story = (
        f"attempt 1 of charge_then_email crashed at `billing/jobs.py:{after_charge}` just after `payments.charge` "
        "returned; attempt 2 of charge_then_email ran to the end"
    )
    assert story in downstream.output, tail(downstream.output, 80)
    assert "order 7 was charged 2 times (expected 1)" in downstream.output
    assert re.search(
        rf"replay: harness explore billing\.scenarios:PLANTED --engine {ENGINE} --seed 0 --replay '\[",
        downstream.output,
    )


def test_the_replay_command_reproduces_the_double_charge(adoption: Adoption, downstream: DownstreamRun) -> None:
    replays = re.findall(r"replay: (harness explore billing\.scenarios:PLANTED .*)$", downstream.output, re.MULTILINE)
    assert replays, tail(downstream.output, 80)
    argv = shlex.split(replays[0])
    argv[0] = str(adoption.venv / "bin" / "harness")
    started = time.perf_counter()
    done = run_step(argv, what="the replay command", cwd=adoption.project, timeout=120, env=adoption.env)
    adoption.timings["replay"] = time.perf_counter() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "order 7 was charged 2 times (expected 1)" in output
    assert "crashed at `billing/jobs.py:" in output and "verdict: UNSAFE" in output
    print("adoption timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in adoption.timings.items()))
