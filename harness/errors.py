"""The harness's one error tree.

```
HarnessError(Exception)                 anything the harness itself refuses or cannot do
 ├── ConfigurationError                 bad usage: a wrong option, a bad scenario (CLI exit 2)
 │    └── JobArgumentError              job arguments that do not survive a JSON round trip
 ├── EngineUnavailable                  a backend's extra is not installed or its server is down
 ├── AttemptHungError                   an attempt ran past its wall-clock limit (a sleep, a wait, a loop)
 ├── JobExitError                       a job tried to end the process (os._exit, sys.exit)
 └── ScenarioError                      a scenario's setup, reset or invariant itself broke
      └── CleanRunError                  the run without faults failed, or reached no service at all

UnsafeJobError(AssertionError)          raised by Report.assert_safe(); pytest shows its message

InjectedError(RuntimeError)             a plain bug the injector raises at a line (a permanent failure)
InjectedCrash(BaseException)            the simulated death of the worker process at a point
Shutdown(BaseException)                 raised into a job still running when a hard shutdown ends
```

`InjectedCrash` and `Shutdown` derive from `BaseException` on purpose: application code that says
`except Exception` cannot swallow them, while `finally` blocks and context managers still run, as
they would (roughly) when a process dies mid-transaction.
"""

from __future__ import annotations

__all__ = [
    "AttemptHungError",
    "CleanRunError",
    "ConfigurationError",
    "EngineUnavailable",
    "HarnessError",
    "InjectedCrash",
    "InjectedError",
    "JobArgumentError",
    "JobExitError",
    "ScenarioError",
    "Shutdown",
    "UnsafeJobError",
]


class HarnessError(Exception):
    """Base class of every error the harness raises on its own behalf."""


class ConfigurationError(HarnessError):
    """The harness was asked for something it cannot do as asked; the message says what to change."""


class JobArgumentError(ConfigurationError):
    """A job was enqueued with arguments that would not survive a JSON round trip."""


class EngineUnavailable(HarnessError):
    """A backend cannot run here: its optional extra is missing or its server is unreachable."""


class AttemptHungError(HarnessError):
    """An attempt ran past its wall-clock limit: the job sleeps, blocks or loops where a virtual clock
    cannot help. The message names the attempt and the job's line it was stuck at."""


class JobExitError(HarnessError):
    """A job called `os._exit` or raised `SystemExit`: the worker process would have ended there, and the
    harness refuses to end with it."""


class ScenarioError(HarnessError):
    """Code supplied by a scenario (setup, reset, an invariant) raised instead of answering."""


class CleanRunError(ScenarioError):
    """The clean run (no fault injected) failed, or reached no service and changed nothing the scenario
    can see: no verdict can be earned from it. The message says what the clean run did."""


class UnsafeJobError(AssertionError):
    """An exploration found plans that leave the world in an unacceptable state."""


class InjectedCrash(BaseException):
    """The worker process 'died' here. Raised by the injector; never caught by `except Exception`."""

    def __init__(self, where: str = "") -> None:
        super().__init__(f"injected crash at {where}" if where else "injected crash")
        self.where = where


class InjectedError(RuntimeError):
    """A bug planted by the injector: an ordinary exception, as a permanent failure in job code is."""


class Shutdown(BaseException):
    """A hard shutdown reached a job that was still running; the engine pushes it back to its queue."""
