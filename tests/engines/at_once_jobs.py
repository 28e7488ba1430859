"""Plain functions that real worker processes run as deliveries of one job (see test_real_workers)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def note(folder: str) -> None:
    """Leave a file named after this process, then linger so that the other delivery overlaps it."""
    Path(folder, f"ran-{os.getpid()}").write_text(str(time.time()))
    time.sleep(0.2)


def fails_twice(folder: str) -> None:
    """The first two runs (whichever delivery makes them) fail; the engine's retries must run them again."""
    for n in (1, 2):
        try:
            os.close(os.open(Path(folder, f"failed-{n}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        raise RuntimeError(f"run {n} fails")
