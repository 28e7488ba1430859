"""The explorer: enumerate fault plans for a scenario, run them, report what breaks."""

from harness.explore.explorer import Explorer, explore
from harness.explore.report import Report, UnsafePlan
from harness.explore.scenario import Scenario

__all__ = ["Explorer", "Report", "Scenario", "UnsafePlan", "explore"]
