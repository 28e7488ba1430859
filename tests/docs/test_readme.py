"""The README's promises hold: its shown demo output is what `harness demo` prints, its quick-start
commands are the ones CI runs, and its example test file passes (and fails once the fix is taken out)."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tomllib

import pytest
from doc_runner import ROOT, output_contains, parse_blocks

README = ROOT / "README.md"
BLOCKS = parse_blocks(README)


def _blocks(kind: str) -> list[str]:
    return [b.body for b in BLOCKS if b.kind == kind]


def _elide_durations(text: str) -> str:
    """The demo's timings vary from run to run: the shown ones match any."""
    import re

    return re.sub(r"; [0-9.]+ s$", "; ... s", text, flags=re.M)


def test_the_shown_demo_output_is_what_the_demo_prints() -> None:
    [shown] = _blocks("text")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "demo"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    expected = _elide_durations(shown)
    # The README abridges: its `...` lines stand for left-out stories and stages.
    assert output_contains(done.stdout, expected), done.stdout[:3000]


def test_the_quick_start_installs_what_exists_and_tests_as_ci_does() -> None:
    [quick] = _blocks("bash")
    commands = [line.split("#")[0].strip() for line in quick.splitlines() if line.strip()]
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "pip install -e '.[dev]'" in commands[0] and "dev" in extras
    assert "harness demo" in commands
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python -m pytest" in commands and "-m pytest -q" in ci and "pip install -q -e '.[dev]'" in ci


@pytest.fixture
def project(tmp_path: pathlib.Path) -> pathlib.Path:
    [example] = [b for b in BLOCKS if b.kind == "python" and b.file == "test_checkout.py"]
    (tmp_path / "test_checkout.py").write_text(example.body)
    return tmp_path


def _pytest(where: pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(where)], cwd=where,
                          capture_output=True, text=True, timeout=300)


def test_the_example_test_file_passes_and_fails_without_the_idempotency_key(project: pathlib.Path) -> None:
    passed = _pytest(project)
    assert passed.returncode == 0, passed.stdout[-3000:]
    assert "2 passed" in passed.stdout
    source = project / "test_checkout.py"
    text = source.read_text()
    assert ', idempotency_key=f"order-{order_id}"' in text
    source.write_text(text.replace(', idempotency_key=f"order-{order_id}"', ""))
    failed = _pytest(project)
    assert failed.returncode == 1, failed.stdout[-3000:]
    assert "checkout on sim (seed 0): UNSAFE" in failed.stdout, failed.stdout[-3000:]
    assert "payments.charge happened 2 times for order_id=7 (expected 1)" in failed.stdout
