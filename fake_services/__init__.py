"""Fake third-party services (payments, email, fulfillment, error catcher, chat) for retry testing.

One `FakeServices` object holds the state; serve it on a socket (`create_app`, `server.serve`), call it
in-process through `ServicesTransport`, and make it misbehave with behaviours and `FaultRule`s, from
this process or from another one through `ServicesHandle`.
"""

from fake_services.app import create_app
from fake_services.behaviours import Behaviour, FaultRule
from fake_services.handles import ServiceHandle, ServicesHandle
from fake_services.journal import JournalEntry
from fake_services.state import FakeServices
from fake_services.transport import ServicesTransport

__all__ = [
    "Behaviour",
    "FakeServices",
    "FaultRule",
    "JournalEntry",
    "ServiceHandle",
    "ServicesHandle",
    "ServicesTransport",
    "create_app",
]
