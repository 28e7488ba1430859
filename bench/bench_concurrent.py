"""The concurrency explorer: interleavings of two deliveries of the shop's email job explored per second,
and how much the pruning (switch only before a step that touches something shared) saves, measured side
by side with pruning off in the same run.

    python -m bench --only bench_concurrent
"""

from __future__ import annotations

import time

from harness.explore.concurrent import Interleavings
from scenarios.shop.scenarios import EMAIL_AT_ONCE, EMAIL_AT_ONCE_LOCKED


def _explore(scenario: object, preemptions: int, prune: bool) -> tuple[float, int, int, bool, set[str]]:
    with Interleavings(scenario, engine="sim") as explorer:  # type: ignore[arg-type]
        explorer.run()  # the clean run and the first interleaving: warm, as the explorer is after one
        start = time.perf_counter()
        report = explorer.explore(preemptions=preemptions, prune=prune)
        elapsed = time.perf_counter() - start
    found = {v for unsafe in report.unsafe for v in unsafe.violations}
    return report.interleavings_run / elapsed, report.interleavings_run, report.pruned, report.safe, found


def run(quick: bool) -> dict[str, dict]:
    bound = 2 if quick else 3
    rate, count, pruned, safe, found = _explore(EMAIL_AT_ONCE, bound, True)
    full_rate, full_count, _, full_safe, full_found = _explore(EMAIL_AT_ONCE, bound, False)
    if safe or full_safe:
        raise AssertionError("the concurrency explorer no longer finds the shop's double email")
    if found != full_found:
        raise AssertionError(f"pruning changed what is found: {sorted(found ^ full_found)}")
    locked_rate, locked_count, locked_pruned, locked_safe, _ = _explore(EMAIL_AT_ONCE_LOCKED, bound, True)
    if not locked_safe:
        raise AssertionError("the locked email job is reported unsafe")
    return {
        "concurrent.interleavings_per_s": {
            "value": rate, "unit": "runs/s",
            "note": f"{count} interleavings of 2 deliveries of the shop's email job, <= {bound} preemptions, sim"},
        "concurrent.pruned": {
            "value": pruned, "unit": "skipped",
            "note": f"switches skipped as equivalent in that search ({locked_pruned} for the locked job)"},
        "concurrent.unpruned_vs_pruned_runs": {
            "value": full_count / count, "unit": "x",
            "note": f"interleavings run without pruning ({full_count}) over with it ({count}), same bound, "
                    f"same races found; {full_rate:.0f} runs/s"},
        "concurrent.locked_interleavings": {
            "value": locked_count, "unit": "runs",
            "note": f"the locked job, same bound, all safe; {locked_rate:.0f} runs/s"},
    }
