"""The shop's completion tasks as retry-harness scenarios: the shop's real hosts mapped to the fakes, its
database read and restored through Django, its own Celery tasks explored as they are."""

from __future__ import annotations

import pytest
from orders import tasks
from orders.models import Order

from harness import Scenario, World, effects_match_clean_run, exactly_once
from harness.databases import DjangoState

DATABASE = DjangoState()


@pytest.fixture(autouse=True)
def mail_through_the_relay(settings):
    """pytest-django swaps in the in-memory mail backend for tests; the harness answers the relay itself
    (mapped below), so the shop's own SMTP backend stays, as in production."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"


def route_to_fakes(world: World) -> None:
    """Stripe, the mail relay and the warehouse's API, as production settings name them."""
    world.outbound.map("https://api.stripe.com", "stripe")
    world.outbound.map_smtp("smtp.shop.example:587")
    world.outbound.route(
        "POST", "https://api.warehouse.example/v2/orders", service="warehouse", name="order",
        status=201, json={"accepted": True}, keys=("order_id",),
    )


def place_order(world: World) -> list[int]:
    Order.objects.all().delete()
    return [Order.objects.create(email="pat@example.com", amount_cents=4200, customer="cus_pat").id]


def receipt_and_partner_at_least_once(world: World) -> list[str]:
    """The receipt and the warehouse may hear twice (mail relays and the partner take repeats); never none."""
    problems = []
    if not any(e.service == "email" for e in world.services.effects()):
        problems.append("no receipt was mailed")
    if not any(e.service == "warehouse" for e in world.services.effects()):
        problems.append("the warehouse never heard of the order")
    return problems


def completion(task) -> Scenario:
    return Scenario(
        name=f"shop.{task.name.rsplit('.', 1)[-1]}",
        job=task,
        jobs=(tasks.send_receipt, tasks.notify_partner),
        setup=DATABASE.replaying(place_order),
        configure=route_to_fakes,
        invariants=(
            exactly_once("stripe", "create_payment_intent", "metadata.order_id", label="the charge"),
            effects_match_clean_run(ignore=("email", "warehouse", "error-catcher", "chat")),
            receipt_and_partner_at_least_once,
        ),
        targets=["orders"],
        fingerprint=DATABASE.fingerprint,
        reset=DATABASE.reset,
    )


@pytest.fixture
def first_version() -> Scenario:
    return completion(tasks.complete_order)


@pytest.fixture
def fixed_version() -> Scenario:
    return completion(tasks.complete_order_safely)
