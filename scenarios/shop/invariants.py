"""What must hold after the shop's jobs ran, however often they were interrupted and retried.

Each check reads the fake services' records and the orders table, and names its evidence: the order,
the count, the ids. A declined order must not be charged, emailed or shipped; every other order exactly
once each, and its row must record the very charge, email and shipment the services hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scenarios.shop import db
from scenarios.shop.jobs_noretry import SALES_CHANNEL
from scenarios.shop.orders import CONFIRMATION_TEMPLATE, Order

if TYPE_CHECKING:
    from harness.world import World

__all__ = [
    "announced_at_most_once",
    "charged_once",
    "charges_for",
    "confirmations_for",
    "emailed_once",
    "fulfilled_once",
    "fulfillments_for",
    "lost_announcement_reported",
    "order_matches_services",
]


def all_orders() -> list[Order]:
    """Every order as the database holds it now (read once per change, shared by every invariant)."""
    return [Order(**row) for row in db.STATE.rows("orders")]


def _order_id(record: dict[str, Any], field: str = "metadata") -> Any:
    return (record.get(field) or {}).get("order_id")


def charges_for(world: World, order_id: int) -> list[dict[str, Any]]:
    """Successful charges the payments service holds for the order (declines took no money)."""
    return [r for r in world.services.payments.records() if _order_id(r) == order_id and r.get("status") == "success"]


def confirmations_for(world: World, order: Order) -> list[dict[str, Any]]:
    return [
        r
        for r in world.services.email.records()
        if r.get("template_id") == CONFIRMATION_TEMPLATE
        and r.get("to") == order.email
        and _order_id(r, "template_data") == order.id
    ]


def fulfillments_for(world: World, order_id: int) -> list[dict[str, Any]]:
    return [r for r in world.services.fulfillment.records() if _order_id(r) == order_id]


def _once(what: str, order: Order, found: list[dict[str, Any]], id_field: str) -> str | None:
    expected = 0 if order.status == "declined" else 1
    if len(found) == expected:
        return None
    ids = ", ".join(str(r.get(id_field)) for r in found) or "none"
    return f"order {order.id} was {what} {len(found)} times (expected {expected}): {ids}"


def charged_once(world: World) -> list[str]:
    found = (_once("charged", o, charges_for(world, o.id), "charge_id") for o in all_orders())
    return [problem for problem in found if problem]


def emailed_once(world: World) -> list[str]:
    found = (_once("emailed", o, confirmations_for(world, o), "email_id") for o in all_orders())
    return [problem for problem in found if problem]


def fulfilled_once(world: World) -> list[str]:
    found = (_once("sent to fulfillment", o, fulfillments_for(world, o.id), "request_id") for o in all_orders())
    return [problem for problem in found if problem]


def order_matches_services(world: World) -> list[str]:
    """The order row records what the services did: no charge, email or shipment it does not know of."""
    problems = []
    for order in all_orders():
        steps = [
            ("charge", order.charge_id, charges_for(world, order.id), "charge_id"),
            ("email", order.email_id, confirmations_for(world, order), "email_id"),
            (
                "fulfillment request",
                order.fulfillment_request_id,
                fulfillments_for(world, order.id),
                "request_id",
            ),
        ]
        for what, recorded, found, id_field in steps:
            ids = [str(r.get(id_field)) for r in found]
            if recorded is None and ids:
                problems.append(f"order {order.id} records no {what}, but the service has {', '.join(ids)}")
            elif recorded is not None and recorded not in ids:
                problems.append(
                    f"order {order.id} records {what} {recorded}, which the service does not have "
                    f"(it has {', '.join(ids) or 'none'})"
                )
        if order.status != "declined" and order.status != "completed":
            problems.append(f"order {order.id} ended with status {order.status!r} (expected 'completed')")
    return problems


def _announcements(world: World, order_id: int) -> list[dict[str, Any]]:
    prefix = f"New order {order_id}:"
    return [
        r
        for r in world.services.chat.records()
        if r.get("channel") == SALES_CHANNEL and str(r.get("text", "")).startswith(prefix)
    ]


def announced_at_most_once(world: World) -> list[str]:
    problems = []
    for order in all_orders():
        posts = _announcements(world, order.id)
        if len(posts) > 1:
            problems.append(f"order {order.id} was announced {len(posts)} times in {SALES_CHANNEL} (expected 1)")
    return problems


def lost_announcement_reported(world: World) -> list[str]:
    """An announcement that never went out must have reached a person through the error catcher."""
    reports = [
        str(r.get("exception_message") or r.get("message") or "") for r in world.services.error_catcher.records()
    ]
    problems = []
    for order in all_orders():
        if _announcements(world, order.id):
            continue
        if not any("announce_order won't be retried" in text for text in reports):
            problems.append(
                f"order {order.id} was never announced and nobody was told "
                f"({len(reports)} error reports, none from the death handler)"
            )
    return problems


def order_outcomes(world: World) -> dict[int, tuple[float, float | None]]:
    """When each order was placed and when it reached its final state (completed or declined; None while
    it has not): what a production monitor of "orders not completed after an hour" reads."""
    outcomes: dict[int, tuple[float, float | None]] = {}
    for order in all_orders():
        done = order.fulfilled_at if order.status == "completed" else None
        if order.status == "declined":
            done = order.charged_at or order.created_at
        outcomes[order.id] = (order.created_at, done)
    return outcomes
