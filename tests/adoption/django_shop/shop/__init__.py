"""The shop's Django project; its Celery app loads with it, as Celery's Django guide sets it up."""

from shop.celery import app as celery_app

__all__ = ["celery_app"]
