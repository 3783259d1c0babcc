"""StatusWatermarkValve: min over channels, idleness, re-alignment, end of partition, and a
seeded model check against a plain reference implementation."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pytest

from streamlet.operators.time import MAX_WATERMARK_TIMESTAMP, MIN_TIMESTAMP
from streamlet.operators.watermark_valve import StatusWatermarkValve
from streamlet.operators.watermarks import ACTIVE, IDLE, Watermark, WatermarkStatus

W = Watermark


def test_starts_at_min_active_and_aligned() -> None:
    valve = StatusWatermarkValve(3)
    assert valve.current_watermark == MIN_TIMESTAMP
    assert valve.last_output_watermark == MIN_TIMESTAMP
    assert not valve.idle
    assert valve.num_channels == 3
    for ch in range(3):
        assert valve.channel_watermark(ch) == MIN_TIMESTAMP
        assert not valve.is_channel_idle(ch)
        assert valve.is_channel_aligned(ch)
        assert not valve.is_channel_ended(ch)


def test_single_channel_passes_increasing_watermarks_through() -> None:
    valve = StatusWatermarkValve(1)
    assert valve.on_watermark(0, 5) == [W(5)]
    assert valve.on_watermark(0, 5) == []
    assert valve.on_watermark(0, 3) == []
    assert valve.on_watermark(0, 9) == [W(9)]
    assert valve.current_watermark == 9


def test_output_is_the_minimum_over_channels() -> None:
    valve = StatusWatermarkValve(3)
    assert valve.on_watermark(0, 10) == []
    assert valve.on_watermark(1, 20) == []
    assert valve.on_watermark(2, 15) == [W(10)]
    assert valve.on_watermark(0, 30) == [W(15)]
    assert valve.on_watermark(1, 18) == []  # lower than channel 1's 20: ignored
    assert valve.channel_watermark(1) == 20
    assert valve.on_watermark(2, 40) == [W(20)]
    assert valve.current_watermark == 20


def test_idle_channel_does_not_hold_back_the_others() -> None:
    valve = StatusWatermarkValve(2)
    assert valve.on_watermark(0, 10) == []
    assert valve.on_status(1, IDLE) == [W(10)]
    assert valve.on_watermark(0, 12) == [W(12)]
    assert valve.on_watermark(1, 1) == []  # idle channel: ignored
    assert valve.channel_watermark(1) == MIN_TIMESTAMP
    assert not valve.idle


def test_all_idle_flushes_the_max_then_goes_idle() -> None:
    valve = StatusWatermarkValve(3)
    valve.on_watermark(0, 10)
    valve.on_watermark(1, 30)
    assert valve.on_watermark(2, 20) == [W(10)]
    assert valve.on_status(1, IDLE) == []  # channel 0 still holds at 10
    assert valve.on_status(2, IDLE) == []
    assert valve.on_status(0, IDLE) == [W(30), IDLE]
    assert valve.idle
    assert valve.current_watermark == 30


def test_all_idle_without_advance_only_goes_idle() -> None:
    valve = StatusWatermarkValve(2)
    valve.on_watermark(0, 10)
    assert valve.on_status(0, IDLE) == []  # channel 1 (at MIN) still active and aligned
    assert valve.on_status(1, IDLE) == [W(10), IDLE]
    assert valve.on_status(0, ACTIVE) == [ACTIVE]
    assert valve.on_status(0, IDLE) == [IDLE]


def test_return_from_idle_counts_only_after_catching_up() -> None:
    valve = StatusWatermarkValve(2)
    valve.on_watermark(0, 10)
    assert valve.on_status(1, IDLE) == [W(10)]
    assert valve.on_status(1, ACTIVE) == []  # back, but at MIN: not aligned
    assert not valve.is_channel_aligned(1)
    assert valve.on_watermark(1, 5) == []  # behind the output: must not pull it back
    assert not valve.is_channel_aligned(1)
    assert valve.current_watermark == 10
    assert valve.on_watermark(0, 11) == [W(11)]  # channel 1 does not hold it either
    assert valve.on_watermark(1, 12) == []  # caught up: aligned, min(11, 12) = 11
    assert valve.is_channel_aligned(1)
    assert valve.on_watermark(0, 20) == [W(12)]  # now channel 1 holds it back
    assert valve.on_watermark(1, 25) == [W(20)]


def test_return_from_idle_as_in_the_brief() -> None:
    # Channel 0 at 10; channel 1 idle, then active with watermark 5; then sends 12.
    valve = StatusWatermarkValve(2)
    valve.on_watermark(0, 10)
    valve.on_status(1, IDLE)
    assert valve.on_status(1, ACTIVE) == []
    assert valve.on_watermark(1, 5) == []
    assert valve.current_watermark == 10
    assert valve.on_watermark(1, 12) == []
    assert valve.current_watermark == 10
    assert valve.on_watermark(0, 15) == [W(12)]


def test_return_from_idle_at_the_output_is_aligned_at_once() -> None:
    valve = StatusWatermarkValve(2)
    valve.on_watermark(0, 10)
    valve.on_watermark(1, 10)
    assert valve.on_status(1, IDLE) == []
    assert valve.on_status(1, ACTIVE) == []
    assert valve.is_channel_aligned(1)
    assert valve.on_watermark(0, 20) == []  # channel 1 (at 10) holds it again
    assert valve.on_watermark(1, 15) == [W(15)]


def test_return_from_all_idle_emits_active_first() -> None:
    valve = StatusWatermarkValve(2)
    valve.on_watermark(0, 8)
    valve.on_watermark(1, 6)
    valve.on_status(0, IDLE)
    assert valve.on_status(1, IDLE) == [W(8), IDLE]
    assert valve.on_status(1, ACTIVE) == [ACTIVE]
    assert not valve.is_channel_aligned(1)  # 6 < 8
    assert valve.on_watermark(1, 7) == []
    assert valve.on_watermark(1, 9) == [W(9)]


def test_unaligned_active_channel_is_released_when_it_catches_up() -> None:
    valve = StatusWatermarkValve(2)
    valve.on_watermark(0, 10)
    valve.on_watermark(1, 30)
    valve.on_status(1, IDLE)  # output still 10 (channel 0)
    assert valve.on_watermark(0, 11) == [W(11)]
    assert valve.on_status(0, IDLE) == [W(30), IDLE]
    assert valve.on_status(0, ACTIVE) == [ACTIVE]  # at 11 < 30: unaligned
    assert valve.on_watermark(0, 12) == []
    assert valve.on_watermark(0, 40) == [W(40)]


def test_channel_returning_above_the_output_moves_it_at_once() -> None:
    # Channel 0 is back from idle but behind (unaligned) and channel 2 went idle, so no
    # aligned channel is left; channel 1 comes back at 30, above the output 10: aligned, and
    # the output follows it right away (not only at the next watermark).
    valve = StatusWatermarkValve(3)
    valve.on_status(0, IDLE)
    valve.on_watermark(1, 30)
    assert valve.on_watermark(2, 10) == [W(10)]
    assert valve.on_status(0, ACTIVE) == []  # at MIN: unaligned
    assert valve.on_status(1, IDLE) == []
    assert valve.on_status(2, IDLE) == []  # channel 0 active, nothing aligned: stays 10
    assert valve.current_watermark == 10 and not valve.idle
    assert valve.on_status(1, ACTIVE) == [W(30)]


def test_statuses_and_watermarks_are_idempotent() -> None:
    valve = StatusWatermarkValve(2)
    valve.on_watermark(0, 5)
    valve.on_watermark(1, 7)
    assert valve.on_status(0, ACTIVE) == []
    assert valve.on_status(1, IDLE) == []
    assert valve.on_status(1, IDLE) == []
    assert valve.on_watermark(0, 5) == []
    assert valve.on_status(0, IDLE) == [W(7), IDLE]
    assert valve.on_status(0, IDLE) == []
    assert valve.on_status(0, WatermarkStatus(False)) == [ACTIVE]
    assert valve.on_status(0, WatermarkStatus(False)) == []


def test_end_of_partition_never_holds_back_and_all_ended_reaches_max() -> None:
    valve = StatusWatermarkValve(3)
    valve.on_watermark(0, 10)
    valve.on_watermark(1, 20)
    valve.on_watermark(2, 30)
    assert valve.current_watermark == 10
    assert valve.on_end_of_partition(0) == [W(20)]
    assert valve.is_channel_ended(0) and valve.channel_watermark(0) == MAX_WATERMARK_TIMESTAMP
    assert valve.on_end_of_partition(0) == []
    assert valve.on_watermark(0, 50) == []
    assert valve.on_status(0, IDLE) == []  # an ended channel stays active
    assert valve.on_end_of_partition(2) == []
    assert valve.on_end_of_partition(1) == [W(MAX_WATERMARK_TIMESTAMP)]
    assert valve.current_watermark == MAX_WATERMARK_TIMESTAMP


def test_end_of_partition_of_an_idle_channel_while_all_idle() -> None:
    valve = StatusWatermarkValve(2)
    valve.on_watermark(0, 4)
    valve.on_status(0, IDLE)
    assert valve.on_status(1, IDLE) == [W(4), IDLE]
    assert valve.on_end_of_partition(1) == [ACTIVE, W(MAX_WATERMARK_TIMESTAMP)]
    assert not valve.idle


def test_end_of_partition_with_the_rest_idle_releases_event_time() -> None:
    valve = StatusWatermarkValve(2)
    valve.on_watermark(1, 3)
    assert valve.on_status(1, IDLE) == []  # channel 0 at MIN holds it
    assert valve.on_end_of_partition(0) == [W(MAX_WATERMARK_TIMESTAMP)]
    assert valve.on_status(1, ACTIVE) == []


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="num_channels must be at least 1, got 0"):
        StatusWatermarkValve(0)
    with pytest.raises(TypeError, match="num_channels must be an int"):
        StatusWatermarkValve(2.0)  # type: ignore[arg-type]
    valve = StatusWatermarkValve(2)
    for call in (
        lambda: valve.on_watermark(2, 1),
        lambda: valve.on_watermark(-1, 1),
        lambda: valve.on_status(5, IDLE),
        lambda: valve.on_end_of_partition(-1),
    ):
        with pytest.raises(IndexError, match=r"channel must be in 0\.\.1 \(the valve has 2"):
            call()
    with pytest.raises(TypeError, match="status must be a WatermarkStatus"):
        valve.on_status(0, True)  # type: ignore[arg-type]


# -- model check ----------------------------------------------------------------------------


@dataclass
class RefChannel:
    watermark: int = MIN_TIMESTAMP
    active: bool = True
    aligned: bool = True
    ended: bool = False


class ReferenceValve:
    """The rules of the brief, written as plainly as possible (recomputes everything)."""

    def __init__(self, n: int) -> None:
        self.channels = [RefChannel() for _ in range(n)]
        self.output = MIN_TIMESTAMP
        self.idle = False

    def _min_aligned(self, out: list[Any]) -> None:
        aligned = [c.watermark for c in self.channels if c.aligned]
        if aligned and min(aligned) > self.output:
            self.output = min(aligned)
            out.append(W(self.output))

    def watermark(self, i: int, ts: int) -> list[Any]:
        out: list[Any] = []
        c = self.channels[i]
        if c.ended or not c.active or ts <= c.watermark:
            return out
        c.watermark = ts
        if ts >= self.output:
            c.aligned = True
        self._min_aligned(out)
        return out

    def status(self, i: int, idle: bool) -> list[Any]:
        out: list[Any] = []
        c = self.channels[i]
        if c.ended or c.active != idle:
            return out
        if idle:
            c.active = c.aligned = False
            if not any(ch.active for ch in self.channels):
                top = max(ch.watermark for ch in self.channels)
                if top > self.output:
                    self.output = top
                    out.append(W(top))
                self.idle = True
                out.append(IDLE)
            else:
                self._min_aligned(out)
        else:
            c.active = True
            c.aligned = c.watermark >= self.output
            if self.idle:
                self.idle = False
                out.append(ACTIVE)
            self._min_aligned(out)
        return out

    def end(self, i: int) -> list[Any]:
        out: list[Any] = []
        c = self.channels[i]
        if c.ended:
            return out
        c.ended = c.active = c.aligned = True
        c.watermark = MAX_WATERMARK_TIMESTAMP
        if self.idle:
            self.idle = False
            out.append(ACTIVE)
        self._min_aligned(out)
        return out


@pytest.mark.parametrize("seed", range(300))
def test_valve_matches_the_reference_model(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 5)
    valve = StatusWatermarkValve(n)
    ref = ReferenceValve(n)
    clocks = [0] * n
    last = MIN_TIMESTAMP
    for _step in range(rng.randint(1, 80)):
        ch = rng.randrange(n)
        roll = rng.random()
        if roll < 0.6:
            # Mostly advancing per channel, sometimes backwards or repeated.
            clocks[ch] += rng.choice([-3, 0, 1, 2, 5, 10])
            got, want = valve.on_watermark(ch, clocks[ch]), ref.watermark(ch, clocks[ch])
            what = f"watermark({ch}, {clocks[ch]})"
        elif roll < 0.8:
            got, want = valve.on_status(ch, IDLE), ref.status(ch, True)
            what = f"idle({ch})"
        elif roll < 0.97:
            got, want = valve.on_status(ch, ACTIVE), ref.status(ch, False)
            what = f"active({ch})"
        else:
            got, want = valve.on_end_of_partition(ch), ref.end(ch)
            what = f"end({ch})"
        assert got == want, what
        # Invariants, independent of the reference.
        assert valve.current_watermark == ref.output >= last
        last = valve.current_watermark
        assert valve.idle == ref.idle
        assert valve.idle == all(valve.is_channel_idle(i) for i in range(n))
        for i in range(n):
            if valve.is_channel_aligned(i):
                assert not valve.is_channel_idle(i)
                assert valve.channel_watermark(i) >= valve.current_watermark
        emitted = [e.timestamp for e in got if isinstance(e, Watermark)]
        assert emitted == sorted(set(emitted)) and len(emitted) <= 1
        if got and isinstance(got[-1], Watermark):
            assert not valve.idle  # never a watermark while idle
    for ch in range(n):
        assert valve.on_end_of_partition(ch) == ref.end(ch)
    assert valve.current_watermark == MAX_WATERMARK_TIMESTAMP
    assert not valve.idle
