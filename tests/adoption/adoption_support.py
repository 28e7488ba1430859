"""What adopting the harness from its wheel takes, shared by the adoption tests: a wheel built from a
copy of this source tree, a fresh virtual environment outside the repository, and each step run as a
user's shell would run it.

Failures to build or install that come from outside the project (no route to the package registry, no
`ensurepip`) skip the tests, except under `CI=true`, where they fail.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]

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


def on_ci() -> bool:
    return bool(os.environ.get("CI"))


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def clean_env(venv: pathlib.Path | None = None) -> dict[str, str]:
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


def run_step(
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
        if blamed and not on_ci():
            line = output[output.rfind("\n", 0, blamed.start()) + 1 :].partition("\n")[0]
            pytest.skip(f"{what} failed for a reason outside the project: {line.strip()}")
        pytest.fail(f"{what} failed (exit {done.returncode}):\n{tail(output)}", pytrace=False)
    return done


def build_wheel(root: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    """Copy the source tree under `root` and build its wheel: (the copy, the wheel)."""
    if importlib.util.find_spec("build") is None:
        if on_ci():
            pytest.fail("the `build` package is not installed, and CI needs this test to run", pytrace=False)
        pytest.skip("the `build` package is not installed (it comes with the dev extras)")
    source = root / "source"
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)
    dist = root / "dist"
    run_step(
        [sys.executable, "-m", "build", "--wheel", "--outdir", dist, source],
        what="building the wheel",
        cwd=root,
        timeout=300,
        env=clean_env(),
        may_skip=True,
    )
    wheels = sorted(dist.glob("retry_harness-*.whl"))
    assert len(wheels) == 1, f"expected one wheel in {dist}, found {[w.name for w in wheels]}"
    return source, wheels[0]


def make_venv(root: pathlib.Path, requirements: Sequence[str | pathlib.Path]) -> pathlib.Path:
    """A fresh virtual environment under `root` with `requirements` installed by its own pip."""
    venv = root / "venv"
    run_step([sys.executable, "-m", "venv", venv], what="creating a venv", cwd=root, timeout=120, env=clean_env(),
         may_skip=True)
    # pip's own cache is left on, so a second run installs from it.
    run_step(
        [venv / "bin" / "python", "-m", "pip", "install", "-q", *map(str, requirements)],
        what=f"installing {' '.join(map(str, requirements))}",
        cwd=root,
        timeout=600,
        env=clean_env(venv),
        may_skip=True,
    )
    return venv
