"""What a routed call costs: a job's own module-level httpx client, aimed at a production host that
`world.outbound` maps to the fakes, against the in-process transport (`world.http`), side by side in one
run; and the same charge through `requests`. Also what the typed clients save on an in-process client,
where they call the services without httpx's request and response objects."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import httpx

from fake_services import FakeServices
from fake_services.clients import PaymentsClient
from fake_services.transport import ServicesTransport, in_process_client
from harness.outbound import Outbound

BODY = {"customer_id": 1, "payment_method_id": 2, "amount_cents": 1500}


def _per_call_us(call: Callable[[], object], count: int) -> float:
    for _ in range(50):
        call()
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1e6


def run(quick: bool) -> dict[str, dict]:
    import requests

    count, rounds = (400, 3) if quick else (2000, 7)
    services = FakeServices(seed=0)
    outbound = Outbound(services)
    outbound.map("https://api.pay.example", "payments")
    direct = in_process_client(services)
    routed = httpx.Client(base_url="https://api.pay.example")
    session = requests.Session()
    ratios, requests_ratios, direct_us = [], [], []
    try:
        with outbound.active():
            for n in range(rounds):
                services.reset()
                timings = {}
                order = ("direct", "routed", "requests") if n % 2 == 0 else ("requests", "routed", "direct")
                for kind in order:
                    if kind == "direct":
                        timings[kind] = _per_call_us(lambda: direct.post("/payments/charge", json=BODY), count)
                    elif kind == "routed":
                        timings[kind] = _per_call_us(lambda: routed.post("/charge", json=BODY), count)
                    else:
                        timings[kind] = _per_call_us(
                            lambda: session.post("https://api.pay.example/charge", json=BODY), count)
                ratios.append(timings["routed"] / timings["direct"])
                requests_ratios.append(timings["requests"] / timings["direct"])
                direct_us.append(timings["direct"])
    finally:
        direct.close()
        routed.close()
        session.close()
    base = statistics.median(direct_us)
    typed_ratio, typed_us = _typed_clients(count, rounds)
    return {
        "clients.httpx_vs_direct_ratio": {
            "value": typed_ratio,
            "unit": "x",
            "note": f"PaymentsClient.charge through httpx over the in-process transport against the same "
            f"client on in_process_client, which skips httpx ({typed_us:.0f} us a charge); median of "
            f"{rounds} paired rounds of {count}",
        },
        "outbound.routed_vs_transport_ratio": {
            "value": statistics.median(ratios),
            "unit": "x",
            "note": f"a module-level httpx.Client to a mapped host over world.http's in-process transport "
            f"({base:.0f} us a charge), median of {rounds} paired rounds of {count} charges",
        },
        "outbound.requests_vs_transport_ratio": {
            "value": statistics.median(requests_ratios),
            "unit": "x",
            "note": "requests.Session to the same mapped host over the in-process transport, same rounds",
        },
    }


def _typed_clients(count: int, rounds: int) -> tuple[float, float]:
    """(httpx path / direct path, direct us a charge), medians of paired rounds."""
    services = FakeServices(seed=0)
    direct = PaymentsClient(http=in_process_client(services))
    through_httpx = PaymentsClient(http=httpx.Client(transport=ServicesTransport(services)))

    def charge(client: PaymentsClient) -> Callable[[], object]:
        return lambda: client.charge(customer_id="cus_1", payment_method_id="pm_visa", amount_cents=1500)

    ratios, direct_us = [], []
    for n in range(rounds):
        services.reset()
        timings = {}
        for kind in (("direct", "httpx") if n % 2 == 0 else ("httpx", "direct")):
            timings[kind] = _per_call_us(charge(direct if kind == "direct" else through_httpx), count)
        ratios.append(timings["httpx"] / timings["direct"])
        direct_us.append(timings["direct"])
    direct.http.close()
    through_httpx.http.close()
    return statistics.median(ratios), statistics.median(direct_us)
