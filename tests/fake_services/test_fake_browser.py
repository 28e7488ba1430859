"""The behaviour form in a real headless Chromium: tick "Crash" for payments, then charges fail."""

from __future__ import annotations

import contextlib
import http.server
import os
import pathlib
import threading
from collections.abc import Iterator

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


def _submit(page, selector: str) -> None:
    with page.expect_navigation():
        page.click(selector)


def test_a_person_at_the_pages_can_do_what_the_control_api_does(browser) -> None:
    services = FakeServices(seed=0)
    with serve_in_thread(services) as url, httpx.Client(base_url=url) as http:
        page = browser.new_page()
        page.goto(f"{url}/payments/ui")

        # Throttle with a Retry-After, then crash with a chosen status.
        page.check("#throttle")
        page.fill("#retry_after", "30")
        _submit(page, "#save")
        throttled = http.post("/payments/charge", json=CHARGE)
        assert throttled.status_code == 429 and throttled.headers["retry-after"] == "30"
        page.uncheck("#throttle")
        page.check("#crash")
        page.select_option("#crash_status", "502")
        _submit(page, "#save")
        assert http.post("/payments/charge", json=CHARGE).status_code == 502
        page.uncheck("#crash")
        _submit(page, "#save")

        # A fault rule on the second charge, after its effect; shown with its selector, then removed.
        page.select_option("#fault", "503")
        page.select_option("#phase", "after")
        page.select_option("#calls", "nth")
        page.fill("#count", "2")
        page.select_option("#operation", "charge")
        _submit(page, "#add-rule")
        row = page.locator("#faults tbody tr")
        assert row.count() == 1 and row.locator("td.selector").inner_text() == "nth=2"
        assert [http.post("/payments/charge", json=CHARGE).status_code for _ in range(2)] == [201, 503]
        page.reload()
        assert "503" in row.inner_text() and "charge" in row.inner_text()
        _submit(page, "#faults button.remove")
        assert page.locator("#faults").count() == 0 and services.faults("payments") == []

        # A form that cannot be taken shows a page that says why, with the way back.
        page.fill("#sleep", "soon")
        _submit(page, "#save")
        assert "sleep must be a number of seconds" in page.inner_text("#message")
        _submit(page, "#back")
        assert page.url.endswith("/payments/ui")

        # The journal, then a reset of this service, then of everything.
        page.goto(f"{url}/journal/ui")
        assert page.locator("#journal tbody tr").count() >= 4
        assert "502" in page.inner_text("#journal")
        page.goto(f"{url}/payments/ui")
        assert page.locator("#records tbody tr").count() == 2
        _submit(page, "#reset-service-button")
        assert services.payments.records() == [] and "Nothing yet" in page.inner_text("#records")
        http.post("/email/send", json={"to": "a@example.com", "template_id": "t"})
        page.goto(f"{url}/")
        _submit(page, "#reset-all-button")
        assert services.email.records() == [] and len(services.journal) == 0
        page.goto(f"{url}/journal/ui")
        assert "Nothing yet" in page.inner_text("#journal")


ATTACK = """<!doctype html><html><body>
<form id="f" method="post" action="{url}/ui/payments/behaviour"><input name="crash" value="on"></form>
<script>
  fetch("{url}/behaviors/payments/faults", {{method: "POST", mode: "no-cors", body: '{{"fault": "503"}}'}})
    .then(() => fetch("{url}/reset", {{method: "POST", mode: "no-cors"}}))
    .then(() => fetch("{url}/payments/charge", {{method: "POST", mode: "no-cors",
      body: '{{"customer_id": 1, "payment_method_id": 1, "amount_cents": 1}}'}}))
    .finally(() => {{ document.title = "sent"; document.getElementById("f").submit(); }});
</script></body></html>"""


@contextlib.contextmanager
def _attacker_site(html: str) -> Iterator[str]:
    """Another origin on this machine (another port): what a local dev server or a page a person opened
    would be. Both ends are loopback, so no browser rule on private networks steps in."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_a_page_of_another_site_cannot_change_the_services(browser) -> None:
    services = FakeServices(seed=0)
    with serve_in_thread(services) as url, httpx.Client(base_url=url) as http_client, \
            _attacker_site(ATTACK.format(url=url)) as attacker:
        assert http_client.post("/payments/charge", json=CHARGE).status_code == 201
        page = browser.new_page()
        # Its form post and its no-preflight fetches carry the attacker's Origin.
        with page.expect_navigation(url=f"{url}/ui/payments/behaviour"):
            page.goto(f"{attacker}/attack.html")
        assert "Cross-site request refused" in page.content()
        assert services.behaviours["payments"].crash is False and services.faults("payments") == []
        assert len(services.payments.records()) == 1  # no reset, no charge
        assert [e.status for e in services.journal.entries()] == [201]  # the refused ones never got in
