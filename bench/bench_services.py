"""Charges per second and latency through the fake services on a real loopback socket.

The services run under uvicorn in a child process; 64 concurrent keep-alive connections post charges.
A trivial Starlette endpoint answering the same charge is measured the same way in the same run, and
the ratio says how much of the server's capacity the services' own code costs (1.0 = none).

Where the seed's server is at hand (HARNESS_SEED_SERVER names a checkout of the Sinatra fake API
server, or its `app/fake_api_server.rb`, and `ruby` can load Sinatra), it is started as it ships and
loaded the same way beside ours, paired round by round: `services.vs_seed_ratio`. The load comes from
wrk when it is on PATH, else from the client below.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx

CONCURRENCY = 64
ROOT = pathlib.Path(__file__).resolve().parent.parent
CHARGE = {"customer_id": 1, "payment_method_id": "pm_1", "amount_cents": 1500, "metadata": {"order_id": 7}}


def _bare_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def charge(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"status": "success", "charge_id": "ch_00000000"}, status_code=201)

    async def status(request: Request) -> JSONResponse:
        return JSONResponse({})

    return Starlette(routes=[Route("/payments/charge", charge, methods=["POST"]),
                             Route("/payments/status", status)])


def serve(kind: str, port: int) -> None:
    """Entry point of the child process: serve `kind` ("services" or "bare") on loopback."""
    import uvicorn

    if kind == "services":
        from fake_services import FakeServices, create_app

        app = create_app(FakeServices(seed=0))
    else:
        app = _bare_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(kind: str) -> Iterator[tuple[int, int]]:
    """Start `kind` ("services", "bare" or "seed") on a free loopback port; yield the port and pid."""
    port = _free_port()
    with tempfile.TemporaryFile() as log:
        if kind == "seed":
            script = _seed_script()
            # As the seed's own bin/run starts it; BINDING and PORT are the settings it reads.
            command, cwd = ["ruby", str(script)], script.parent.parent
            env = {**os.environ, "BINDING": "127.0.0.1", "PORT": str(port)}
            output: Any = log
        else:
            code = f"from bench.bench_services import serve; serve({kind!r}, {port})"
            command, cwd = [sys.executable, "-c", code], ROOT
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            output = None
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=output)
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(500):
                if child.poll() is not None:
                    raise RuntimeError(f"the {kind} server exited with {child.returncode} before listening")
                try:
                    httpx.get(f"{url}/payments/status", timeout=0.5)
                    break
                except httpx.TransportError:
                    time.sleep(0.02)
            else:
                raise RuntimeError(f"the {kind} server did not answer on {url} within 10 s")
            if kind == "seed":
                log.seek(0)
                found = re.search(rb"backup from (\w+)", log.read(4096))
                _SEED_SERVER.append(found.group(1).decode() if found else "its default server")
            yield port, child.pid
        finally:
            child.terminate()
            child.wait(10)


SEED_ENV = "HARNESS_SEED_SERVER"
_SEED_SERVER: list[str] = []  # the Ruby web server Sinatra picked, as the seed announced it


def _seed_script() -> pathlib.Path:
    """The seed's app file named by HARNESS_SEED_SERVER (a checkout, or the file itself)."""
    named = pathlib.Path(os.environ[SEED_ENV]).expanduser()
    script = named / "app" / "fake_api_server.rb" if named.is_dir() else named
    if not script.is_file():
        raise RuntimeError(f"{SEED_ENV}={named} holds no app/fake_api_server.rb (a checkout of the seed's "
                           "fake API server, or that file, is expected)")
    return script.resolve()


def seed_missing() -> str | None:
    """Why the seed's server cannot be measured here, or None when it can.

    Unset, it is simply not measured; set but unusable, it is an error, not a silent skip."""
    if not os.environ.get(SEED_ENV):
        return f"{SEED_ENV} is not set"
    _seed_script()
    if shutil.which("ruby") is None:
        raise RuntimeError(f"{SEED_ENV} is set but ruby is not on PATH")
    loads = subprocess.run(["ruby", "-e", 'require "sinatra/base"; require "json"'],
                           capture_output=True, text=True, timeout=60)
    if loads.returncode != 0:
        raise RuntimeError(f"{SEED_ENV} is set but ruby cannot load Sinatra: {loads.stderr.strip()[-300:]}")
    return None


_WRK_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}


def parse_wrk(output: str) -> tuple[float, float]:
    """Requests per second and the 99th percentile latency in seconds from `wrk --latency`'s report."""
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p99 = re.search(r"^\s+99(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\b", output, re.M)
    if rate is None or p99 is None:
        raise RuntimeError(f"wrk printed no rate or 99th percentile:\n{output[-1000:]}")
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if failed:
        raise RuntimeError(f"{failed.group(1)} charges were not answered with success under wrk")
    errors = re.search(r"Socket errors:.*", output)
    if errors and any(int(n) for n in re.findall(r"\d+", errors.group(0))):
        raise RuntimeError(f"wrk saw {errors.group(0)}")
    return float(rate.group(1)), float(p99.group(1)) * _WRK_UNITS[p99.group(2)]


def _wrk(port: int, seconds: int) -> tuple[float, float]:
    """Charges per second and p99 (s) under wrk: 2 threads, 64 keep-alive connections."""
    lua = (f'wrk.method = "POST"\nwrk.body = [[{json.dumps(CHARGE)}]]\n'
           'wrk.headers["Content-Type"] = "application/json"\nwrk.headers["Accept"] = "*/*"\n')
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua)
        script.flush()
        done = subprocess.run(["wrk", "-t2", f"-c{CONCURRENCY}", f"-d{seconds}s", "--latency", "-s",
                               script.name, f"http://127.0.0.1:{port}/payments/charge"],
                              capture_output=True, text=True, timeout=seconds + 60, check=True)
    return parse_wrk(done.stdout)


def _rate_and_p99(kind: str, seconds: int) -> tuple[float, float]:
    """One server's charges per second and p99 (s), with wrk when there is one, else the client below."""
    with _server(kind) as (port, _):
        if shutil.which("wrk"):
            _wrk(port, 1)  # warm up: Ruby's and Python's first requests are the slowest
            return _wrk(port, seconds)
        asyncio.run(_load(port, CONCURRENCY * 5))
        rate, latencies = asyncio.run(_load(port, CONCURRENCY * 50 * seconds))
        return rate, _percentile(latencies, 0.99)


def vs_seed(quick: bool) -> dict[str, dict]:
    """Our charges per second and p99 against the seed's server, paired runs in this one run."""
    missing = seed_missing()
    if missing:
        print(f"services.vs_seed_ratio not measured: {missing} (reporting services.vs_bare_asgi_ratio)",
              file=sys.stderr)
        return {}
    rounds, seconds = (1, 3) if quick else (3, 10)
    runs: dict[str, list[tuple[float, float]]] = {"services": [], "seed": []}
    for n in range(rounds):
        for kind in ("seed", "services") if n % 2 == 0 else ("services", "seed"):
            runs[kind].append(_rate_and_p99(kind, seconds))
    ratio = statistics.median(ours[0] / seed[0] for ours, seed in zip(runs["services"], runs["seed"], strict=True))
    p99_ours = statistics.median(p99 for _, p99 in runs["services"])
    p99_seed = statistics.median(p99 for _, p99 in runs["seed"])
    rate_ours = statistics.median(rate for rate, _ in runs["services"])
    rate_seed = statistics.median(rate for rate, _ in runs["seed"])
    load = (f"wrk -t2 -c{CONCURRENCY} -d{seconds}s" if shutil.which("wrk")
            else f"{CONCURRENCY} keep-alive connections from this bench's client")
    server = _SEED_SERVER[-1] if _SEED_SERVER else "its default server"
    return {
        "services.vs_seed_ratio": {
            "value": round(ratio, 2), "unit": "ratio",
            "note": (f"our charges/s over the seed's Sinatra server (on {server}), {load}, median of "
                     f"{rounds} paired runs: {rate_ours:.0f} vs {rate_seed:.0f} req/s")},
        "services.vs_seed_p99_ratio": {
            "value": round(p99_ours / p99_seed, 3), "unit": "ratio",
            "note": f"our p99 over the seed's under that load (<= 1: ours is no slower): "
                    f"{p99_ours * 1000:.1f} vs {p99_seed * 1000:.1f} ms"},
    }


def _request_bytes(port: int) -> bytes:
    body = json.dumps(CHARGE).encode()
    head = (f"POST /payments/charge HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _one_connection(port: int, count: int, latencies: list[float]) -> None:
    """One keep-alive client: send a charge, read the whole answer, repeat. Deliberately minimal, so
    the figures measure the server rather than a client library's connection pool."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = _request_bytes(port)
    try:
        for _ in range(count):
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 201:
                raise RuntimeError(f"charge answered {status}: {body[:200]!r}")
    finally:
        writer.close()


async def _load(port: int, total: int) -> tuple[float, list[float]]:
    per_client = total // CONCURRENCY
    warmup: list[float] = []
    await asyncio.gather(*[_one_connection(port, 5, warmup) for _ in range(CONCURRENCY)])
    latencies: list[float] = []
    start = time.perf_counter()
    await asyncio.gather(*[_one_connection(port, per_client, latencies) for _ in range(CONCURRENCY)])
    elapsed = time.perf_counter() - start
    return per_client * CONCURRENCY / elapsed, latencies


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a process so far (None where /proc is not there)."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(kind: str, total: int) -> tuple[float, list[float], float | None]:
    """Requests per second, latencies, and the server's CPU seconds per request (None if unknown)."""
    with _server(kind) as (port, pid):
        asyncio.run(_load(port, CONCURRENCY * 5))  # warm the server's code paths before counting
        before = _cpu_seconds(pid)
        rate, latencies = asyncio.run(_load(port, total))
        after = _cpu_seconds(pid)
    cpu = None if before is None or after is None else (after - before) / len(latencies)
    return rate, latencies, cpu


def _in_process_rate(total: int) -> float:
    """Charges per second through the typed client and the in-process transport (what jobs use)."""
    from fake_services import FakeServices, ServicesTransport
    from fake_services.clients import PaymentsClient

    services = FakeServices(seed=0)
    with httpx.Client(transport=ServicesTransport(services), base_url="http://fake-services") as http:
        payments = PaymentsClient(http=http)
        for _ in range(200):
            payments.charge(customer_id=1, payment_method_id="pm_1", amount_cents=1500)
        start = time.perf_counter()
        for n in range(total):
            payments.charge(customer_id=1, payment_method_id="pm_1", amount_cents=1500, metadata={"n": n})
        return total / (time.perf_counter() - start)


def run(quick: bool) -> dict[str, dict]:
    total = 1920 if quick else 6400
    rounds = 3 if quick else 7
    rates: dict[str, list[float]] = {"bare": [], "services": []}
    cpu: dict[str, list[float | None]] = {"bare": [], "services": []}
    latencies: list[float] = []
    # The machine is shared, so pair each services run with a bare run next to it, swap their order
    # every round, and report medians: one noisy round then moves nothing.
    for n in range(rounds):
        for kind in ("bare", "services") if n % 2 == 0 else ("services", "bare"):
            rate, seen, cpu_per_request = _measure(kind, total)
            rates[kind].append(rate)
            cpu[kind].append(cpu_per_request)
            if kind == "services":
                latencies.extend(seen)
    rate, bare_rate = statistics.median(rates["services"]), statistics.median(rates["bare"])
    cpu_bare = [c for c in cpu["bare"] if c is not None]
    cpu_services = [c for c in cpu["services"] if c is not None]
    if len(cpu_bare) < rounds or len(cpu_services) < rounds:
        ratio = statistics.median(s / b for s, b in zip(rates["services"], rates["bare"], strict=True))
        how = "throughput over a trivial Starlette endpoint's, median of paired runs"
    else:
        # A server that is CPU-bound serves 1/cpu-per-request: comparing the server process's own CPU
        # time per request says what our code costs, whatever else the machine is doing.
        ratio = statistics.median(cpu_bare) / statistics.median(cpu_services)
        how = (f"server CPU per request of a trivial Starlette endpoint over ours "
               f"({statistics.median(cpu_bare) * 1e6:.0f} vs "
               f"{statistics.median(cpu_services) * 1e6:.0f} us)")
    where = f"{CONCURRENCY} concurrent keep-alive connections, uvicorn ({_stack()}) in a child process on loopback"
    in_process = max(_in_process_rate(2000 if quick else 10000) for _ in range(3))
    return {
        "services.inprocess_charges_per_s": {"value": round(in_process, 1), "unit": "req/s",
                                             "note": "PaymentsClient over ServicesTransport, one thread, "
                                                     "best of 3"},
        "services.charges_per_s": {"value": round(rate, 1), "unit": "req/s",
                                   "note": f"POST /payments/charge, {where}; median of {rounds} runs"},
        "services.p50_ms": {"value": round(_percentile(latencies, 0.50) * 1000, 2), "unit": "ms",
                            "note": "median charge latency under that load"},
        "services.p99_ms": {"value": round(_percentile(latencies, 0.99) * 1000, 2), "unit": "ms",
                            "note": "99th percentile charge latency under that load"},
        "services.vs_bare_asgi_ratio": {"value": round(ratio, 3), "unit": "ratio",
                                        "note": f"{how}; bare endpoint {bare_rate:.0f} req/s"},
        **vs_seed(quick),
    }


def _stack() -> str:
    """What uvicorn runs on: uvloop and httptools when installed (the `fast` extra), else pure Python."""
    import importlib.util

    fast = [name for name in ("uvloop", "httptools") if importlib.util.find_spec(name) is not None]
    return " + ".join(fast) if fast else "asyncio + h11"
