"""The HTML report: every crash point marked with its verdict (run or inherited), one count for "the
same way" in every form, a timeline per failure, and every scenario of a run on the page."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import planted
import pytest

from harness.explore import explore
from harness.explore.html import render_many
from harness.explore.timeline import entries, svg
from scenarios.shop.scenarios import SPLIT

HERE = pathlib.Path(__file__).parent


@pytest.fixture(scope="module")
def split_report():
    return explore(SPLIT)


def _rows(page: str) -> dict[tuple[str, int], str]:
    """(file heading, line number) -> the row's class, for every marked row of the page."""
    rows: dict[tuple[str, int], str] = {}
    for section in re.split(r"<h2>", page)[1:]:
        file = section.split(" (", 1)[0]
        for css, number in re.findall(r"<tr class='([^']*)'[^>]*><td class='n'>(\d+)</td>", section):
            if css:
                rows[(file, int(number))] = css
    return rows


def test_every_crash_point_is_marked_and_pruned_ones_say_their_verdict_is_inherited(split_report):
    page = split_report.to_html()
    rows = _rows(page)
    assert split_report.inherited_lines, "the shop prunes: some lines are only ever inherited"
    for (file, line), safe in split_report.lines.items():
        shown = pathlib.Path(file).resolve().relative_to(pathlib.Path.cwd()).as_posix()
        css = rows.get((shown, line))
        assert css is not None, f"{shown}:{line} carries a verdict but is unmarked"
        # A line a violating plan crashed is unsafe whatever its single crash did; a safe line stays safe.
        assert css.split()[0] == ("safe" if safe else "unsafe") or css.split()[0] == "unsafe"
        if not safe:
            assert css.split()[0] == "unsafe"
        assert ("inherited" in css.split()) == ((file, line) in split_report.inherited_lines)
    assert "unmarked: not executed by the clean run" in page
    assert "unmarked: not reached" not in page


def test_text_and_html_say_the_same_count_for_plans_that_fail_the_same_way(split_report):
    text = split_report.to_text()
    page = split_report.to_html()
    in_text = [int(n) for n in re.findall(r"\((\d+) more plans? fails? the same way\)", text)]
    in_html = [int(n) for n in re.findall(r"<summary>(\d+) more plans? fails? the same way</summary>", page)]
    assert in_text and in_text == in_html


def test_counts_are_in_the_singular_when_there_is_one():
    report = explore(planted.NAIVE, seed=3)
    report.unsafe = report.unsafe[:1]
    assert "1 violating plan" in report.to_text() and "1 distinct failure:" in report.to_text()


def test_each_failure_is_drawn_as_a_timeline_on_virtual_time(split_report):
    page = split_report.to_html()
    assert page.count("<svg class='timeline'") == len(split_report.failures())
    first = split_report.failures()[0][0]
    kinds = {entry["kind"] for entry in first.timeline}
    assert {"crashed", "recovered", "succeeded"} <= kinds, "a crash is a worker's death: the job comes back"
    drawing = svg(first.timeline)
    for job in ("complete_order", "send_confirmation_email", "request_fulfillment"):
        assert f">{job}</text>" in drawing
    crashed = next(e["t"] for e in first.timeline if e["kind"] == "crashed")
    recovered = next(e["t"] for e in first.timeline if e["kind"] == "recovered")
    assert f"+{recovered - crashed:g} s</text>" in drawing
    # A failure that is retried draws its retry delay the same way.
    retried = [{"t": 0, "kind": "failed", "job": "pay", "attempt": 1},
               {"t": 0, "kind": "retry_scheduled", "job": "pay", "attempt": 1, "delay": 25},
               {"t": 25, "kind": "succeeded", "job": "pay", "attempt": 2}]
    assert "+25 s</text>" in svg(retried)
    assert split_report.to_dict()["unsafe"][0]["timeline"] == first.timeline


def test_timeline_entries_are_relative_to_the_run_and_name_crashes():
    class Event:
        def __init__(self, time, kind, detail=None):
            self.data = {"time": time, "kind": kind, "job": "shop.jobs.pay", "attempt": 1, "detail": detail or {}}

        def to_dict(self):
            return self.data

    made = entries([Event(100.0, "started"), Event(100.0, "failed", {"error_class": "InjectedCrash"}),
                    Event(100.0, "retry_scheduled", {"delay": 25}), Event(125.0, "succeeded")])
    assert [(e["t"], e["kind"]) for e in made] == [(0, "started"), (0, "crashed"), (0, "retry_scheduled"),
                                                   (25, "succeeded")]
    assert made[2]["delay"] == 25 and made[0]["job"] == "pay"
    assert svg([]) == ""


def test_several_scenarios_all_reach_the_html_page(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "harness.cli", "explore", "planted:NAIVE", "planted:SAFE",
         "--html", str(tmp_path / "r.html"), "--no-progress"],
        cwd=HERE, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 1, out.stderr
    page = (tmp_path / "r.html").read_text()
    assert "2 scenarios: 1 unsafe, 1 safe" in page
    assert "id='r0'>planted.naive on sim" in page and "id='r1'>planted.safe on sim" in page


def test_one_report_renders_the_same_alone_or_as_a_list_of_one(split_report):
    assert render_many([split_report]) == split_report.to_html()
