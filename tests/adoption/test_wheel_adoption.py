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
import importlib.util
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = pathlib.Path(__file__).resolve().parents[2]
DOWNSTREAM = pathlib.Path(__file__).resolve().parent / "downstream"
#: The real engine the downstream project picks; its deterministic in-process mode needs no server.
ENGINE = "dramatiq"

#: Build and install failures that say the machine, not the project, is at fault.
OUTSIDE_THE_PROJECT = re.compile(
    r"NewConnectionError|Failed to establish a new connection|Temporary failure in name resolution"
    r"|Name or service not known|Network is unreachable|Connection refused|ConnectTimeout|ReadTimeoutError"
    r"|ProxyError|SSLError|Could not fetch URL|Retrying \(Retry\(|ensurepip is not available|No module named ensurepip"
)

#: Left out of the copy the wheel is built from: caches, environments, earlier build output.
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "results"
)


def _on_ci() -> bool:
    return bool(os.environ.get("CI"))


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _clean_env(venv: pathlib.Path | None = None) -> dict[str, str]:
    """The environment of a user's shell: nothing of this repository's interpreter or test run leaks in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "PYTEST_", "VIRTUAL_ENV", "HARNESS_", "COV_", "COVERAGE_"))
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return env


def _run(
    argv: Sequence[str | pathlib.Path],
    *,
    what: str,
    cwd: pathlib.Path,
    timeout: float,
    env: dict[str, str],
    may_skip: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run a step of the adoption; a failed step that `may_skip` and blames the machine skips off CI."""
    try:
        done = subprocess.run(
            [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{what} took more than {timeout:.0f} s: {' '.join(map(str, argv))}", pytrace=False)
    if may_skip and done.returncode != 0:
        output = done.stdout + done.stderr
        blamed = OUTSIDE_THE_PROJECT.search(output)
        if blamed and not _on_ci():
            line = output[output.rfind("\n", 0, blamed.start()) + 1 :].partition("\n")[0]
            pytest.skip(f"{what} failed for a reason outside the project: {line.strip()}")
        pytest.fail(f"{what} failed (exit {done.returncode}):\n{_tail(output)}", pytrace=False)
    return done


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
        env = _clean_env(self.venv)
        # The downstream test reads it to prove the harness it imports is not this source tree.
        env["ADOPTION_SOURCE_TREE"] = str(REPO)
        return env


@pytest.fixture(scope="module")
def adoption(tmp_path_factory: pytest.TempPathFactory) -> Adoption:
    """Build the wheel, make a fresh venv with the wheel, its engine extra and pytest, copy the project."""
    if importlib.util.find_spec("build") is None:
        if _on_ci():
            pytest.fail("the `build` package is not installed, and CI needs this test to run", pytrace=False)
        pytest.skip("the `build` package is not installed (it comes with the dev extras)")
    root = tmp_path_factory.mktemp("adoption")
    timings: dict[str, float] = {}

    started = time.perf_counter()
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    dist = root / "dist"
    _run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", dist, source],
        what="building the wheel",
        cwd=root,
        timeout=300,
        env=_clean_env(),
        may_skip=True,
    )
    wheels = sorted(dist.glob("retry_harness-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {dist}, found {[w.name for w in wheels]}"
    timings["build"] = time.perf_counter() - started

    started = time.perf_counter()
    venv = root / "venv"
    _run(
        [sys.executable, "-m", "venv", venv],
        what="creating a venv",
        cwd=root,
        timeout=120,
        env=_clean_env(),
        may_skip=True,
    )
    timings["venv"] = time.perf_counter() - started

    started = time.perf_counter()
    # pip's own cache is left on, so a second run installs from it.
    _run(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", f"{wheels[0]}[{ENGINE}]", "pytest"],
        what=f"installing the wheel with [{ENGINE}] and pytest",
        cwd=root,
        timeout=420,
        env=_clean_env(venv),
        may_skip=True,
    )
    timings["install"] = time.perf_counter() - started

    project = root / "billing-project"
    shutil.copytree(DOWNSTREAM, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return Adoption(source=source, wheel=wheels[0], venv=venv, project=project, timings=timings)


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
    done = _run(
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
    assert junit.exists(), f"the downstream run wrote no report (exit {done.returncode}):\n{_tail(output)}"
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
    assert entry_points.get("console_scripts", "harness") == "harness.cli:main"
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
    }, _tail(downstream.output, 80)
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
    assert story in downstream.output, _tail(downstream.output, 80)
    assert "order 7 was charged 2 times (expected 1)" in downstream.output
    assert re.search(
        rf"replay: harness explore billing\.scenarios:PLANTED --engine {ENGINE} --seed 0 --replay '\[",
        downstream.output,
    )


def test_the_replay_command_reproduces_the_double_charge(adoption: Adoption, downstream: DownstreamRun) -> None:
    replays = re.findall(r"replay: (harness explore billing\.scenarios:PLANTED .*)$", downstream.output, re.MULTILINE)
    assert replays, _tail(downstream.output, 80)
    argv = shlex.split(replays[0])
    argv[0] = str(adoption.venv / "bin" / "harness")
    started = time.perf_counter()
    done = _run(argv, what="the replay command", cwd=adoption.project, timeout=120, env=adoption.env)
    adoption.timings["replay"] = time.perf_counter() - started
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "order 7 was charged 2 times (expected 1)" in output
    assert "crashed at `billing/jobs.py:" in output and "verdict: UNSAFE" in output
    print("adoption timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in adoption.timings.items()))
