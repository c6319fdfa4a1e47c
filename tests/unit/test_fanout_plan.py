"""Splitting a long render into parts (domain/fanout.py): the parts cover every window once, each
starts where its decoder can, each fits the time it is given, and together they keep exactly the
frames the whole render keeps — none repeated or lost where two parts meet."""

from __future__ import annotations

import bisect
import itertools
import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chalicelib.domain.fanout import (
    MAX_PARTS,
    PART_OVERHEAD_SECONDS,
    FanOut,
    PartRange,
    estimate_seconds,
    part_plan,
    split_render,
)
from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import RenderPlan, SourceInfo, plan_timelapse
from chalicelib.events import work_in_message

LIMITS = Limits()
SLACK = 0.001


def recording(**overrides: object) -> SourceInfo:
    """A screen recording: 1080p60, a keyframe every 250 frames (OBS), decoded in full."""
    values: dict[str, object] = {
        "width": 1920,
        "height": 1080,
        "rotation": 0,
        "fps": 60.0,
        "duration_seconds": 3600.0,
        "codec": "h264",
        "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
        "keyframe_interval_seconds": 250 / 60,
        "keyframe_count": 100,
    }
    values.update(overrides)
    return SourceInfo(**values)  # type: ignore[arg-type]


def keyframe_times(info: SourceInfo) -> list[float]:
    spacing = info.keyframe_interval_seconds or 1.0
    return [i * spacing for i in range(math.floor(info.duration_seconds / spacing) + 1)]


recordings = st.builds(
    recording,
    width=st.sampled_from([640, 1280, 1920, 3840]),
    height=st.sampled_from([360, 720, 1080, 2160]),
    fps=st.sampled_from([24.0, 25.0, 30.0, 50.0, 60.0]),
    duration_seconds=st.floats(min_value=60.0, max_value=4 * 3600.0),
    keyframe_interval_seconds=st.floats(min_value=1.0, max_value=20.0),
    codec=st.sampled_from(["h264", "hevc", "vp9"]),
    format_name=st.sampled_from(["mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm"]),
)
budgets = st.floats(min_value=5.0, max_value=900.0)
targets = st.floats(min_value=10.0, max_value=120.0)


def selected(frames: list[float], plan: RenderPlan, first: int = 0, end: int | None = None):
    """What the select expression keeps: the first frame of each window in [first, end)."""
    last = end if end is not None else plan.frame_count
    kept: list[float] = []
    seen = first - 1
    for t in frames:
        window = math.floor((t + SLACK) / plan.sample_interval_seconds)
        if first <= window < last and window > seen:
            kept.append(t)
            seen = window
    return kept[: last - first]


@given(info=recordings, target=targets, budget=budgets, aligned=st.booleans())
@settings(deadline=None)
def test_parts_cover_every_window_once_in_order(
    info: SourceInfo, target: float, budget: float, aligned: bool
):
    plan = plan_timelapse(info, target, LIMITS)
    parts = split_render(
        plan, info, budget_seconds=budget, keyframes=keyframe_times(info) if aligned else None
    )
    assume(parts)
    assert parts[0].first_frame == 0
    assert parts[0].seek_seconds == 0
    assert parts[-1].end_frame == plan.frame_count
    for before, after in itertools.pairwise(parts):
        assert before.end_frame == after.first_frame
    assert all(part.frame_count >= 1 for part in parts)


@given(info=recordings, target=targets, budget=budgets)
@settings(deadline=None)
def test_aligned_parts_start_at_a_keyframe_before_their_first_window(
    info: SourceInfo, target: float, budget: float
):
    keyframes = keyframe_times(info)
    plan = plan_timelapse(info, target, LIMITS)
    for part in split_render(plan, info, budget_seconds=budget, keyframes=keyframes)[1:]:
        assert part.seek_seconds in keyframes
        # every frame of the part's first window lies at or after the keyframe it decodes from
        assert part.first_frame * plan.sample_interval_seconds - SLACK >= part.seek_seconds
        assert part.seek_seconds > (part.first_frame - 1) * plan.sample_interval_seconds - SLACK


@given(info=recordings, target=targets, budget=budgets)
@settings(deadline=None)
def test_parts_moved_to_keyframes_still_fit_their_budget(
    info: SourceInfo, target: float, budget: float
):
    plan = plan_timelapse(info, target, LIMITS)
    one_window = estimate_seconds(plan, info, 1) - PART_OVERHEAD_SECONDS
    # A part starts at a keyframe, so it cannot be smaller than the windows between two
    spacing = info.keyframe_interval_seconds or 0.0
    per_gop = math.ceil(spacing / plan.sample_interval_seconds)
    assume(budget > PART_OVERHEAD_SECONDS + (3 + 2 * per_gop) * one_window)
    parts = split_render(plan, info, budget_seconds=budget, keyframes=keyframe_times(info))
    assume(0 < len(parts) < MAX_PARTS)
    for part in parts:
        assert estimate_seconds(plan, info, part.frame_count) <= budget


@given(info=recordings, target=targets, budget=budgets)
@settings(deadline=None)
def test_each_part_fits_its_budget(info: SourceInfo, target: float, budget: float):
    plan = plan_timelapse(info, target, LIMITS)
    one_window = estimate_seconds(plan, info, 1) - PART_OVERHEAD_SECONDS
    assume(budget > PART_OVERHEAD_SECONDS + 3 * one_window)
    parts = split_render(plan, info, budget_seconds=budget)
    if not parts:
        assert estimate_seconds(plan, info) <= budget
        return
    # At the cap a render gets MAX_PARTS parts as even as they come, fitting or not
    assume(len(parts) < MAX_PARTS)
    for part in parts:
        assert estimate_seconds(plan, info, part.frame_count) <= budget


@given(
    fps=st.sampled_from([25.0, 30.0, 60.0]),
    duration=st.floats(min_value=30.0, max_value=300.0),
    target=st.floats(min_value=5.0, max_value=40.0),
    spacing=st.integers(min_value=10, max_value=300),
    budget=st.floats(min_value=2.0, max_value=30.0),
    aligned=st.booleans(),
)
@settings(deadline=None)
def test_the_parts_keep_exactly_the_frames_the_whole_render_keeps(
    fps: float, duration: float, target: float, spacing: int, budget: float, aligned: bool
):
    # Given every frame's time and where the keyframes are (a keyframe every `spacing` frames)
    info = recording(fps=fps, duration_seconds=duration, keyframe_interval_seconds=spacing / fps)
    frames = [i / fps for i in range(math.floor(duration * fps))]
    keyframes = frames[::spacing]
    plan = plan_timelapse(info, target, LIMITS)
    parts = split_render(
        plan, info, budget_seconds=budget, keyframes=keyframes if aligned else None
    )
    assume(parts)
    # When each part decodes from the keyframe its seek lands on and selects its own windows
    joined: list[float] = []
    for part in parts:
        landing = keyframes[bisect.bisect_right(keyframes, part.seek_seconds + 1e-9) - 1]
        decoded = [t for t in frames if t >= landing]
        joined += selected(decoded, plan, part.first_frame, part.end_frame)
    # Then the joined frames are the whole render's, one for one
    assert joined == selected(frames, plan)


def test_a_render_that_fits_is_not_split():
    info = recording(duration_seconds=600.0)
    plan = plan_timelapse(info, 30, LIMITS)
    assert split_render(plan, info, budget_seconds=10_000) == ()


def test_an_hour_of_1080p60_on_lambda_splits_into_parts_that_fit_a_third_of_its_limit():
    # (a 30-s timelapse samples every 4 s: keyframes 4.17 s apart serve; a 60-s one cannot)
    info = recording()
    plan = plan_timelapse(info, 60, LIMITS)
    assert plan.strategy == "decode_all"
    budget = (900 - 20) / 3
    parts = split_render(plan, info, budget_seconds=budget, keyframes=keyframe_times(info))
    assert estimate_seconds(plan, info) > 900  # it could not run as one
    assert 4 <= len(parts) <= 8
    assert sum(part.frame_count for part in parts) == plan.frame_count


def test_even_keyframes_alone_are_split_when_there_are_hours_of_them():
    # 24 hours of MKV (no index), a keyframe every second, 10-minute timelapse at 60 fps
    info = recording(
        duration_seconds=24 * 3600.0,
        format_name="matroska,webm",
        keyframe_interval_seconds=1.0,
        width=3840,
        height=2160,
        codec="hevc",
    )
    plan = plan_timelapse(info, 600, LIMITS)
    assert plan.strategy == "keyframes"
    parts = split_render(plan, info, budget_seconds=290)
    assert len(parts) >= 2
    assert all(
        part.seek_seconds <= part.first_frame * plan.sample_interval_seconds for part in parts
    )


def test_what_cannot_seek_or_skips_idle_time_is_not_split():
    plan_of = lambda info: plan_timelapse(info, 30, LIMITS)  # noqa: E731
    ts = recording(format_name="mpegts")
    assert split_render(plan_of(ts), ts, budget_seconds=5) == ()
    info = recording()
    idle = plan_timelapse(info, 30, LIMITS, dropped=((100.0, 200.0),))
    assert split_render(idle, info, budget_seconds=5) == ()


def test_a_part_plan_numbers_its_windows_as_the_whole_does():
    info = recording(duration_seconds=600.0)
    plan = plan_timelapse(info, 30, LIMITS)
    part = part_plan(plan, PartRange(300, 600, 199.95))
    assert part.frame_count == 300
    assert "gte(floor((t+199.951000000)/" in part.select_expression
    assert ",300)*lt(" in part.select_expression
    assert part.source_time_expression.startswith("(N+300)*")
    assert (
        plan.select_expression
        == part_plan(plan, PartRange(0, plan.frame_count, 0)).select_expression
    )


def test_progress_counts_the_frames_of_every_part_and_waits_for_the_join():
    parts = (PartRange(0, 100, 0), PartRange(100, 300, 10), PartRange(300, 400, 20))
    fanout = FanOut("t", parts, 400)
    assert fanout.progress == 0
    assert FanOut("t", parts, 400, frames={1: 100}).progress == 25
    assert FanOut("t", parts, 400, done=frozenset({0, 1}), frames={2: 1000}).progress == 99
    assert FanOut("t", parts, 400, done=frozenset({0, 1, 2})).all_done


def test_a_part_message_is_read_and_a_malformed_one_dropped():
    tid = "0b5c5e3e-9a1f-4f5e-8f7b-1d2c3b4a5e6f"
    found = list(
        work_in_message(f'{{"type":"lapse.part","timelapseId":"{tid}","token":"t1","part":2}}')
    )
    assert [(w.kind, w.token, w.part) for w in found] == [("part", "t1", 2)]
    assert not list(work_in_message(f'{{"type":"lapse.part","timelapseId":"{tid}","part":2}}'))
    assert not list(
        work_in_message(f'{{"type":"lapse.part","timelapseId":"{tid}","token":"t","part":"2"}}')
    )


def test_a_part_reads_its_source_only_up_to_its_last_window():
    # ffmpeg reads on to the end of the file once an fps filter ends the chain, unless told where
    # to stop: a part of a 20-minute source would decode the whole rest of it
    from pathlib import Path  # noqa: PLC0415

    from chalicelib.media.render import build_render_command  # noqa: PLC0415

    info = recording(duration_seconds=1200.0)
    plan = plan_timelapse(info, 60, LIMITS)
    part = part_plan(plan, PartRange(63, 82, 41.666667))
    assert part.read_seconds is not None
    end = 82 * plan.sample_interval_seconds
    assert end - part.seek_seconds < part.read_seconds <= end - part.seek_seconds + 3
    # without the keyframes' times the demuxer may land a spacing early: that much more is read
    early = part_plan(plan, PartRange(63, 82, 41.666667 - 8.0))
    assert early.read_seconds is not None
    assert early.read_seconds >= end - early.seek_seconds + 8.0
    command = build_render_command("in.mp4", Path("out.mp4"), part, ffmpeg="ffmpeg")
    assert command[command.index("-t") + 1] == f"{part.read_seconds:.6f}"
    assert command.index("-t") < command.index("-i")
    assert plan.read_seconds is None
