"""Importing the harness must not import any job engine: backends load only when asked for by name."""

from __future__ import annotations

import subprocess
import sys

import pytest

ENGINE_MODULES = ("dramatiq", "rq", "celery", "kombu", "fakeredis", "time_machine")


def _loaded_after(statement: str) -> list[str]:
    report = f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({ENGINE_MODULES!r})))"
    code = f"import sys\n{statement}\n{report}"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip())


@pytest.mark.parametrize(
    "statement", ["import harness", "import harness.engines", "from harness.engines import get_engine, base"]
)
def test_harness_imports_no_engine(statement):
    assert _loaded_after(statement) == []


@pytest.mark.parametrize(("name", "expected"), [("dramatiq", "dramatiq"), ("rq", "rq"), ("celery", "celery")])
def test_get_engine_loads_only_its_own(name, expected):
    loaded = _loaded_after(f"from harness.engines import get_engine\nget_engine({name!r}).close()")
    assert expected in loaded
    assert not ({"dramatiq", "rq", "celery"} - {expected}) & set(loaded)
