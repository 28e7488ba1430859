"""Completing an order: charge it through Stripe, mail the receipt, tell the warehouse. Each step is a
Celery task that queues the next, retried on any error with Celery's own back-off.

`complete_order` is the first version: it charges with no idempotency key, so a retry after Stripe took
the money charges the card again. `complete_order_safely` is the fix: the charge carries a key naming the
order, and a charge already recorded on the order is not made again.
"""

import requests
import stripe
from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from orders.models import Order

RETRY = {"autoretry_for": (Exception,), "retry_backoff": True, "max_retries": 5, "acks_late": True}


def _charge(order, **options):
    stripe.api_key = settings.STRIPE_API_KEY
    return stripe.PaymentIntent.create(
        amount=order.amount_cents,
        currency="usd",
        customer=order.customer,
        payment_method="pm_card_visa",
        confirm=True,
        metadata={"order_id": order.id},
        **options,
    )


@shared_task(**RETRY)
def complete_order(order_id):
    order = Order.objects.get(pk=order_id)
    intent = _charge(order)
    order.payment_intent = intent.id
    order.status = "paid"
    order.save()
    send_receipt.delay(order.id)


@shared_task(**RETRY)
def complete_order_safely(order_id):
    order = Order.objects.get(pk=order_id)
    if not order.payment_intent:
        intent = _charge(order, idempotency_key=f"charge-order-{order.id}")
        order.payment_intent = intent.id
        order.status = "paid"
        order.save()
    send_receipt.delay(order.id)


@shared_task(**RETRY)
def send_receipt(order_id):
    order = Order.objects.get(pk=order_id)
    if not order.receipt_sent:
        send_mail(
            f"Your order {order.id}",
            f"We charged {order.amount_cents / 100:.2f} USD for order {order.id}.",
            settings.DEFAULT_FROM_EMAIL,
            [order.email],
        )
        Order.objects.filter(pk=order.id).update(receipt_sent=True)
    notify_partner.delay(order.id)


@shared_task(**RETRY)
def notify_partner(order_id):
    order = Order.objects.get(pk=order_id)
    if order.partner_notified:
        return
    response = requests.post(
        settings.PARTNER_ORDERS_URL,
        json={"order_id": order.id, "email": order.email},
        headers={"Idempotency-Key": f"order-{order.id}"},
        timeout=10,
    )
    response.raise_for_status()
    Order.objects.filter(pk=order.id).update(partner_notified=True)
