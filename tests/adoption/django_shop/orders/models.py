"""An order, and what the tasks recorded of completing it."""

from django.db import models


class Order(models.Model):
    email = models.EmailField()
    amount_cents = models.PositiveIntegerField()
    customer = models.CharField(max_length=50)
    status = models.CharField(max_length=20, default="pending")
    payment_intent = models.CharField(max_length=50, blank=True, default="")
    receipt_sent = models.BooleanField(default=False)
    partner_notified = models.BooleanField(default=False)
