"""SMTP for the email fake: on a real socket (aiosmtpd) and in-process (smtplib answered without one),
with the same reply table, the journal and the search API of the email fake, and Django's send_mail."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from fake_services import FakeServices, FaultRule
from fake_services.smtp_inprocess import smtp_in_process
from fake_services.smtp_server import SMTPServer

pytest.importorskip("aiosmtpd", reason="the SMTP server needs aiosmtpd: pip install -e '.[smtp]'")


def message(subject: str = "Your order 7", to: str = "pat@example.com") -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"], mail["From"], mail["To"] = subject, "shop@example.com", to
    mail["Message-ID"] = "<order-7@shop.example>"
    mail.set_content("We charged 42.00 USD for order 7.")
    return mail


@pytest.fixture
def services() -> FakeServices:
    return FakeServices(seed=0)


@pytest.fixture(params=["socket", "in-process"])
def connect(request: pytest.FixtureRequest, services: FakeServices) -> Iterator[Callable[[], smtplib.SMTP]]:
    """A way to open an SMTP connection to the email fake: over a real socket, or in-process."""
    if request.param == "socket":
        with SMTPServer(services) as server:
            yield lambda: smtplib.SMTP(server.host, server.port, timeout=5)
    else:
        with smtp_in_process(services, {"smtp.shop.example:587"}):
            yield lambda: smtplib.SMTP("smtp.shop.example", 587, timeout=5)


def test_a_message_is_recorded_journaled_and_searchable(connect, services):
    with connect() as client:
        assert client.send_message(message()) == {}
    [entry] = services.effects()
    assert (entry.service, entry.operation) == ("email", "smtp_send")
    assert entry.keys == {"from": "shop@example.com", "subject": "Your order 7",
                          "message_id": "<order-7@shop.example>", "to": "pat@example.com"}
    from fake_services.transport import in_process_client

    found = in_process_client(services).get("/email/emails", params={"email": "pat@example.com"}).json()
    assert [(r["subject"], r["via"], r["body"].strip()) for r in found] == [
        ("Your order 7", "smtp", "We charged 42.00 USD for order 7.")]


def test_one_record_per_recipient_one_effect(connect, services):
    with connect() as client:
        client.sendmail("shop@example.com", ["a@example.com", "b@example.com"], message().as_bytes())
    assert sorted(r["to"] for r in services.email.records()) == ["a@example.com", "b@example.com"]
    assert len(services.effects()) == 1


@pytest.mark.parametrize(("arm", "raised", "code", "recorded"), [
    (lambda s: setattr(s.behaviours["email"], "throttle", True), smtplib.SMTPDataError, 451, 0),
    (lambda s: setattr(s.behaviours["email"], "crash", True), smtplib.SMTPDataError, 421, 0),
    (lambda s: s.schedule("email", FaultRule(fault="503", phase="after", nth=1)), smtplib.SMTPDataError, 451, 1),
    (lambda s: s.schedule("email", FaultRule(fault="drop", phase="before", nth=1)),
     smtplib.SMTPServerDisconnected, None, 0),
    (lambda s: s.schedule("email", FaultRule(fault="drop", phase="after", nth=1)),
     smtplib.SMTPServerDisconnected, None, 1),
])
def test_the_reply_table(connect, services, arm: Any, raised: type[Exception], code: int | None, recorded: int):
    arm(services)
    with pytest.raises(raised) as caught, connect() as client:
        client.send_message(message())
    if code is not None:
        assert caught.value.smtp_code == code  # type: ignore[attr-defined]
    # "Sent, then failed": after the effect, the mail went out although the client was told otherwise.
    assert len(services.email.records()) == recorded


def test_a_timeout_is_a_read_that_never_ends(services):
    services.schedule("email", FaultRule(fault="timeout", phase="after", nth=1, timeout_s=0.2))
    with smtp_in_process(services, {"smtp.shop.example"}), pytest.raises(TimeoutError):
        smtplib.SMTP("smtp.shop.example", 25).send_message(message())
    assert len(services.email.records()) == 1


def test_in_process_refuses_unmapped_hosts_and_restores_smtplib(services):
    original = smtplib.SMTP
    refused: list[str] = []
    with smtp_in_process(services, {"smtp.shop.example:587"}, on_refused=refused.append):
        assert smtplib.SMTP is not original and issubclass(smtplib.SMTP, original)
        with pytest.raises(ConnectionRefusedError, match=r"map_smtp\('smtp\.gmail\.com:587'\)"):
            smtplib.SMTP("smtp.gmail.com", 587)
        with smtplib.SMTP("smtp.shop.example", 587) as client:
            assert client.starttls()[0] == 220 and client.login("shop", "secret")[0] == 235
            assert client.noop()[0] == 250
    assert smtplib.SMTP is original
    assert refused == ["smtp.gmail.com:587"]


def test_the_world_maps_smtp_and_lets_loopback_through(services):
    from harness.outbound import Outbound

    outbound = Outbound(services)
    outbound.map_smtp("smtp.shop.example:587")
    with SMTPServer(services) as server, outbound.active():
        with smtplib.SMTP("smtp.shop.example", 587) as client:
            client.send_message(message("in-process"))
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:  # loopback: a real connection
            client.send_message(message("over the socket"))
        with pytest.raises(ConnectionRefusedError):
            smtplib.SMTP("smtp.other.example", 25)
    assert sorted(r["subject"] for r in services.email.records()) == ["in-process", "over the socket"]
    assert [str(r) for r in outbound.refused] == ["smtp://smtp.other.example:25"]


DJANGO = textwrap.dedent("""
    import sys
    import django
    from django.conf import settings
    settings.configure(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST=sys.argv[1],
                       EMAIL_PORT=int(sys.argv[2]), EMAIL_USE_TLS=sys.argv[3] == "tls",
                       EMAIL_HOST_USER="shop", EMAIL_HOST_PASSWORD="secret", EMAIL_TIMEOUT=5)
    django.setup()
    from django.core.mail import send_mail
    if sys.argv[3] == "in-process":
        from fake_services import FakeServices
        from fake_services.smtp_inprocess import smtp_in_process
        services = FakeServices(seed=0)
        with smtp_in_process(services, {f"{sys.argv[1]}:{sys.argv[2]}"}):
            sent = send_mail("Your order 7", "Thanks!", "shop@example.com", ["pat@example.com"])
        print(sent, [r["subject"] for r in services.email.records()])
    else:
        print(send_mail("Your order 7", "Thanks!", "shop@example.com", ["pat@example.com"]))
""")


def test_djangos_send_mail_reaches_the_fake_over_a_socket(services):
    pytest.importorskip("django")
    with SMTPServer(services) as server:
        done = subprocess.run([sys.executable, "-c", DJANGO, server.host, str(server.port), "plain"],
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
    assert [r["subject"] for r in services.email.records()] == ["Your order 7"]


def test_djangos_send_mail_with_tls_reaches_the_fake_in_process():
    pytest.importorskip("django")
    done = subprocess.run([sys.executable, "-c", DJANGO, "smtp.shop.example", "587", "in-process"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1 ['Your order 7']"


def test_harness_serve_speaks_smtp_on_its_own_port(tmp_path):
    import socket

    def free() -> int:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return int(probe.getsockname()[1])

    http_port, smtp_port = free(), free()
    server = subprocess.Popen([sys.executable, "-m", "harness.cli", "serve", "--port", str(http_port),
                               "--smtp-port", str(smtp_port)], stderr=subprocess.PIPE, text=True)
    try:
        assert server.stderr is not None
        seen = ""
        while "Uvicorn running" not in seen:
            line = server.stderr.readline()
            assert line, f"harness serve ended: {seen}"
            seen += line
        assert f"SMTP for the email fake on 127.0.0.1:{smtp_port}" in seen
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=5) as client:
            client.send_message(message())
        found = httpx.get(f"http://127.0.0.1:{http_port}/email/emails", params={"email": "pat@example.com"})
        assert [r["subject"] for r in found.json()] == ["Your order 7"]
    finally:
        server.terminate()
        server.wait(10)
        if server.stderr is not None:
            server.stderr.close()
