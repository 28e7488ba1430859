"""The shop's Scenario objects: their setup, configure and invariants work, and tell good runs from bad."""

from __future__ import annotations

import pytest

from harness.world import World
from scenarios.shop import jobs_idempotent, jobs_naive, jobs_split
from scenarios.shop.app import drop_process_state
from scenarios.shop.orders import all_orders, load_order, update_order
from scenarios.shop.scenarios import NO_RETRY, SCENARIOS, STAGES


def start(world: World, name: str) -> None:
    """Configure and set up one scenario and enqueue its job, as the explorer does."""
    scenario = SCENARIOS[name]
    assert scenario.configure is not None
    scenario.configure(world)
    scenario.job.enqueue(*scenario.setup(world))


def violations(world: World, name: str) -> list[str]:
    problems: list[str] = []
    for invariant in SCENARIOS[name].invariants:
        found = invariant(world)
        problems += [found] if isinstance(found, str) else list(found or [])
    return problems


def run_with_email_outage(world: World, name: str) -> list[str]:
    """Email crashes (storing each email, then 503) for an hour of virtual time, then heals."""
    world.services.behaviours["email"].crash = True
    start(world, name)
    world.engine.run_until_quiet(max_time=3600)
    world.services.behaviours["email"].crash = False
    world.engine.run_until_quiet()
    return violations(world, name)


def test_stages_are_the_books_three_in_order() -> None:
    assert list(STAGES) == ["naive", "split", "idempotent"]
    assert [s.job for s in STAGES.values()] == [
        jobs_naive.complete_order,
        jobs_split.complete_order,
        jobs_idempotent.complete_order,
    ]
    for scenario in SCENARIOS.values():
        assert scenario.targets == ["scenarios.shop"]
        assert scenario.reset is drop_process_state


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_holds_on_a_healthy_world(world: World, name: str) -> None:
    start(world, name)
    world.engine.run_until_quiet()
    assert violations(world, name) == []


def test_setup_starts_from_an_empty_database_each_time(world: World) -> None:
    scenario = STAGES["idempotent"]
    assert list(scenario.setup(world)) == list(scenario.setup(world)) == [1]
    assert [o.id for o in all_orders()] == [1]


def test_naive_stage_invariants_name_the_double_charge(world: World) -> None:
    problems = run_with_email_outage(world, "naive")
    charge_problem = next(p for p in problems if "charged" in p)
    assert charge_problem.startswith("order 1 was charged ")
    assert "(expected 1): ch_" in charge_problem


def test_split_stage_charges_once_but_duplicates_the_email(world: World) -> None:
    problems = run_with_email_outage(world, "split")
    assert [p for p in problems if "charged" in p] == []
    assert any(p.startswith("order 1 was emailed ") for p in problems)


def test_idempotent_stage_survives_the_same_outage(world: World) -> None:
    assert run_with_email_outage(world, "idempotent") == []
    assert load_order(1).status == "completed"


def test_no_retry_scenario_flags_a_silent_loss(world: World) -> None:
    assert NO_RETRY.configure is not None
    NO_RETRY.configure(world)
    NO_RETRY.setup(world)
    # The job never ran and nobody was told: the scenario's invariants must say so.
    assert violations(world, "no_retry") == [
        "order 1 was never announced and nobody was told (0 error reports, none from the death handler)"
    ]


def test_fingerprint_sees_every_row_change(world: World) -> None:
    scenario = STAGES["idempotent"]
    assert scenario.fingerprint is not None
    (order_id,) = scenario.setup(world)
    before = scenario.fingerprint(world)
    assert before == scenario.fingerprint(world) and hash(before) == hash(scenario.fingerprint(world))
    update_order(order_id, email_id="em_1")
    assert scenario.fingerprint(world) != before


def test_explorer_finds_the_books_verdicts_and_points_at_job_lines(shop_db: str) -> None:
    from harness.explore.explorer import explore

    verdicts = {}
    for name, scenario in STAGES.items():
        report = explore(scenario, depth=1).to_dict()
        verdicts[name] = report["verdict"]
        crash_files = {
            step["point"]["file"]
            for unsafe in report["unsafe"]
            for step in unsafe["plan"]
            if step["point"]["kind"] == "line"
        }
        assert crash_files <= {f"scenarios/shop/jobs_{name}.py", "scenarios/shop/orders.py"}
    assert verdicts == {"naive": "unsafe", "split": "unsafe", "idempotent": "safe"}


def test_the_report_s_counts_add_up_with_pruning() -> None:
    import re

    from harness.explore import explore

    report = explore(STAGES["naive"], seed=0)
    text = report.to_text()
    header = re.search(r"(\d+) violating plans \(and (\d+) pruned as equivalent to them\), (\d+) distinct", text)
    assert header is not None, text
    ran, pruned, groups = map(int, header.groups())
    assert pruned > 0 and ran == len(report.unsafe) and groups == len(report.failures())
    more = sum(int(n) for n in re.findall(r"\((\d+) more plans fail the same way\)", text))
    assert more + groups == ran + pruned
