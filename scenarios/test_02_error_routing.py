"""Lessons 2 to 4: a bug must reach the error catcher, a transient failure must not, and a failure that
outlasts every retry ends in the dead set with exactly one death notification. The routing matrix checks
all three against the shop's middleware, error handler and death handler."""

from __future__ import annotations

from scenarios.shop.scenarios import IDEMPOTENT


def test_the_shop_routes_every_kind_of_failure_where_it_belongs(explored):
    report = explored(IDEMPOTENT, routing=True)
    rows = {row["fault"]: row for row in report.routing}
    assert set(rows) >= {"transient 503", "transient timeout", "permanent", "exhausted"}
    for fault in ("transient 503", "transient 429", "transient timeout", "transient drop"):
        assert rows[fault]["retried"] and rows[fault]["reported"] == 0, rows[fault]
    assert rows["permanent"]["reported"] >= 1
    assert rows["exhausted"]["dead"] and rows["exhausted"]["death_handler"] == 1
    assert rows["exhausted"]["reported"] == 1
    assert all(row["ok"] for row in report.routing), report.to_text()
