"""The world a scenario runs in: one virtual clock, the fake services, an engine and an HTTP client.

Everything a run can observe hangs off a `World`, and `reset()` puts all of it back to the start so the
explorer can run thousands of plans on one world without rebuilding it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.clock import VirtualClock

if TYPE_CHECKING:
    import httpx

    from fake_services import FakeServices
    from harness.engines.base import Engine
    from harness.outbound import Outbound

__all__ = ["IN_PROCESS_URL", "World"]

#: The base URL in-process clients use; the in-process transport answers for any host.
IN_PROCESS_URL = "http://fake-services"


@dataclass
class World:
    """The clock, the fake services, the engine, an httpx client wired to the services in-process, and
    the outbound rules that answer the jobs' own clients."""

    clock: VirtualClock
    services: FakeServices
    engine: Engine
    http: httpx.Client
    base_url: str = IN_PROCESS_URL
    seed: int = 0
    #: Free-form room for a scenario's own state (its database handle, say).
    extra: dict[str, Any] = field(default_factory=dict)
    #: What the jobs' own HTTP clients reach while the world runs (see `harness.outbound`): map a host to
    #: a fake, declare a route; anything else is refused, never sent.
    outbound: Outbound = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from harness.outbound import Outbound

        self.outbound = Outbound(self.services)

    @classmethod
    def build(cls, engine: str | Engine = "sim", *, seed: int = 0, **engine_options: Any) -> World:
        from fake_services import FakeServices
        from fake_services.transport import in_process_client
        from harness.engines import get_engine

        clock = VirtualClock()
        services = FakeServices(seed=seed, clock=clock)
        if isinstance(engine, str):
            built = get_engine(engine, clock=clock, seed=seed, **engine_options)
        else:
            built = engine
            built.clock = clock
        http = in_process_client(services, IN_PROCESS_URL)
        return cls(clock=clock, services=services, engine=built, http=http, seed=seed)

    def reset(self) -> None:
        """Back to the start: services (data, behaviours, schedules, journal), engine, clock."""
        self.engine.reset()
        self.services.reset()
        self.clock.reset()
        self.outbound.reset()

    def close(self) -> None:
        self.http.close()
        self.engine.close()

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
