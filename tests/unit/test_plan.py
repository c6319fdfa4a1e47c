"""Property tests for the timelapse planner (pure: no ffmpeg, no sockets)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import (
    NEAR_KEYFRAME_FACTOR,
    RenderPlan,
    SourceInfo,
    check_source_limits,
    output_size,
    plan_timelapse,
)
from chalicelib.errors import InvalidMediaError

LIMITS = Limits()

pytestmark = pytest.mark.disable_socket


def source(**overrides: object) -> SourceInfo:
    values: dict[str, object] = {
        "width": 1920,
        "height": 1080,
        "rotation": 0,
        "fps": 30.0,
        "duration_seconds": 600.0,
        "codec": "h264",
        "format_name": "mov,mp4,m4a,3gp,3g2,mj2",
        "size_bytes": 1_000_000,
        "keyframe_interval_seconds": 2.0,
        "keyframe_count": 24,
    }
    values.update(overrides)
    return SourceInfo(**values)  # type: ignore[arg-type]


sides = st.integers(min_value=2, max_value=8192)
sources = st.builds(
    source,
    width=sides,
    height=sides,
    rotation=st.sampled_from([0, 90, 180, 270]),
    fps=st.floats(min_value=1.0, max_value=240.0),
    duration_seconds=st.floats(min_value=0.1, max_value=24 * 3600.0),
    keyframe_interval_seconds=st.one_of(st.none(), st.floats(min_value=0.01, max_value=300.0)),
    keyframe_count=st.one_of(st.none(), st.integers(min_value=0, max_value=24)),
    format_name=st.sampled_from(["mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", "avi"]),
    size_bytes=st.one_of(st.none(), st.integers(min_value=1, max_value=200 * 10**9)),
    bitrate_bps=st.one_of(st.none(), st.integers(min_value=1, max_value=200 * 10**6)),
).filter(lambda s: s.width * s.height <= LIMITS.max_pixels)
targets = st.floats(min_value=LIMITS.min_target_seconds, max_value=LIMITS.max_target_seconds)


def selected_times(plan: RenderPlan, frame_times: list[float]) -> list[float]:
    """What ffmpeg's select expression keeps: the first frame of each sampling window."""
    slack = 0.001
    kept: list[float] = []
    for t in frame_times:
        window = math.floor((t + slack) / plan.sample_interval_seconds)
        if not kept or window > math.floor((kept[-1] + slack) / plan.sample_interval_seconds):
            kept.append(t)
    return kept[: plan.frame_count]


@given(sources, targets)
def test_output_is_never_longer_than_the_source_or_the_target(info: SourceInfo, target: float):
    plan = plan_timelapse(info, target, LIMITS)

    assert plan.frame_count >= 1
    assert plan.expected_duration_seconds <= info.duration_seconds + 1 / plan.output_fps
    assert plan.expected_duration_seconds <= target + 1 / plan.output_fps
    assert plan.speedup >= 1 - 1e-9 or plan.frame_count == 1


@given(sources, targets)
def test_output_length_is_the_target_when_the_source_has_enough_frames(
    info: SourceInfo, target: float
):
    assume(info.duration_seconds * info.fps >= target * LIMITS.output_fps + 1)
    assume(info.duration_seconds >= target)

    plan = plan_timelapse(info, target, LIMITS)

    frame = 1 / plan.output_fps
    if plan.strategy == "decode_all" or _keyframes_fit_as_asked(info, target):
        assert abs(plan.expected_duration_seconds - target) <= frame
    else:  # near-keyframe sampling: up to 10 % (and a frame) shorter
        assert target / NEAR_KEYFRAME_FACTOR - 2 * frame <= plan.expected_duration_seconds
        assert plan.expected_duration_seconds <= target + frame


@given(sources, targets)
def test_output_size_is_even_never_upscaled_and_fits_1920(info: SourceInfo, target: float):
    plan = plan_timelapse(info, target, LIMITS)

    assert plan.output_width % 2 == 0
    assert plan.output_height % 2 == 0
    assert max(plan.output_width, plan.output_height) <= LIMITS.output_max_side
    assert plan.output_width <= max(2, info.display_width)
    assert plan.output_height <= max(2, info.display_height)


@given(sides, sides)
def test_output_size_keeps_the_aspect_ratio(width: int, height: int):
    out_w, out_h = output_size(width, height, 1920)

    scale = min(1.0, 1920 / max(width, height))
    assert abs(out_w - width * scale) <= 2
    assert abs(out_h - height * scale) <= 2


@given(sources, targets)
def test_rotation_swaps_the_output_sides(info: SourceInfo, target: float):
    upright = plan_timelapse(info, target, LIMITS)
    turned = plan_timelapse(
        source(**{**info.__dict__, "rotation": (info.rotation + 90) % 360}), target, LIMITS
    )

    assert (turned.output_width, turned.output_height) == (
        upright.output_height,
        upright.output_width,
    )


@given(sources, targets)
def test_keyframes_only_when_every_window_holds_a_keyframe(info: SourceInfo, target: float):
    plan = plan_timelapse(info, target, LIMITS)

    if plan.strategy in ("keyframes", "ranges"):
        assert info.keyframe_interval_seconds is not None
        assert plan.sample_interval_seconds >= info.keyframe_interval_seconds * (1 - 1e-9)
        assert (info.keyframe_count or 0) >= 2
    elif info.keyframe_interval_seconds is not None and (info.keyframe_count or 0) >= 2:
        assert plan.sample_interval_seconds < info.keyframe_interval_seconds


@given(sources, targets, st.booleans())
def test_ranges_only_for_h264_or_hevc_in_an_indexed_mp4_or_mov(
    info: SourceInfo, target: float, indexed: bool
):
    plan = plan_timelapse(info, target, LIMITS, indexed=indexed)
    streamed = plan_timelapse(info, target, LIMITS, indexed=False)

    if plan.strategy == "ranges":
        assert indexed
        assert info.format_name.startswith("mov,")
        assert info.codec in ("h264", "hevc")
        assert plan.codec == info.codec
        # the same frames as ffmpeg streaming the keyframes would give
        assert streamed.strategy == "keyframes"
        assert streamed.frame_count == plan.frame_count
    assert streamed.strategy != "ranges"


@given(sources, targets, st.floats(min_value=1.0001, max_value=1.1))
def test_near_keyframes_serve_instead_of_decoding_everything(
    drawn: SourceInfo, target: float, factor: float
):
    """Keyframe spacing at most 1.1 x the sampling interval asked for: keyframes serve, and the
    output is at most 10 % (and a frame) shorter."""
    asked = _asked_frames(drawn, target)
    spacing = factor * drawn.duration_seconds / asked
    assume(drawn.duration_seconds >= spacing)
    info = source(**{**drawn.__dict__, "keyframe_interval_seconds": spacing, "keyframe_count": 9})

    plan = plan_timelapse(info, target, LIMITS)

    assert plan.strategy == "keyframes"
    assert plan.sample_interval_seconds >= spacing * (1 - 1e-9)
    assert asked / NEAR_KEYFRAME_FACTOR - 1 <= plan.frame_count <= asked


def _asked_frames(info: SourceInfo, target: float) -> int:
    fitting = math.floor(info.duration_seconds * LIMITS.output_fps + 1e-6)
    return max(1, min(round(target * LIMITS.output_fps), fitting))


def _keyframes_fit_as_asked(info: SourceInfo, target: float) -> bool:
    spacing = info.keyframe_interval_seconds
    return spacing is not None and info.duration_seconds / _asked_frames(info, target) >= spacing


@given(sources, targets)
@settings(deadline=None)  # up to 18,000 sample times: slow on a loaded machine, not wrong
def test_sample_times_are_in_order_within_the_source_one_per_frame(info: SourceInfo, target: float):
    plan = plan_timelapse(info, target, LIMITS)
    times = plan.sample_times()

    assert len(times) == plan.frame_count
    assert times[0] == 0.0
    assert all(0 <= t < info.duration_seconds for t in times)
    assert all(a < b for a, b in itertools.pairwise(times))


@given(
    keyframe_interval=st.floats(min_value=0.5, max_value=10.0),
    duration=st.floats(min_value=60.0, max_value=4 * 3600.0),
    target=targets,
)
@settings(deadline=None)
def test_keyframe_selection_keeps_the_length_within_ten_percent(
    keyframe_interval: float, duration: float, target: float
):
    info = source(
        duration_seconds=duration, keyframe_interval_seconds=keyframe_interval, keyframe_count=24
    )
    plan = plan_timelapse(info, target, LIMITS)
    assume(plan.strategy == "keyframes")
    keyframes = [i * keyframe_interval for i in range(math.ceil(duration / keyframe_interval))]

    kept = selected_times(plan, keyframes)

    assert abs(len(kept) - plan.frame_count) <= max(1, 0.1 * plan.frame_count)


@given(
    fps=st.sampled_from([23.976, 24.0, 25.0, 29.97, 30.0, 60.0]),
    duration=st.floats(min_value=1.0, max_value=1200.0),
    target=targets,
)
@settings(deadline=None)  # lists up to 72,000 frame times: slow on a busy machine, not wrong
def test_time_windows_select_the_planned_frame_count_from_every_frame(
    fps: float, duration: float, target: float
):
    info = source(duration_seconds=duration, fps=fps, keyframe_interval_seconds=None)
    plan = plan_timelapse(info, target, LIMITS)
    frames = [i / fps for i in range(math.floor(duration * fps))]

    kept = selected_times(plan, frames)

    if len(frames) >= plan.frame_count:
        assert abs(len(kept) - plan.frame_count) <= max(1, 0.1 * plan.frame_count)
    # A window without a frame of its own repeats the frame before (fewer frames than windows:
    # 25 fps shown at 30; tests/integration/test_media.py renders both cases)
    assert plan.fills_gaps


def test_a_five_second_clip_with_a_thirty_second_target_keeps_every_frame():
    plan = plan_timelapse(source(duration_seconds=5.0, keyframe_interval_seconds=5.0), 30, LIMITS)

    assert plan.frame_count == 150
    assert plan.expected_duration_seconds == pytest.approx(5.0)
    assert plan.speedup == pytest.approx(1.0)
    assert plan.strategy == "decode_all"


def test_a_ten_minute_recording_with_two_second_keyframes_decodes_keyframes_only():
    plan = plan_timelapse(source(duration_seconds=600.0, keyframe_interval_seconds=2.0), 10, LIMITS)

    assert plan.strategy == "keyframes"  # its index unread: ffmpeg streams the keyframes
    assert plan.frame_count == 300
    assert plan.sample_interval_seconds == pytest.approx(2.0)
    assert (plan.output_width, plan.output_height) == (1920, 1080)


@pytest.mark.parametrize("codec", ["h264", "hevc"])
def test_an_indexed_mp4_fetches_its_keyframes_by_range(codec: str):
    info = source(codec=codec, size_bytes=None, bitrate_bps=15_000_000)

    plan = plan_timelapse(info, 10, LIMITS, indexed=True)

    assert plan.strategy == "ranges"
    assert plan.codec == codec
    assert plan.x264_params == "bframes=0"
    assert plan.preset == "ultrafast"


@pytest.mark.parametrize(
    "overrides",
    [
        {"format_name": "matroska,webm"},
        {"format_name": "avi"},
        {"codec": "vp9"},
        {"codec": "av1"},
    ],
)
def test_other_containers_and_codecs_stream_their_keyframes(overrides: dict[str, object]):
    info = source(**overrides)

    assert plan_timelapse(info, 10, LIMITS, indexed=True).strategy == "keyframes"


def test_keyframes_a_little_too_far_apart_still_serve():
    # 10 min, keyframe every 2.1 s, 300 frames asked (one per 2 s): 285 frames one per 2.1 s
    info = source(duration_seconds=600.0, keyframe_interval_seconds=2.1)

    plan = plan_timelapse(info, 10, LIMITS, indexed=True)

    assert plan.strategy == "ranges"
    assert plan.frame_count == 285
    assert plan.sample_interval_seconds == pytest.approx(600 / 285)
    # 2.3 s apart is more than 10 % off: every frame is decoded instead
    far = source(duration_seconds=600.0, keyframe_interval_seconds=2.3)
    assert plan_timelapse(far, 10, LIMITS, indexed=True).strategy == "decode_all"


def test_a_lone_keyframe_falls_back_to_decoding_everything():
    info = source(duration_seconds=600.0, keyframe_interval_seconds=120.0, keyframe_count=1)

    assert plan_timelapse(info, 1, LIMITS).strategy == "decode_all"


def test_a_portrait_phone_clip_is_rendered_upright():
    info = source(width=3840, height=2160, rotation=90)

    plan = plan_timelapse(info, 30, LIMITS)

    assert (plan.output_width, plan.output_height) == (1080, 1920)
    assert info.as_api()["width"] == 2160
    assert info.as_api()["height"] == 3840


def test_odd_sizes_become_even():
    assert output_size(1366, 767, 1920) == (1366, 766)
    assert output_size(853, 481, 1920) == (852, 480)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"width": 8193, "height": 1000}, "8192 pixels on a side"),
        ({"width": 8192, "height": 8192}, "pixels lapse accepts"),
        ({"duration_seconds": 25 * 3600.0}, "up to 24.0 hours"),
        ({"duration_seconds": 0.0}, "no duration"),
        ({"fps": 0.0}, "no frame rate"),
        ({"width": 0}, "no picture size"),
    ],
)
def test_sources_beyond_the_limits_are_refused_with_a_reason(
    overrides: dict[str, object], reason: str
):
    with pytest.raises(InvalidMediaError, match=reason):
        check_source_limits(source(**overrides), LIMITS)


def test_as_api_reports_display_dimensions():
    assert source(width=1920, height=1080, rotation=270).as_api() == {
        "width": 1080,
        "height": 1920,
        "fps": 30.0,
        "durationSeconds": 600.0,
        "codec": "h264",
        "sizeBytes": 1_000_000,
        "rotation": 270,
        "mirrored": False,
        "hdr": None,
    }


def test_the_select_expression_names_the_interval():
    plan = plan_timelapse(source(), 10, LIMITS)

    assert plan.select_expression.startswith("isnan(prev_selected_t)+")
    assert "2.000000000" in plan.select_expression


@pytest.mark.parametrize(
    ("stored", "aspect", "rotation", "display"),
    [
        # NTSC DVD 16:9: the long side stretched, the short side kept (nothing upscaled past it)
        ((720, 480), (32, 27), 0, (854, 480)),
        # NTSC DV 4:3: the long side squeezed
        ((720, 480), (8, 9), 0, (640, 480)),
        # PAL DVD 16:9, and turned by its display matrix
        ((720, 576), (64, 45), 0, (1024, 576)),
        ((720, 576), (64, 45), 90, (576, 1024)),
        # HDV 1440x1080 shown 1920x1080
        ((1440, 1080), (4, 3), 0, (1920, 1080)),
        ((1920, 1080), (1, 1), 0, (1920, 1080)),
        ((853, 480), (1, 1), 0, (853, 480)),  # square pixels: the stored size as it is
    ],
)  # fmt: skip
def test_anamorphic_pixels_are_shown_square(
    stored: tuple[int, int], aspect: tuple[int, int], rotation: int, display: tuple[int, int]
) -> None:
    # Given a source whose pixels are not square
    info = source(width=stored[0], height=stored[1], sample_aspect=aspect, rotation=rotation)
    # Then its display size is its picture in square pixels
    assert (info.display_width, info.display_height) == display
    # And the output has that shape, in square pixels (the render's scale, then setsar=1)
    plan = plan_timelapse(info, 30, LIMITS)
    assert (plan.output_width, plan.output_height) == output_size(*display, 1920)
    # While the API reports the picture as stored (turned upright): pixels, not its shape
    upright = stored[::-1] if rotation in (90, 270) else stored
    assert (info.as_api()["width"], info.as_api()["height"]) == upright


@pytest.mark.parametrize(("field_order", "interlaced"), [
    ("tff", True), ("bff", True), ("progressive", False), ("", False),
])  # fmt: skip
def test_the_plan_says_whether_to_deinterlace(field_order: str, interlaced: bool) -> None:
    plan = plan_timelapse(source(field_order=field_order), 30, LIMITS)
    assert plan.interlaced is interlaced
