"""Test settings: the production ones on a test database. Nothing here points at the harness: the tests
map the shop's real hosts to the fakes."""

from shop.settings import *  # noqa: F403

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": BASE_DIR / "test-shop.sqlite3",  # noqa: F405
        "TEST": {"NAME": BASE_DIR / "test-shop.sqlite3"},  # noqa: F405
    }
}
STRIPE_API_KEY = "sk_test_shop"
