"""Jobs and scenarios as users get them wrong, for the tests of earned verdicts and clear refusals.

Each scenario is a mistake a new user makes: a client never pointed at the fakes, a job that reaches no
service, a typo in `targets`, an invariant that answers a number, an assert-style invariant, a `configure`
that raises. The harness must answer each with a clear error (or, for the assert, a violation), never
with a verdict it did not earn.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
from typing import Any

import httpx

from fake_services.clients import PaymentsClient, TransientServiceError
from harness import job
from harness.explore import Scenario

STATE: dict[str, Any] = {}

#: A port nothing listens on: a client left at its production URL here fails at once, as it would
#: against the real provider from a machine that cannot reach it.
NOWHERE = "http://127.0.0.1:9"


def configure(world: Any) -> None:
    STATE["payments"] = PaymentsClient(world.base_url, http=world.http)


def forget_to_configure(world: Any) -> None:
    STATE["payments"] = PaymentsClient(NOWHERE, http=httpx.Client(base_url=NOWHERE, timeout=2))


def broken_configure(world: Any) -> None:
    raise RuntimeError("settings module missing STRIPE_KEY")


def setup(world: Any) -> list[Any]:
    return [7]


@job(retry=3)
def charge(order_id: int) -> None:
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})


@job(retry=3)
def tidy_up(order_id: int) -> None:
    STATE.setdefault("tidied", []).append(order_id)


def answers_a_number(world: Any) -> Any:
    return 42


def asserts_one_charge(world: Any) -> None:
    charges = world.services.payments.records()
    assert len(charges) == 1, f"expected one charge, found {len(charges)}"


def asserts_without_message(world: Any) -> None:
    assert len(world.services.payments.records()) == 1


def _scenario(name: str, **changes: Any) -> Scenario:
    options: dict[str, Any] = {"job": charge, "setup": setup, "configure": configure, "targets": [__name__]}
    options.update(changes)
    return Scenario(name=name, **options)


UNCONFIGURED = _scenario("untrusted.unconfigured", configure=forget_to_configure)
CALLS_NOTHING = _scenario("untrusted.calls_nothing", job=tidy_up)
CALLS_NOTHING_SAID = _scenario("untrusted.calls_nothing_said", job=tidy_up, calls_nothing=True)
TARGET_TYPO = _scenario("untrusted.target_typo", targets=["untrustd"])
NUMBER_INVARIANT = _scenario("untrusted.number_invariant", invariants=[answers_a_number])
ASSERT_INVARIANT = _scenario("untrusted.assert_invariant", invariants=[asserts_one_charge])
BARE_ASSERT_INVARIANT = _scenario("untrusted.bare_assert_invariant", invariants=[asserts_without_message])
BROKEN_CONFIGURE = _scenario("untrusted.broken_configure", configure=broken_configure)


# -- jobs that would take the explorer down with them ---------------------------------------------------
@job(retry=3)
def sleeps_forever(order_id: int) -> None:
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})
    time.sleep(3600)


@job(retry=3)
def spins_forever(order_id: int) -> None:
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})
    while True:
        pass


@job(retry=3)
def churns_forever(order_id: int) -> None:
    """Busy for ever in C: each pass of the loop is one recorded line, so only the time limit stops it (a
    loop of bare Python lines can fill the event budget first, on a fast machine)."""
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})
    while True:
        sum(range(200_000))


@job(retry=3)
def waits_forever(order_id: int) -> None:
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})
    threading.Event().wait()


@job(retry=3)
def waits_on_a_503(order_id: int) -> None:
    try:
        STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})
    except TransientServiceError as exc:
        if exc.status == 503:
            time.sleep(3600)
        raise  # "wait for the provider to come back", for an hour


@job(retry=3)
def exits_the_process(order_id: int) -> None:
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})
    os._exit(3)


@job(retry=3)
def calls_sys_exit(order_id: int) -> None:
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})
    sys.exit(4)


def _charge_later(order_id: int, delay: float) -> None:
    time.sleep(delay)
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})


@job(retry=3)
def charges_from_a_thread(order_id: int) -> None:
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1, metadata={"order_id": order_id})
    threading.Thread(target=_charge_later, args=(order_id, 0.05), name="charger").start()


@job(retry=3)
def leaves_a_long_thread(order_id: int) -> None:
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})
    threading.Thread(target=time.sleep, args=(30,), name="lingerer").start()


#: A module-level connection that a crash leaves open, as a process keeps it.
DB = sqlite3.connect(":memory:", check_same_thread=False)


@job(retry=3)
def books_in_sqlite(order_id: int) -> None:
    DB.execute("CREATE TABLE IF NOT EXISTS bookings (order_id INTEGER)")
    DB.execute("INSERT INTO bookings VALUES (?)", (order_id,))
    STATE["payments"].charge(customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id})
    DB.commit()


def settle_threads(world: Any) -> None:
    """An invariant that only waits for the threads a job started, so their calls land in the journal."""
    for thread in threading.enumerate():
        if thread.name == "charger":
            thread.join()


SLEEPS = _scenario("untrusted.sleeps", job=sleeps_forever, attempt_timeout=0.5)
CHURNS = _scenario("untrusted.churns", job=churns_forever, attempt_timeout=0.5)
SPINS_UNLIMITED = _scenario("untrusted.spins_unlimited", job=spins_forever, attempt_timeout=None)
WAITS = _scenario("untrusted.waits", job=waits_forever, attempt_timeout=0.5)
HANGS_ON_A_503 = _scenario("untrusted.hangs_on_a_503", job=waits_on_a_503, attempt_timeout=0.5)
EXITS = _scenario("untrusted.exits", job=exits_the_process)
SYS_EXIT = _scenario("untrusted.sys_exit", job=calls_sys_exit)
THREADED = _scenario("untrusted.threaded", job=charges_from_a_thread, invariants=[settle_threads])
LINGERS = _scenario("untrusted.lingers", job=leaves_a_long_thread)
SQLITE_NO_RESET = _scenario("untrusted.sqlite_no_reset", job=books_in_sqlite)


@job(retry=3)
def interrupted(order_id: int) -> None:
    raise KeyboardInterrupt


INTERRUPTED = _scenario("untrusted.interrupted", job=interrupted)


# -- a job whose calls go through a helper: a crash in the helper is told from the job's line down -----
def _post_charge(order_id: int) -> str | None:
    result = STATE["payments"].charge(
        customer_id=1, payment_method_id=2, amount_cents=1500, metadata={"order_id": order_id}
    )
    return result.charge_id


@job(retry=3)
def charges_through_a_helper(order_id: int) -> None:
    charge_id = _post_charge(order_id)
    STATE.setdefault("charges", []).append(charge_id)


LAYERED = _scenario("untrusted.layered", job=charges_through_a_helper)
