"""The stateful mode: Hypothesis interleaves redeliveries, behaviours, call faults and crashes."""

from __future__ import annotations

import planted
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from harness.explore.stateful import retry_machine

SETTINGS = settings(
    max_examples=25, stateful_step_count=8, deadline=None, database=None, derandomize=True,
    suppress_health_check=list(HealthCheck),
)


def test_the_idempotent_job_survives_long_stories():
    run_state_machine_as_test(retry_machine(planted.SAFE, seed=1), settings=SETTINGS)


def test_the_naive_job_fails_and_the_story_is_shrunk(capsys):
    with pytest.raises(AssertionError, match=r"payments\.charge") as info:
        run_state_machine_as_test(retry_machine(planted.NAIVE, seed=1), settings=SETTINGS)
    shown = "\n".join(getattr(info.value, "__notes__", [])) + capsys.readouterr().out
    # Hypothesis shows the shrunk steps; the smallest story is short.
    steps = [line.strip() for line in shown.splitlines() if line.strip().startswith("state.")]
    assert 1 <= len(steps) <= 3, shown
