"""Error routing: transient errors retried and not reported, permanent ones reported, deaths reported once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fake_services import FaultRule, clients
from fake_services.clients import TransientServiceError
from harness import job
from harness.engines.base import EventKind
from harness.world import World
from scenarios.shop import app, jobs_noretry
from scenarios.shop.middleware import IgnorableError, TransientErrors, install, report_error
from scenarios.shop.orders import create_product, create_user, load_order, save_order


class LedgerLocked(Exception):
    """Transient for `post_to_ledger` only (its own `transient` option), permanent elsewhere."""


@job(retry=3)
def charge_customer(order_id: int) -> None:
    app.payments().charge(customer_id="cus_1", payment_method_id="pm_visa", amount_cents=100)


@job(retry=3)
def broken_job(order_id: int) -> None:
    raise ValueError(f"order {order_id} has no line items")


@job(retry=1, transient=(LedgerLocked,))
def post_to_ledger(order_id: int) -> None:
    raise LedgerLocked(f"ledger row for order {order_id} is locked")


@job(retry=1)
def lock_ledger(order_id: int) -> None:
    raise LedgerLocked(f"ledger row for order {order_id} is locked")


TEST_JOBS = [charge_customer, broken_job, post_to_ledger, lock_ledger]


@pytest.fixture
def shop(world: World) -> Iterator[World]:
    install(world.engine, world.http, clock=world.clock, base_url=world.base_url, jobs=TEST_JOBS)
    yield world


def reports(world: World) -> list[tuple[str, str]]:
    return [
        (str(r.get("exception_class")), str(r.get("exception_message"))) for r in world.services.error_catcher.records()
    ]


def failed_error_classes(world: World, name: str) -> list[str]:
    return [
        str(e.detail.get("error_class")) for e in world.engine.events if e.kind is EventKind.FAILED and e.job == name
    ]


def test_transient_service_error_is_wrapped_retried_and_not_reported(shop: World) -> None:
    shop.services.schedule("payments", FaultRule(fault="503", phase="before", nth=1, operation="charge"))
    charge_customer.enqueue(1)
    shop.engine.run_until_quiet()

    assert failed_error_classes(shop, charge_customer.name) == ["IgnorableError"]
    assert len(shop.services.payments.records()) == 1
    assert reports(shop) == []


def test_permanent_error_is_reported_on_every_attempt(shop: World) -> None:
    broken_job.enqueue(7)
    shop.engine.run_until_quiet()
    attempts = len(failed_error_classes(shop, broken_job.name))
    assert attempts == 4  # the first run and 3 retries
    messages = [message for cls, message in reports(shop) if cls == "ValueError"]
    assert messages.count("order 7 has no line items") == attempts


def test_a_jobs_own_transient_list_applies_to_that_job_only(shop: World) -> None:
    post_to_ledger.enqueue(1)
    lock_ledger.enqueue(2)
    shop.engine.run_until_quiet()
    assert set(failed_error_classes(shop, post_to_ledger.name)) == {"IgnorableError"}
    assert set(failed_error_classes(shop, lock_ledger.name)) == {"LedgerLocked"}
    routine = [m for cls, m in reports(shop) if "won't be retried" not in m]
    assert routine == ["ledger row for order 2 is locked"] * 2


def test_death_handler_reports_once_when_retries_run_out(shop: World) -> None:
    shop.services.behaviours["payments"].crash = True
    charge_customer.enqueue(3)
    shop.engine.run_until_quiet()

    [dead] = shop.engine.dead()
    assert dead.job == charge_customer.name
    assert len(failed_error_classes(shop, charge_customer.name)) == 4
    [(cls, message)] = reports(shop)
    assert message.startswith(f"{charge_customer.name} won't be retried: ")
    # Reported under the service error's own class, not the wrapper's: that is what a person acts on.
    assert issubclass(getattr(clients, cls), TransientServiceError)


def test_no_retry_job_dies_on_first_failure_with_one_alert(shop: World) -> None:
    shop.services.behaviours["chat"].crash = True
    order_id = save_order(create_user(), create_product())
    jobs_noretry.announce_order.enqueue(order_id)
    shop.engine.run_until_quiet()

    assert len(failed_error_classes(shop, jobs_noretry.announce_order.name)) == 1
    assert [r.job for r in shop.engine.dead()] == [jobs_noretry.announce_order.name]
    assert shop.engine.retries() == []
    [(_cls, message)] = reports(shop)
    assert message.startswith(f"{jobs_noretry.announce_order.name} won't be retried")
    assert load_order(order_id).announced_at is None


def test_no_retry_job_announces_once_on_a_healthy_world(shop: World) -> None:
    order_id = save_order(create_user(), create_product())
    jobs_noretry.announce_order.enqueue(order_id)
    shop.engine.run_until_quiet()
    [post] = shop.services.chat.records()
    assert post["channel"] == jobs_noretry.SALES_CHANNEL and f"New order {order_id}:" in post["text"]
    assert load_order(order_id).announced_at == shop.clock.time()


def test_installing_twice_does_not_double_the_hooks(shop: World) -> None:
    install(shop.engine, shop.http, clock=shop.clock)
    hooks = shop.engine.hooks
    assert sum(isinstance(m, TransientErrors) for m in hooks.server_middleware) == 1
    assert hooks.error_handlers.count(report_error) == 1


def test_ignorable_error_keeps_the_original() -> None:
    original = TransientServiceError("payments answered 503")
    wrapped = IgnorableError(original)
    assert wrapped.original is original
    assert str(wrapped) == "TransientServiceError: payments answered 503"
