"""A `with` block's exit is no crash point: a crash there would skip `__exit__` and leave a lock held,
which no real process death does. Context managers must still run when the injected crash strikes."""

from __future__ import annotations

import sys

import linetgt_with as target
import pytest
from conftest import line_of

from harness.errors import InjectedCrash
from harness.injection import LineTracer, Targets


def test_the_with_line_is_a_point_once_per_entry(backend: str) -> None:
    with LineTracer(Targets(["linetgt_with"]), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.record = True
        assert target.locked_work([1, 2]) == 6
        tracer.record = False
        points = tracer.points
    lines = [p.line for p in points]
    assert lines.count(line_of(target, "with-outer")) == 1
    assert lines.count(line_of(target, "with-inner")) == 2  # entered once per item, never on exit
    assert line_of(target, "after") in lines


def test_a_crash_at_every_point_leaves_no_lock_held(backend: str) -> None:
    with LineTracer(Targets(["linetgt_with"]), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.record = True
        target.locked_work([1, 2, 3])
        tracer.record = False
        points = tracer.points
        assert points
        for point in points:
            tracer.begin_attempt()
            tracer.arm(point)
            with pytest.raises(InjectedCrash):
                target.locked_work([1, 2, 3])
            assert tracer.fired_at == point
            assert not target.LOCK.locked() and not target.OTHER.locked(), f"a lock leaked at {point}"
            tracer.disarm()


def test_a_return_inside_the_block_still_releases_the_lock(backend: str) -> None:
    with LineTracer(Targets(["linetgt_with"]), backend=backend) as tracer:
        tracer.begin_attempt()
        tracer.record = True
        assert target.returns_inside([1, 2]) == 3
        tracer.record = False
        points = tracer.points
        assert [p.line for p in points].count(line_of(target, "with-return")) == 1
        for point in points:
            tracer.begin_attempt()
            tracer.arm(point)
            with pytest.raises(InjectedCrash):
                target.returns_inside([1, 2])
            assert not target.LOCK.locked(), f"the lock leaked at {point}"
            tracer.disarm()



@pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")
def test_with_blocks_met_mid_recording_switch_to_the_checking_callback() -> None:
    """Recording with LINE events, the monitoring backend appends bare while no target code has a `with`
    block; code with one that arrives during the recording (a module imported anew) must switch it back."""
    with LineTracer(Targets(["linetgt_late_with"]), backend="monitoring", blocks=False) as tracer:
        backend = tracer._installed
        if not backend._line_reliable:
            pytest.skip("LINE events are unreliable for one-liners here: the tracer always uses the checking callback")
        sys.modules.pop("linetgt_late_with", None)  # its code runs anew below, as a fresh import would
        backend.exits.clear()  # as if the module had never been imported before the tracer was
        backend.exit_lines.clear()
        tracer.begin_attempt()
        tracer.record = True
        assert backend.line_callback is backend.on_line.plain
        import linetgt_late_with as late

        assert backend.line_callback is backend.on_line.fast
        assert late.late_locked([1, 2, 3]) == 6
        tracer.record = False
        lines = [p.line for p in tracer.points]
    assert lines.count(line_of(late, "late-with")) == 3  # once per entry, never as the block exits
    assert line_of(late, "late-after") in lines
