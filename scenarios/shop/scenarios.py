"""The shop's jobs as scenarios for the explorer: one per stage of the book, and the job never retried.

Each setup empties the database, creates a customer, a product and an order, and returns the order id for
the job. `STAGES` holds the three versions of order completion in the order the book builds them, so
`harness demo` shows the double charge of the first, the duplicate email of the second, and the third safe.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from harness import Job
from harness.explore.scenario import Scenario
from harness.invariants import completed_within
from scenarios.shop import (
    db,
    jobs_idempotent,
    jobs_keyed,
    jobs_locked,
    jobs_naive,
    jobs_noretry,
    jobs_reconcile,
    jobs_split,
    locks,
)
from scenarios.shop.app import drop_process_state
from scenarios.shop.invariants import (
    announced_at_most_once,
    charged_once,
    emailed_once,
    fulfilled_once,
    lost_announcement_reported,
    order_matches_services,
    order_outcomes,
)
from scenarios.shop.middleware import configure
from scenarios.shop.orders import create_product, create_user, save_order, update_order

if TYPE_CHECKING:
    from harness.world import World

__all__ = [
    "EMAIL_AT_ONCE",
    "EMAIL_AT_ONCE_LOCKED",
    "FORGETFUL_BROKER",
    "FORGETFUL_BROKER_RECONCILED",
    "IDEMPOTENT",
    "KEYED_ONLY",
    "KEYED_RECORDED",
    "NAIVE",
    "NO_RETRY",
    "SCENARIOS",
    "SPLIT",
    "STAGES",
    "place_order",
]

ORDER_INVARIANTS = (charged_once, emailed_once, fulfilled_once, order_matches_services)


#: Wiring, not behaviour: a crash inside the client cache, the clock or the engine getter leaves the
#: same state as a crash just before the call that follows, so those lines only lengthen reports.
WIRING = ("scenarios.shop.app", "scenarios.shop.db")


def fingerprint(world: World) -> object:
    """The app's own state for the explorer's pruning: every database row."""
    return db.STATE.fingerprint(world)


def place_order(world: World) -> list[int]:
    """Setup: a fresh database holding one customer, one product and one pending order."""
    db.reset_data()
    user_id = create_user()
    product_id = create_product()
    return [save_order(user_id, product_id, quantity=1)]


#: `place_order` writes only the database, so later plans get its database back from a copy.
replayed_place_order = db.STATE.replaying(place_order)


def _stage(name: str, job: Job, jobs: tuple[Job, ...], description: str) -> Scenario:
    return Scenario(
        name=name,
        job=job,
        jobs=jobs,
        setup=replayed_place_order,
        configure=configure,
        invariants=ORDER_INVARIANTS,
        targets=["scenarios.shop"],
        exclude=WIRING,
        reset=drop_process_state,
        fingerprint=fingerprint,
        isolate=db.isolate_worker,
        description=description,
        tags=("shop", "order"),
    )


NAIVE = _stage(
    "shop.naive",
    jobs_naive.complete_order,
    (),
    "one job charges, emails and requests fulfillment; a retry after the charge charges again",
)
SPLIT = _stage(
    "shop.split",
    jobs_split.complete_order,
    (jobs_split.send_confirmation_email, jobs_split.request_fulfillment),
    "three chained jobs, each retried alone; a service that acts and then fails still duplicates",
)
IDEMPOTENT = _stage(
    "shop.idempotent",
    jobs_idempotent.complete_order,
    (jobs_idempotent.send_confirmation_email, jobs_idempotent.request_fulfillment),
    "chained jobs that skip recorded steps, search before emailing and send idempotency keys",
)

NO_RETRY = Scenario(
    name="shop.no_retry",
    job=jobs_noretry.announce_order,
    setup=replayed_place_order,
    configure=configure,
    invariants=(announced_at_most_once, lost_announcement_reported),
    targets=["scenarios.shop"],
    exclude=WIRING,
    reset=drop_process_state,
    fingerprint=fingerprint,
    isolate=db.isolate_worker,
    # A job that is never retried loses its effect when it fails; the death handler's alert covers that.
    compare_to_clean_run=False,
    description="a chat announcement with no idempotency support, never retried; a person hears of failures",
    tags=("shop", "no-retry"),
)

#: The book's three stages of order completion, in order, for `harness demo`.
#: The business-outcome monitor: every order completed (or declined) within an hour of being placed.
COMPLETED_WITHIN_AN_HOUR = completed_within(3600, order_outcomes, what="order")

#: The idempotent stage when the broker forgets (a Redis restarted without persistence): safe under
#: every retry, yet an order whose next job was queued when Redis lost it is never completed, and no
#: error is raised anywhere. Only the monitor notices.
FORGETFUL_BROKER = replace(
    IDEMPOTENT,
    name="shop.forgetful_broker",
    invariants=(*ORDER_INVARIANTS, COMPLETED_WITHIN_AN_HOUR),
    broker_loss=True,
    description="the idempotent stage on a broker that forgets: orders stop halfway and nothing raises",
)
#: The fix: a reconciler run every half hour by a scheduler outside the broker pushes stuck orders on.
FORGETFUL_BROKER_RECONCILED = replace(
    FORGETFUL_BROKER,
    name="shop.forgetful_broker_reconciled",
    periodic=((jobs_reconcile.reconcile_orders, 1800.0),),
    periodic_for=3600.0,
    description="the same, with a reconciler on a timer that enqueues the next step of stuck orders",
)

#: An outage of a day and a bit: longer than the 24 hours a payment provider keeps an idempotency key.
LONG_OUTAGE_S = 30 * 3600.0

#: One job that trusts its idempotency keys alone and records the charge only at the end: safe under every
#: ordinary fault, unsafe once an outage outlives the key (the retry after the key expired charges again).
KEYED_ONLY = replace(
    _stage("shop.keyed_only", jobs_keyed.ship_order, (),
           "one job that trusts idempotency keys alone; an outage longer than a key's life charges twice"),
    invariants=(charged_once, fulfilled_once, order_matches_services),
    outages=(LONG_OUTAGE_S,),
)
#: The fix: the charge is written to the order row before anything else can fail, and a retry skips it.
KEYED_RECORDED = replace(
    KEYED_ONLY,
    name="shop.keyed_recorded",
    job=jobs_keyed.ship_order_recorded,
    description="the same job recording the charge before fulfillment; no outage charges twice",
)

def charged_order(world: World) -> list[int]:
    """Setup: an order the first job has charged, so the confirmation email is next; no lock held."""
    [order_id] = replayed_place_order(world)
    update_order(order_id, status="charged", charged_at=world.clock.time())
    locks.reset()
    return [order_id]


def fingerprint_with_locks(world: World) -> object:
    """Every database row and every lock held: a delivery that takes or drops a lock touched something
    the other one sees, so the concurrency explorer switches around it."""
    return fingerprint(world), tuple(sorted(locks.redis().keys("lock:*")))


#: The idempotent stage's email job, delivered twice at the same moment (explored by
#: `harness.explore.concurrent`). Safe under every retry; two deliveries that both search before either
#: sends send twice. The order module is excluded: its calls run as one step each, so no delivery is
#: paused inside an open database transaction the other would wait on.
EMAIL_AT_ONCE = Scenario(
    name="shop.email_at_once",
    job=jobs_idempotent.send_confirmation_email,
    jobs=(jobs_idempotent.request_fulfillment,),
    setup=charged_order,
    configure=configure,
    invariants=(emailed_once, fulfilled_once, order_matches_services),
    targets=["scenarios.shop"],
    exclude=(*WIRING, "scenarios.shop.orders", "scenarios.shop.locks"),
    reset=drop_process_state,
    fingerprint=fingerprint_with_locks,
    description="the email job delivered twice at once: search-before-send sends twice",
    tags=("shop", "concurrent"),
)
#: The fix: a Redis lock per order around the search and the send; the second delivery stops and is run
#: again later, when the first has recorded the email.
EMAIL_AT_ONCE_LOCKED = replace(
    EMAIL_AT_ONCE,
    name="shop.email_at_once_locked",
    job=jobs_locked.send_confirmation_email,
    description="the same with a Redis lock (SET NX with a token) around search and send",
)

STAGES: dict[str, Scenario] = {"naive": NAIVE, "split": SPLIT, "idempotent": IDEMPOTENT}

#: Every shop scenario by short name.
SCENARIOS: dict[str, Scenario] = {**STAGES, "no_retry": NO_RETRY, "keyed_only": KEYED_ONLY,
                                   "keyed_recorded": KEYED_RECORDED}
