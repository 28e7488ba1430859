"""Exploration speed where users feel it, and its memory over a long run.

- `explore.shop_depth2_plans_per_s`: the example shop's three stages (naive, split, idempotent) explored
  to depth 2 on the sim engine, SQLite, in this process: the plans of all three over their time.
- `explore.parallel_speedup`: the same exploration with one worker process per core (`jobs=`), its time
  against the serial one's, measured side by side; the note says whether the reports were identical.
- `explore.shop_depth2_plans_per_s_all_cores`: the same plans over the parallel run's time: what
  `harness explore` gives by default (`--jobs` is the machine's cores).
- `explore.rss_growth_ratio`: resident memory after a long exploration (10,000 plans; 2,000 with
  `--quick`) against after its warm-up (the first tenth), as a growth ratio: 0.05 is 5 % more.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any


def _explore_shop(depth: int, jobs: int) -> tuple[int, float, str, dict[str, float]]:
    """Plans run, seconds in all, the reports as JSON (durations left out), and each stage's seconds."""
    from harness.explore import Explorer
    from scenarios.shop.scenarios import STAGES

    plans, reports, stages = 0, [], {}
    started = time.perf_counter()
    for name, scenario in STAGES.items():
        stage_started = time.perf_counter()
        explorer = Explorer(scenario)
        try:
            report = explorer.explore(depth=depth, jobs=jobs)
        finally:
            explorer.close()
        stages[name] = time.perf_counter() - stage_started
        plans += report.plans_run
        data = report.to_dict()
        data.pop("duration_s")
        reports.append(data)
    return plans, time.perf_counter() - started, json.dumps(reports, sort_keys=True), stages


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _rss_growth(total_plans: int) -> tuple[float, int]:
    from bench._explore_job import THREE_CALLS
    from harness.explore import Explorer

    explorer = Explorer(THREE_CALLS, seed=0)
    try:
        done, warm = 0, None
        while done < total_plans:
            done += explorer.explore(examples=5).plans_run
            if warm is None and done >= total_plans // 10:
                warm = _rss_bytes()
        assert warm is not None
        return _rss_bytes() / warm - 1.0, done
    finally:
        explorer.close()


def run(quick: bool) -> dict[str, dict[str, Any]]:
    from scenarios.shop import db

    db.configure_database(None)  # DATABASE_URL, else a fresh SQLite file: not what another benchmark left
    depth = 2  # the figure users meet; --quick runs three paired rounds instead of five
    cores = os.cpu_count() or 1
    _explore_shop(1, 1)  # warm-up: imports, statement caches
    # Paired rounds, the median of each: on a shared machine one round can be a third off either way.
    # Which of the pair runs first alternates, so neither always gets the warmer (or the quieter) turn.
    rounds = []
    per_stage: dict[str, list[float]] = {}
    for n in range(3 if quick else 5):
        if n % 2 == 0:
            plans, serial_s, serial, serial_stages = _explore_shop(depth, 1)
            _, parallel_s, parallel, parallel_stages = _explore_shop(depth, max(2, cores))
        else:
            _, parallel_s, parallel, parallel_stages = _explore_shop(depth, max(2, cores))
            plans, serial_s, serial, serial_stages = _explore_shop(depth, 1)
        rounds.append((serial_s, parallel_s, parallel == serial))
        for name, seconds in serial_stages.items():
            per_stage.setdefault(name, []).append(seconds / parallel_stages[name])
    serial_s = statistics.median(r[0] for r in rounds)
    parallel_s = statistics.median(r[1] for r in rounds)
    speedup = statistics.median(r[0] / r[1] for r in rounds)
    identical = all(r[2] for r in rounds)
    growth, plans_run = _rss_growth(2_000 if quick else 10_000)
    return {
        "explore.shop_depth2_plans_per_s": {
            "value": plans / serial_s,
            "unit": "plans/s",
            "note": f"{plans} plans of the shop's 3 stages at depth {depth} in {serial_s:.2f} s, sim, one process",
        },
        "explore.shop_depth2_plans_per_s_all_cores": {
            "value": plans / parallel_s,
            "unit": "plans/s",
            "note": f"the same {plans} plans in {parallel_s:.2f} s with jobs={max(2, cores)}",
        },
        "explore.parallel_speedup": {
            "value": speedup,
            "unit": "x",
            "note": f"jobs={max(2, cores)} against jobs=1, same run ({cores} cores); reports identical: "
            f"{'yes' if identical else 'NO'}; median of {len(rounds)} paired round(s); per stage "
            + ", ".join(f"{name} {statistics.median(ratios):.2f}" for name, ratios in per_stage.items()),
        },
        "explore.rss_growth_ratio": {
            "value": growth,
            "unit": "ratio",
            "note": f"RSS after {plans_run} plans against after the first tenth (three-call job, Hypothesis on)",
        },
    }
