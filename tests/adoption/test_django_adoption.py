"""A Django shop adopts the harness from its wheel, with no line of the app changed.

The project in `django_shop/` completes an order in Celery tasks: it charges through the official
`stripe` package, mails the receipt with Django's `send_mail` over SMTP, and tells a partner's API with
`requests`. Only its tests and test settings know the harness: they map the shop's real hosts to the
fakes, read and restore its database through Django, and explore its own tasks. The first version
charges without an idempotency key and must be found with a story that names the task's line; its
fixed twin must be SAFE.
"""

from __future__ import annotations

import pathlib
import shutil
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest
from adoption_support import build_wheel, clean_env, make_venv, run_step, tail

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SHOP = pathlib.Path(__file__).resolve().parent / "django_shop"
EXTRAS = "celery,stripe,smtp,django"


@dataclass
class ShopRun:
    returncode: int
    output: str
    outcomes: dict[str, str]
    seconds: float
    project: pathlib.Path


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> ShopRun:
    root = tmp_path_factory.mktemp("django-adoption")
    _, wheel = build_wheel(root)
    venv = make_venv(root, [f"{wheel}[{EXTRAS}]", "pytest", "requests"])
    project = root / "django-shop"
    shutil.copytree(SHOP, project, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache", "*.sqlite3"))
    junit = project / "junit.xml"
    started = time.perf_counter()
    done = run_step(
        [venv / "bin" / "python", "-m", "pytest", "-p", "no:cacheprovider", "-rP", f"--junitxml={junit}",
         "--harness-engine", "celery"],
        what="the shop's pytest run", cwd=project, timeout=600, env=clean_env(venv),
    )
    seconds = time.perf_counter() - started
    output = done.stdout + done.stderr
    assert junit.exists(), f"the shop's run wrote no report (exit {done.returncode}):\n{tail(output)}"
    outcomes = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        failed = case.find("failure") is not None or case.find("error") is not None
        outcomes[case.attrib["name"]] = "failed" if failed else "passed"
    return ShopRun(done.returncode, output, outcomes, seconds, project)


def test_the_fixed_task_is_safe_and_the_first_version_is_not(shop: ShopRun) -> None:
    assert shop.outcomes == {
        "test_fixed_version_charges_once": "passed",
        "test_first_version_charges_once": "failed",
    }, tail(shop.output, 120)
    assert shop.returncode == 1
    assert "shop.complete_order_safely on celery (seed 0): SAFE" in shop.output
    assert "shop.complete_order on celery (seed 0): UNSAFE" in shop.output
    print(f"the shop's suite ran in {shop.seconds:.1f} s")


def test_the_story_names_the_tasks_own_line_and_the_double_charge(shop: ShopRun) -> None:
    tasks = (shop.project / "orders" / "tasks.py").read_text().splitlines()
    first = tasks.index("def complete_order(order_id):")
    charge_line = next(i for i in range(first, len(tasks)) if "_charge(order)" in tasks[i]) + 1
    # The worker dies on the task's next line, once Stripe has taken the money: the retry charges again.
    crash = f"crashed at `orders/tasks.py:{charge_line + 1}` just after `stripe.create_payment_intent` returned"
    assert crash in shop.output, tail(shop.output, 120)
    assert "the charge" in shop.output and "2 times" in shop.output, tail(shop.output, 120)
