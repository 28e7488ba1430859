"""Fault injection: line points (crash just before a line of target code runs) and, in `plans`, the
points, faults and plans the explorer builds from them.
"""

from __future__ import annotations

from harness.injection.lines import LinePoint, LineTracer, Targets

__all__ = ["LinePoint", "LineTracer", "Targets"]
