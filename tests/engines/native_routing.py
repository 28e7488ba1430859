"""A charge job written natively for each engine (a Dramatiq actor, an RQ function, a Celery task), with
the hooks a team installs: transient service errors are retried quietly, everything else and every death
reaches the error catcher. For the routing matrix on native jobs."""

from __future__ import annotations

from typing import Any

from fake_services.clients import ErrorCatcherClient, PaymentsClient, TransientServiceError
from harness.explore import Scenario

CLIENTS: dict[str, Any] = {}


def configure(world: Any) -> None:
    CLIENTS["payments"] = PaymentsClient(world.base_url, http=world.http)
    CLIENTS["errors"] = ErrorCatcherClient(world.base_url, http=world.http)

    def report_error(exc: BaseException, context: dict[str, Any]) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, TransientServiceError):
            CLIENTS["errors"].notify(exception_class=type(exc).__name__, exception_message=str(exc) or "-")

    def report_death(record: Any, exc: BaseException) -> None:
        CLIENTS["errors"].notify(exception_class=type(exc).__name__, exception_message=f"{record.job} died")

    world.engine.hooks.error_handlers[:] = [report_error]
    world.engine.hooks.death_handlers[:] = [report_death]


def charge(order_id: int) -> None:
    CLIENTS["payments"].charge(
        customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id},
        idempotency_key=f"charge-order-{order_id}",
    )


def dramatiq_charge(**options: Any) -> Any:
    import dramatiq
    from dramatiq.brokers.stub import StubBroker

    return dramatiq.actor(charge, broker=StubBroker(), actor_name="native.charge", **options)


def celery_charge(**options: Any) -> Any:
    from celery import Celery

    app = Celery("native_shop", broker="memory://", set_as_current=False)
    return app.task(charge, name="native.charge", shared=False, **options)


def scenario(job: Any, **fields: Any) -> Scenario:
    return Scenario(name=f"native.charge.{type(job).__name__}", job=job, setup=lambda world: [7],
                    configure=configure, targets=[__name__], **fields)
