"""The harness's pytest plugin: fixtures, options and markers. Imports no job engine at load time."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "retry-safety harness")
    group.addoption(
        "--harness-engine",
        action="store",
        default=None,
        help="engine backend for harness fixtures and scenarios: sim, dramatiq, rq or celery",
    )
    group.addoption(
        "--harness-seed", action="store", type=int, default=None, help="seed for every random choice"
    )
