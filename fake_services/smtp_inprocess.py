"""SMTP without a socket: `smtplib.SMTP` answered in-process by the email fake, for exploration.

Inside `smtp_in_process(services, hosts)`, `smtplib.SMTP` (and `SMTP_SSL`) is a subclass that, for a
host it was told to answer (`"smtp.shop.example:587"`, or a bare host for any port), talks to the SMTP
core of `fake_services.smtp` instead of connecting: Django's `send_mail`, `smtplib` code and anything else
that looks the class up on the module when it connects reach the fake unchanged. Any other host is
refused with a `ConnectionRefusedError` that says how to map it; nothing is ever sent out.

The replies follow the table in `fake_services.smtp`, raised as `smtplib` raises them for a real server:
`SMTPDataError` for a refused message, `SMTPServerDisconnected` for a dropped connection, `TimeoutError`
for a reply that never comes, `SMTPRecipientsRefused` when no recipient is left.
"""

from __future__ import annotations

import smtplib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from fake_services.smtp import SERVER_NAME, deliver

if TYPE_CHECKING:
    from fake_services.state import FakeServices

__all__ = ["smtp_in_process"]

_lock = threading.RLock()
_active: list[_Answering] = []
_saved: dict[str, Any] = {}


class _Answering(NamedTuple):
    services: FakeServices
    hosts: Iterable[str]  # read at each connection, so hosts mapped later count
    on_refused: Callable[[str], None] | None
    let_through: Callable[[str, int], bool] | None

    def answers(self, host: str, port: int) -> bool:
        wanted = {h.lower() for h in self.hosts}
        return bool({f"{host}:{port}".lower(), host.lower()} & wanted)


@contextmanager
def smtp_in_process(services: FakeServices, hosts: Iterable[str],
                    on_refused: Callable[[str], None] | None = None,
                    let_through: Callable[[str, int], bool] | None = None) -> Iterator[None]:
    """Answer SMTP connections to `hosts` (`host:port` or `host`) with `services`' email fake while the
    block runs; refuse any other, except those `let_through(host, port)` allows (they connect for real:
    a local SMTP server, say). `on_refused(address)` hears of each refusal. Nesting is fine: the
    innermost block answers."""
    entry = _Answering(services, hosts, on_refused, let_through)
    with _lock:
        if not _active:
            _saved["SMTP"], _saved["SMTP_SSL"] = smtplib.SMTP, smtplib.SMTP_SSL
            patched = _classes(_saved["SMTP"], _saved["SMTP_SSL"])
            setattr(smtplib, "SMTP", patched[0])  # noqa: B010 (the module attribute is what callers look up)
            setattr(smtplib, "SMTP_SSL", patched[1])  # noqa: B010
        _active.append(entry)
    try:
        yield
    finally:
        with _lock:
            _active.remove(entry)
            if not _active:
                setattr(smtplib, "SMTP", _saved["SMTP"])  # noqa: B010
                setattr(smtplib, "SMTP_SSL", _saved["SMTP_SSL"])  # noqa: B010


def _classes(base: type[smtplib.SMTP], ssl_base: type[smtplib.SMTP_SSL]) -> tuple[type, type]:
    class InProcessSMTP(_InProcess, base):  # type: ignore[valid-type, misc]
        """`smtplib.SMTP`, answered by the email fake (see `fake_services.smtp_inprocess`)."""

        def __new__(cls, host: str = "", port: int = 0, *args: Any, **kwargs: Any) -> Any:
            if _goes_out(host, port, base.default_port):
                return base(host, port, *args, **kwargs)  # a real connection, allowed
            return super().__new__(cls)

    class InProcessSMTP_SSL(_InProcess, ssl_base):  # type: ignore[valid-type, misc]
        """`smtplib.SMTP_SSL`, answered by the email fake; there is no TLS in-process."""

        def __new__(cls, host: str = "", port: int = 0, *args: Any, **kwargs: Any) -> Any:
            if _goes_out(host, port, ssl_base.default_port):
                return ssl_base(host, port, *args, **kwargs)
            return super().__new__(cls)

    return InProcessSMTP, InProcessSMTP_SSL


def _goes_out(host: str, port: int, default_port: int) -> bool:
    """Whether a connection to `host:port` is neither answered in-process nor refused, but let through."""
    if not host:
        return False
    port = port or default_port
    with _lock:
        current = _active[-1] if _active else None
    return (current is not None and current.let_through is not None and not current.answers(host, port)
            and current.let_through(host, port))


class _InProcess:
    """The SMTP commands a client uses, answered by the core; smtplib's attributes kept as it keeps them."""

    _services: FakeServices | None = None
    default_port: int
    sock: Any
    file: Any
    ehlo_resp: bytes | None
    helo_resp: bytes | None
    does_esmtp: bool
    esmtp_features: dict[str, str]

    def connect(self, host: str = "localhost", port: int = 0, source_address: Any = None) -> tuple[int, bytes]:
        if not port and ":" in host and host.count(":") == 1:
            host, _, digits = host.partition(":")
            port = int(digits) if digits.isdigit() else 0
        port = port or self.default_port
        self._host = host
        with _lock:
            current = _active[-1] if _active else None
        if current is None or not current.answers(host, port):
            address = f"{host}:{port}"
            if current is not None and current.on_refused is not None:
                current.on_refused(address)
            raise ConnectionRefusedError(
                111, f"the harness refused an SMTP connection to {address} (never sent): no fake answers it. "
                     f"Map it to the email fake, e.g. world.outbound.map_smtp({address!r})")
        self._services = current.services
        self.sock = _Connected()  # smtplib checks that it has one
        self._envelope_from: str | None = None
        self._recipients: list[str] = []
        return 220, f"{SERVER_NAME} ESMTP ready".encode()

    def _live(self) -> FakeServices:
        if self._services is None:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        return self._services

    def ehlo(self, name: str = "") -> tuple[int, bytes]:
        self._live()
        self.ehlo_resp = f"{SERVER_NAME}\nAUTH PLAIN LOGIN\nSTARTTLS\n8BITMIME\nSMTPUTF8".encode()
        self.does_esmtp = True
        self.esmtp_features = {"auth": "PLAIN LOGIN", "starttls": "", "8bitmime": "", "smtputf8": ""}
        return 250, self.ehlo_resp

    def helo(self, name: str = "") -> tuple[int, bytes]:
        self._live()
        self.helo_resp = SERVER_NAME.encode()
        return 250, self.helo_resp

    def ehlo_or_helo_if_needed(self) -> None:
        if getattr(self, "helo_resp", None) is None and getattr(self, "ehlo_resp", None) is None:
            self.ehlo()

    def starttls(self, *args: Any, **kwargs: Any) -> tuple[int, bytes]:
        self.ehlo_or_helo_if_needed()
        return 220, b"2.0.0 Ready to start TLS (nothing to encrypt in-process)"

    def login(self, user: str, password: str, *, initial_response_ok: bool = True) -> tuple[int, bytes]:
        self.ehlo_or_helo_if_needed()
        return 235, b"2.7.0 Authentication successful"

    def noop(self) -> tuple[int, bytes]:
        self._live()
        return 250, b"2.0.0 OK"

    def rset(self) -> tuple[int, bytes]:
        self._envelope_from, self._recipients = None, []
        return 250, b"2.0.0 OK"

    def docmd(self, cmd: str, args: str = "") -> tuple[int, bytes]:
        """The commands smtplib sends by name (QUIT from `with`, NOOP, RSET); others are not offered."""
        verb = cmd.strip().upper()
        if verb == "QUIT":
            return self.quit()
        if verb == "NOOP":
            return self.noop()
        if verb == "RSET":
            return self.rset()
        self._live()
        return 502, b"5.5.1 Command not implemented"

    # The envelope, for clients that send it step by step instead of with sendmail().
    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        self.ehlo_or_helo_if_needed()
        self._envelope_from, self._recipients = sender, []
        return 250, b"2.1.0 OK"

    def rcpt(self, recip: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        self._live()
        self._recipients.append(recip)
        return 250, b"2.1.5 OK"

    def data(self, msg: str | bytes) -> tuple[int, bytes]:
        if self._envelope_from is None or not self._recipients:
            return 503, b"5.5.1 Error: need MAIL and RCPT first"
        reply = self._deliver(self._envelope_from, self._recipients, msg)
        self._envelope_from, self._recipients = None, []
        return reply.code, reply.text.encode()

    def sendmail(self, from_addr: str, to_addrs: str | Sequence[str], msg: str | bytes,
                 mail_options: Sequence[str] = (), rcpt_options: Sequence[str] = ()) -> dict[str, tuple[int, bytes]]:
        self.ehlo_or_helo_if_needed()
        recipients = [to_addrs] if isinstance(to_addrs, str) else list(to_addrs)
        if not recipients:
            raise smtplib.SMTPRecipientsRefused({})
        reply = self._deliver(from_addr, recipients, msg)
        if reply.code != 250:
            raise smtplib.SMTPDataError(reply.code, reply.text.encode())
        return {}

    def _deliver(self, sender: str, recipients: list[str], msg: str | bytes) -> Any:
        """Deliver through the core; a dropped or silent connection raises here, as a socket would."""
        services = self._live()
        data = msg.encode("utf-8") if isinstance(msg, str) else bytes(msg)
        reply = deliver(services, sender, recipients, data)
        if reply.action == "drop":
            self.close()
            raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
        if reply.action == "timeout":
            self.close()
            raise TimeoutError("timed out waiting for the mail server's reply")
        if reply.code == 421:
            self.close()  # 421 closes the channel
        return reply

    def quit(self) -> tuple[int, bytes]:
        if self._services is None:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        self.close()
        return 221, b"2.0.0 Bye"

    def close(self) -> None:
        self._services = None
        self.sock = None
        self.file = None
        self.ehlo_resp = self.helo_resp = None


class _Connected:
    """Stands for the socket smtplib would hold; nothing is sent through it."""

    def close(self) -> None:
        pass
