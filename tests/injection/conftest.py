"""Fixtures for the line-tracer tests: the small target modules here import by plain name, and a
`backend` fixture runs a test once per tracing backend this interpreter has."""

from __future__ import annotations

import pathlib
import sys
from types import ModuleType

import pytest

HERE = pathlib.Path(__file__).parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

BACKENDS_HERE = ["settrace"] + (["monitoring"] if sys.version_info >= (3, 12) else [])


@pytest.fixture(params=BACKENDS_HERE)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


def line_of(module: ModuleType, marker: str) -> int:
    """The line of `module` tagged with the comment `# @marker` (so tests never hard-code numbers)."""
    assert module.__file__ is not None
    lines = pathlib.Path(module.__file__).read_text().splitlines()
    found = [i for i, text in enumerate(lines, start=1) if text.rstrip().endswith(f"# @{marker}")]
    assert len(found) == 1, f"marker @{marker} found {len(found)} times in {module.__file__}"
    return found[0]
