"""DjangoState in a Django project tested with pytest-django: its models' rows as the fingerprint (read
again only after a write), a replayed setup, and a reset that leaves the test's own transaction alone."""

from __future__ import annotations

import pytest

pytest.importorskip("django")
pytest.importorskip("pytest_django")

SETTINGS = """
SECRET_KEY = "not-a-secret"
INSTALLED_APPS = ["shopapp"]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "app.sqlite3", "TEST": {"NAME": "test_app.sqlite3"}}
}
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
"""

MODELS = """
from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=50)


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
    status = models.CharField(max_length=20, default="pending")
"""

TESTS = """
import pytest
from django.db import connection, transaction

from harness.databases import DjangoState
from shopapp.models import Customer, Order


def place_order(world):
    customer = Customer.objects.create(name="Pat")
    return [Order.objects.create(customer=customer).id]


@pytest.mark.django_db(transaction=True)
def test_fingerprint_follows_writes_and_is_cached_between():
    state = DjangoState()
    assert [m.__name__ for m in state.models()] == ["Customer", "Order"]
    place_order(None)
    first = state.fingerprint()
    assert first == state.fingerprint() and state.reads == 1
    Order.objects.update(status="charged")
    second = state.fingerprint()
    assert second != first and state.reads == 2
    assert state.rows(Order) == [{"id": 1, "customer_id": 1, "status": "charged"}]


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_a_replayed_setup_restores_rows_and_ids():
    calls = []
    state = DjangoState()

    def setup(world):
        calls.append(1)
        return place_order(world)

    replayed = state.replaying(setup)
    assert replayed(None) == [1]
    clean = state.fingerprint()
    Order.objects.update(status="charged")
    Customer.objects.create(name="Sam")
    assert replayed(None) == [1] and calls == [1]
    assert state.fingerprint() == clean
    assert Customer.objects.create(name="Lee").id == 2, "ids go on from where the setup left them"


@pytest.mark.django_db(transaction=True)
def test_reset_closes_the_connection_a_crash_left_open():
    state = DjangoState()
    place_order(None)
    Customer.objects.count()
    assert connection.connection is not None
    state.reset()
    assert connection.connection is None
    assert Order.objects.count() == 1, "the data stays"


@pytest.mark.django_db
def test_inside_the_tests_own_transaction_reset_keeps_it_and_every_read_is_fresh():
    state = DjangoState()
    place_order(None)
    with transaction.atomic():
        state.fingerprint()
        state.fingerprint()
    assert state.reads == 2, "a rollback could undo writes unseen: no cache inside a transaction"
    state.reset()
    assert connection.in_atomic_block and Order.objects.count() == 1
"""


def test_django_state_in_a_pytest_django_project(pytester):
    pytester.makepyfile(settings=SETTINGS)
    pytester.mkpydir("shopapp")
    pytester.makepyfile(**{"shopapp/models": MODELS})
    pytester.makepyfile(test_state=TESTS)
    result = pytester.runpytest_subprocess("-p", "pytest_django", "--ds=settings", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
