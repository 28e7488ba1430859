"""The shop's real RQ worker end to end, without Docker: what the `shop-worker` service of compose.yaml runs.

The fake services listen on a free loopback port in this process; the worker is a subprocess on the local
Redis (database 9, which no test flushes, and a queue prefix of its own for each run); orders are placed
with the worker's own `enqueue-order` command. The checks read what the services recorded and the order
rows, and the worker must stop cleanly on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fake_services import FakeServices, FaultRule
from fake_services.testing import serve_in_thread
from harness.engines.workers import redis_available

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = "redis://127.0.0.1:6379/9"

pytestmark = [pytest.mark.redis, pytest.mark.timeout(120)]


@dataclass
class ShopRun:
    """One worker subprocess and what it talks to."""

    services: FakeServices
    services_url: str
    database_url: str
    prefix: str
    process: subprocess.Popen[bytes]
    log: Path

    def env(self) -> dict[str, str]:
        # Half of the settings through the environment, half as options: both ways must work.
        scale = "0.05"  # retries after a second, not Sidekiq's 15 s and more
        return {**os.environ, "REDIS_URL": REDIS_URL, "SHOP_QUEUE_PREFIX": self.prefix, "SHOP_RETRY_DELAY_SCALE": scale}

    def options(self) -> list[str]:
        return ["--services-url", self.services_url, "--database-url", self.database_url]

    def command(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "scenarios.shop.worker", *args, *self.options()],
            cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=60, check=False,
        )
        assert done.returncode == 0, f"{args} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        return done.stdout

    def place_order(self, stage: str = "idempotent", email: str = "pat@example.com") -> int:
        placed = json.loads(self.command("enqueue-order", "--stage", stage, "--email", email))
        assert placed["job"] == f"scenarios.shop.jobs_{stage}.complete_order"
        assert placed["job_id"].startswith(f"{self.prefix}-")
        return int(placed["order_id"])

    def stats(self) -> dict[str, Any]:
        return dict(json.loads(self.command("stats")))

    def order(self, order_id: int) -> dict[str, Any]:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                row = conn.execute(text("select * from orders where id = :id"), {"id": order_id}).mappings().one()
                return dict(row)
        finally:
            engine.dispose()

    def wait_for(self, what: str, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if self.process.poll() is not None:
                pytest.fail(f"the worker exited ({self.process.returncode}) before {what}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} after {timeout} s; worker log:\n{self.log.read_text()}")
            time.sleep(0.1)

    def wait_until_quiet(self, order_id: int) -> dict[str, Any]:
        """The order is completed and nothing is queued, running or waiting for a retry."""
        self.wait_for(f"completion of order {order_id}", lambda: self.order(order_id)["status"] == "completed")

        def quiet() -> bool:
            stats = self.stats()
            return stats["enqueued"] == 0 and stats["retries"] == 0 and stats["scheduled"] == 0

        self.wait_for("an idle worker", quiet)
        return self.order(order_id)


def _need_redis() -> None:
    if not redis_available(REDIS_URL):
        if os.environ.get("CI"):
            raise RuntimeError(f"Redis is not reachable at {REDIS_URL} and CI is set")
        pytest.skip(f"no Redis at {REDIS_URL}")


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ShopRun]:
    _need_redis()
    folder = tmp_path_factory.mktemp("shop-worker")
    services = FakeServices()
    with serve_in_thread(services) as services_url:
        run = ShopRun(
            services=services,
            services_url=services_url,
            database_url=f"sqlite:///{folder / 'shop.sqlite3'}",
            prefix=f"t{uuid.uuid4().hex[:12]}",
            process=None,  # type: ignore[arg-type]  # started just below
            log=folder / "worker.log",
        )
        with run.log.open("wb") as out:
            run.process = subprocess.Popen(
                [sys.executable, "-m", "scenarios.shop.worker", "--engine", "rq", *run.options()],
                cwd=ROOT, env=run.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        try:
            run.wait_for("the worker listening", lambda: "Listening on" in run.log.read_text())
            yield run
            run.process.send_signal(signal.SIGTERM)
            code = run.process.wait(timeout=30)
            assert code == 0, f"the worker exited with {code} on SIGTERM:\n{run.log.read_text()}"
            assert "warm shut down requested" in run.log.read_text()
        finally:
            if run.process.poll() is None:
                os.killpg(run.process.pid, signal.SIGKILL)
                run.process.wait(timeout=10)
            _forget(run.prefix)


def _forget(prefix: str) -> None:
    """Delete the run's queues, jobs and counts from the shared Redis."""
    from scenarios.shop.worker import RedisQueues, Settings

    engine = RedisQueues.connect(Settings(redis_url=REDIS_URL, queue_prefix=prefix))
    try:
        engine.reset()
    finally:
        engine.close()


@pytest.fixture
def services(shop: ShopRun) -> FakeServices:
    shop.services.reset()
    return shop.services


def _for_order(records: list[dict[str, Any]], order_id: int, field: str = "metadata") -> list[dict[str, Any]]:
    return [r for r in records if (r.get(field) or {}).get("order_id") == order_id]


def test_the_worker_charges_emails_and_ships_an_order_once(shop: ShopRun, services: FakeServices) -> None:
    order_id = shop.place_order(email="ada@example.com")
    order = shop.wait_until_quiet(order_id)

    charges = _for_order(services.payments.records(), order_id)
    assert [c["status"] for c in charges] == ["success"]
    emails = _for_order(services.email.records(), order_id, "template_data")
    assert [(e["to"], e["template_id"]) for e in emails] == [("ada@example.com", "order-confirmation")]
    shipments = _for_order(services.fulfillment.records(), order_id)
    assert len(shipments) == 1
    assert (order["charge_id"], order["email_id"], order["fulfillment_request_id"]) == (
        charges[0]["charge_id"],
        emails[0]["email_id"],
        shipments[0]["request_id"],
    )
    assert services.error_catcher.records() == []


def test_a_charge_that_fails_after_its_effect_is_retried_without_a_second_charge(
    shop: ShopRun, services: FakeServices
) -> None:
    services.schedule("payments", FaultRule("503", phase="after", next=1, operation="charge"))
    failed_before = shop.stats()["failed"]
    order_id = shop.place_order()
    order = shop.wait_until_quiet(order_id)

    charge_calls = [e for e in services.journal.entries() if (e.service, e.operation) == ("payments", "charge")]
    assert [e.status for e in charge_calls] == [503, 201]  # the retry ran, with the same idempotency key
    charges = _for_order(services.payments.records(), order_id)
    assert [c["charge_id"] for c in charges] == [order["charge_id"]]
    assert shop.stats()["failed"] == failed_before + 1
    assert services.error_catcher.records() == []  # a transient failure is retried, not reported


def test_the_naive_job_charges_twice_when_the_charge_fails_after_its_effect(
    shop: ShopRun, services: FakeServices
) -> None:
    services.schedule("payments", FaultRule("503", phase="after", next=1, operation="charge"))
    order_id = shop.place_order(stage="naive")
    shop.wait_until_quiet(order_id)

    charges = _for_order(services.payments.records(), order_id)
    assert len(charges) == 2, charges  # lesson 5, on a real worker: the retry charged again
    assert len(_for_order(services.email.records(), order_id, "template_data")) == 1

