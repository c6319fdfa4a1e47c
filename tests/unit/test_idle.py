"""skipIdle's decision (domain/idle.py) and the plan it makes. Pure: no ffmpeg, no sockets."""

from __future__ import annotations

import pytest

from chalicelib.domain.idle import (
    ANALYSIS_SIZE,
    IdleFollower,
    idle_flags,
    idle_ranges,
    skipped_seconds,
)
from chalicelib.domain.limits import Limits
from chalicelib.domain.options import RenderOptions
from chalicelib.domain.plan import plan_timelapse
from tests.unit.test_options import source

pytestmark = pytest.mark.disable_socket

PIXELS = ANALYSIS_SIZE[0] * ANALYSIS_SIZE[1]
BLANK = bytes([240]) * PIXELS


def with_cursor(frame: bytes, on: bool) -> bytes:
    pixels = bytearray(frame)
    if on:
        for row in range(4):  # a caret four pixels high
            pixels[500 + row * ANALYSIS_SIZE[0]] = 0
    return bytes(pixels)


def typed(count: int) -> bytes:
    """A page with `count` words typed: each darkens a few pixels of its own."""
    pixels = bytearray(BLANK)
    for word in range(count):
        for offset in range(4):
            pixels[1000 + word * 16 + offset] = 60
    return bytes(pixels)


def test_a_still_screen_and_a_blinking_cursor_are_idle() -> None:
    frames = [typed(3)] + [with_cursor(typed(3), i % 2 == 0) for i in range(10)]
    assert idle_flags(frames) == [False, False] + [True] * 9


def test_each_typed_word_is_activity_however_small() -> None:
    frames = [typed(i) for i in range(6)]
    assert idle_flags(frames) == [False] * 6


def test_idle_runs_keep_a_beat_and_leave_out_the_rest() -> None:
    flags = [False] * 10 + [True] * 50 + [False] * 10 + [True] * 3 + [False] * 5
    ranges = idle_ranges(flags, 2.0, beat_frames=5, duration_seconds=156.0)
    assert ranges == ((30.0, 120.0),)  # the 3-frame run is shorter than a beat: kept
    assert skipped_seconds(ranges) == 90.0


def test_an_idle_tail_is_left_out_to_the_end_of_the_source() -> None:
    assert idle_ranges([False, True, True, True], 1.0, 1, 3.5) == ((2.0, 3.5),)


def test_frame_by_frame_the_render_keeps_exactly_what_the_ranges_leave_in() -> None:
    # Given typing, a long blinking-cursor stretch, more typing, a short pause, an idle tail
    frames = (
        [typed(i) for i in range(5)]
        + [with_cursor(typed(5), i % 2 == 0) for i in range(40)]
        + [typed(i) for i in range(6, 10)]
        + [typed(9)] * 3
        + [with_cursor(typed(10), i % 2 == 0) for i in range(20)]
    )
    # When the render decides each frame as it streams past
    follower = IdleFollower(beat_frames=4)
    kept = [index for index, frame in enumerate(frames) if follower.keep(frame)]
    # Then its flags are the scan's, and it kept the frames outside the ranges left out
    assert follower.flags == idle_flags(frames)
    ranges = idle_ranges(follower.flags, 1.0, 4, float(len(frames)))
    assert kept == [i for i in range(len(frames)) if not any(a <= i < b for a, b in ranges)]
    assert len(ranges) == 2
    assert len(kept) == len(frames) - 34 - 14  # each run: 2 new pictures, a beat of 4, the rest out


def test_with_speed_the_timelapse_gets_shorter_by_the_idle_time() -> None:
    # 10 minutes, 6 of them idle, speed 30: 20 s without skipIdle, 8 s with.
    options = RenderOptions(skip_idle=True)
    whole = plan_timelapse(source(), None, Limits(), speed=30, options=options)
    cut = plan_timelapse(
        source(), None, Limits(), speed=30, options=options, dropped=((120.0, 480.0),)
    )
    assert whole.expected_duration_seconds == pytest.approx(20)
    assert cut.expected_duration_seconds == pytest.approx(8)
    assert cut.idle_seconds_skipped == 360
    assert cut.sample_interval_seconds == pytest.approx(1.0)
    assert "between(t,120.000000,480.000000)" in cut.select_expression


def test_with_a_length_the_active_parts_fill_it() -> None:
    cut = plan_timelapse(source(), 20, Limits(), dropped=((120.0, 480.0),))
    assert cut.expected_duration_seconds == pytest.approx(20)
    assert cut.sample_interval_seconds == pytest.approx(240 / 600)


def test_sample_times_and_source_times_step_over_the_dropped_range() -> None:
    cut = plan_timelapse(
        source(), None, Limits(), speed=30, dropped=((120.0, 480.0),), indexed=True
    )
    times = cut.sample_times()
    assert len(times) == cut.frame_count == 240
    assert not any(120 <= t < 479.99 for t in times)  # a window opens at 480 (less slack)
    assert cut.source_time_expression == "N*1.000000000+gte(N,120)*360.000000"
