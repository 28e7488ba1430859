"""`fake_services.server.serve` (what `harness serve` runs) in a child process, on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
from fake_api_helpers import CHARGE

from fake_services import FakeServices, ServicesTransport


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_answers_on_loopback_with_seeded_ids() -> None:
    port = _free_port()
    code = f"from fake_services.server import serve; serve(port={port}, seed=3, log_level='warning')"
    child = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(500):
            assert child.poll() is None, "the server exited before it answered"
            try:
                httpx.get(f"{url}/payments/status", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.02)
        served = httpx.post(f"{url}/payments/charge", json=CHARGE).json()["charge_id"]
    finally:
        child.terminate()
        child.wait(10)
    with httpx.Client(transport=ServicesTransport(FakeServices(seed=3)), base_url="http://x") as http:
        assert http.post("/payments/charge", json=CHARGE).json()["charge_id"] == served
