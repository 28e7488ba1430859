"""Progress of an exploration: per phase, with the phase's own total, on a terminal and off one."""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
import sys

import planted

from harness.explore import Explorer
from harness.explore.progress import ProgressLine

HERE = pathlib.Path(__file__).parent


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_phases_report_their_own_totals_and_never_run_past_them():
    seen: list[tuple[str, int, int]] = []
    explorer = Explorer(planted.NAIVE, seed=3)
    try:
        explorer.explore(depth=2, examples=5, progress=lambda phase, done, total: seen.append((phase, done, total)))
    finally:
        explorer.close()
    phases = list(dict.fromkeys(phase for phase, _, _ in seen))
    assert phases == ["depth 1", "depth 2", "search"]
    for phase in ("depth 1", "depth 2"):
        mine = [(done, total) for p, done, total in seen if p == phase]
        totals = {total for _, total in mine}
        assert len(totals) == 1, f"{phase}: the total changed as it ran: {totals}"
        assert [done for done, _ in mine] == list(range(1, len(mine) + 1))
        assert mine[-1][0] == mine[-1][1], f"{phase} ended at {mine[-1]}"
    depth1_total = next(total for p, _, total in seen if p == "depth 1")
    depth2_total = next(total for p, _, total in seen if p == "depth 2")
    assert depth2_total > depth1_total, "depth 2 counts its own plans, not depth 1's"
    assert all(done <= total for _, done, total in seen)


def test_without_a_terminal_a_line_every_few_seconds_and_one_at_the_end_of_a_shown_phase():
    clock, lines = _Clock(), []
    progress = ProgressLine("shop.naive", write_line=lines.append, every=10, clock=clock)
    for done in range(1, 101):
        clock.now = done * 0.25  # 25 s in all
        progress("depth 1", done, 100)
    assert lines == [
        "shop.naive: depth 1, 40 of 100 plans (40%)",
        "shop.naive: depth 1, 80 of 100 plans (80%)",
        "shop.naive: depth 1, 100 of 100 plans (100%)",
    ]


def test_a_short_exploration_writes_no_line():
    clock, lines = _Clock(), []
    progress = ProgressLine("quick", write_line=lines.append, every=10, clock=clock)
    for done in range(1, 21):
        clock.now = done * 0.1
        progress("depth 1", done, 20)
    assert lines == []


def test_on_a_terminal_one_bar_is_redrawn_with_the_phase_and_cleared():
    stream = io.StringIO()
    progress = ProgressLine("shop.naive", stream=stream, interactive=True)
    for done in range(1, 61):
        progress("depth 2", done, 60)
    progress.close()
    drawn = stream.getvalue()
    assert "\n" not in drawn
    assert "shop.naive depth 2 [" in drawn and "] 60/60" in drawn
    assert drawn.endswith("\r")


def test_the_cli_writes_progress_lines_where_no_terminal_is_attached():
    env = {**os.environ, "HARNESS_PROGRESS_EVERY": "0"}
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", "explore", "planted:NAIVE", "--depth", "2"],
        cwd=HERE, capture_output=True, text=True, timeout=300, env=env,
    )
    assert out.returncode == 1, out.stderr
    lines = out.stderr.splitlines()
    assert any(line.startswith("planted.naive: depth 1, 1 of ") for line in lines)
    assert any(line.startswith("planted.naive: depth 2, ") and "(100%)" in line for line in lines)
    assert "\r" not in out.stderr
    quiet = subprocess.run(
        [sys.executable, "-m", "harness.cli", "explore", "planted:NAIVE", "--no-progress"],
        cwd=HERE, capture_output=True, text=True, timeout=300, env=env,
    )
    assert "plans (" not in quiet.stderr
