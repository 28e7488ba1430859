"""The book's split stage written natively for each engine: charge, then a job that emails, then a job
that asks for fulfilment, each step enqueueing the next the way a team writes it (`actor.send`,
`task.delay` / `task.apply_async`, `Queue(...).enqueue` on the team's own queue). The email step of the
"naive" chains sends without looking (a retry or a redelivery emails twice); the "safe" twins search for
the confirmation first. Charge and fulfilment send idempotency keys, so the email is the one planted bug.
"""

from __future__ import annotations

from typing import Any

import fakeredis
from rq import Queue, Retry

from fake_services.clients import EmailClient, FulfillmentClient, PaymentsClient, TransientServiceError

CLIENTS: dict[str, Any] = {}
TEMPLATE = "order-confirmation"
#: The team's own RQ queue on its own connection: reached only if the harness does not route the enqueue.
TEAM_QUEUE = Queue("default", connection=fakeredis.FakeRedis())


def configure(world: Any) -> None:
    CLIENTS["payments"] = PaymentsClient(world.base_url, http=world.http)
    CLIENTS["email"] = EmailClient(world.base_url, http=world.http)
    CLIENTS["fulfillment"] = FulfillmentClient(world.base_url, http=world.http)


def charge(order_id: int) -> None:
    CLIENTS["payments"].charge(
        customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id},
        idempotency_key=f"charge-order-{order_id}",
    )


def email_naively(order_id: int) -> None:
    CLIENTS["email"].send(to="pat@example.com", template_id=TEMPLATE, template_data={"order_id": order_id})


def email_safely(order_id: int) -> None:
    sent = CLIENTS["email"].search(email="pat@example.com", template_id=TEMPLATE)
    if not any(e.get("template_data", {}).get("order_id") == order_id for e in sent):
        CLIENTS["email"].send(to="pat@example.com", template_id=TEMPLATE, template_data={"order_id": order_id})


def fulfil(order_id: int) -> None:
    CLIENTS["fulfillment"].request(
        customer_id=1, address="1 Main St", product_id=3, quantity=1, metadata={"order_id": order_id},
        idempotency_key=f"fulfil-order-{order_id}",
    )


# -- Dramatiq: actors on the team's own broker ------------------------------------------------------------
def dramatiq_chain(safe: bool) -> Any:
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    broker = StubBroker()
    email = email_safely if safe else email_naively

    def fulfil_order(order_id: int) -> None:
        fulfil(order_id)

    def email_order(order_id: int) -> None:
        email(order_id)
        fulfilment.send(order_id)

    def charge_order(order_id: int) -> None:
        charge(order_id)
        confirmation.send(order_id)

    fulfilment = dramatiq.actor(fulfil_order, broker=broker, actor_name="chain.fulfil", max_retries=3)
    confirmation = dramatiq.actor(email_order, broker=broker, actor_name="chain.email", max_retries=3)
    return dramatiq.actor(charge_order, broker=broker, actor_name="chain.charge", max_retries=3)


# -- Celery: tasks of the team's own app -------------------------------------------------------------------
def celery_chain(safe: bool) -> Any:
    from celery import Celery

    app = Celery("team_shop", broker="memory://", set_as_current=False)
    settings = {"autoretry_for": (TransientServiceError,), "max_retries": 3, "acks_late": True, "shared": False}
    email = email_safely if safe else email_naively

    def fulfil_order(order_id: int) -> None:
        fulfil(order_id)

    def email_order(order_id: int) -> None:
        email(order_id)
        fulfilment.delay(order_id)

    def charge_order(order_id: int) -> None:
        charge(order_id)
        confirmation.apply_async(args=[order_id], countdown=5)

    fulfilment = app.task(fulfil_order, name="chain.fulfil", **settings)
    confirmation = app.task(email_order, name="chain.email", **settings)
    return app.task(charge_order, name="chain.charge", **settings)


# -- RQ: functions enqueued on the team's own queue --------------------------------------------------------
def rq_fulfil_order(order_id: int) -> None:
    fulfil(order_id)


def rq_email_naively(order_id: int) -> None:
    email_naively(order_id)
    TEAM_QUEUE.enqueue(rq_fulfil_order, order_id, retry=Retry(max=3, interval=10))


def rq_email_safely(order_id: int) -> None:
    email_safely(order_id)
    TEAM_QUEUE.enqueue(rq_fulfil_order, order_id, retry=Retry(max=3, interval=10))


def rq_charge_naive(order_id: int) -> None:
    charge(order_id)
    TEAM_QUEUE.enqueue(rq_email_naively, order_id, retry=Retry(max=3, interval=10))


def rq_charge_safe(order_id: int) -> None:
    charge(order_id)
    TEAM_QUEUE.enqueue_in(_seconds(5), rq_email_safely, order_id, retry=Retry(max=3, interval=10))


def _seconds(n: int) -> Any:
    from datetime import timedelta

    return timedelta(seconds=n)


def rq_chain(safe: bool) -> Any:
    return rq_charge_safe if safe else rq_charge_naive


CHAINS = {"dramatiq": dramatiq_chain, "celery": celery_chain, "rq": rq_chain}
#: What the entry job is enqueued with, as the team's code enqueues it.
ENQUEUE_OPTIONS: dict[str, dict[str, Any]] = {"rq": {"retry": Retry(max=3, interval=10)}}


def _scenario(engine: str, safe: bool) -> Any:
    from harness.explore import Scenario

    return Scenario(
        name=f"chain.{engine}.{'safe' if safe else 'naive'}",
        job=CHAINS[engine](safe),
        setup=lambda world: [7],
        configure=configure,
        targets=[__name__],
        enqueue_options=ENQUEUE_OPTIONS.get(engine, {}),
    )


#: For `harness explore native_chains:DRAMATIQ_NAIVE --engine dramatiq`.
DRAMATIQ_NAIVE = _scenario("dramatiq", safe=False)
RQ_SAFE = _scenario("rq", safe=True)
