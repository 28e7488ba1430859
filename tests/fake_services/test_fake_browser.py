"""The behaviour form in a real headless Chromium: tick "Crash" for payments, then charges fail."""

from __future__ import annotations

import os
import pathlib

import httpx
import pytest
from fake_api_helpers import CHARGE

from fake_services import FakeServices
from fake_services.testing import serve_in_thread

CHROMIUM = pathlib.Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{CHROMIUM} is missing on CI: install it with `apt-get install -y chromium`")
        pytest.skip(f"{CHROMIUM} is absent; `apt-get install -y chromium` to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def test_crash_toggled_in_the_form_makes_charges_fail(browser) -> None:
    services = FakeServices(seed=0)
    with serve_in_thread(services) as url, httpx.Client(base_url=url) as http:
        assert http.post("/payments/charge", json=CHARGE).status_code == 201
        page = browser.new_page()
        page.goto(f"{url}/")
        page.click('a[href="/payments/ui"]')
        assert page.locator("#records tbody tr").count() == 1
        page.check("#crash")
        with page.expect_navigation():
            page.click("#save")
        assert page.url.endswith("/payments/ui")
        assert page.is_checked("#crash")
        assert services.behaviours["payments"].crash is True

        response = http.post("/payments/charge", json=CHARGE)
        assert 500 <= response.status_code < 600
        assert len(services.payments.records()) == 1

        page.goto(f"{url}/")
        assert page.locator('tr[data-service="payments"] td.bad').count() == 1
        page.goto(f"{url}/payments/ui")
        page.uncheck("#crash")
        page.fill("#sleep", "0")
        with page.expect_navigation():
            page.click("#save")
        assert http.post("/payments/charge", json=CHARGE).status_code == 201
