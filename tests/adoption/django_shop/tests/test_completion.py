"""Is completing an order safe to retry? The harness crashes every line of the tasks and fails every call
to Stripe, the mail relay and the warehouse, lets Celery retry, and checks the charge.

`test_first_version_charges_once` fails on purpose: the first version charges twice when it is retried.
"""

from __future__ import annotations

import pytest


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_fixed_version_charges_once(harness, fixed_version) -> None:
    report = harness.explore(fixed_version)
    print(report.to_text())
    report.assert_safe()


@pytest.mark.django_db(transaction=True, reset_sequences=True)
def test_first_version_charges_once(harness, first_version) -> None:
    harness.explore(first_version).assert_safe()
