"""Timelapse options (API.md v1.1): parsing and refusals, the echo, and what the planner makes
of speed, fps and resolution. Pure: no ffmpeg, no sockets."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib import wire
from chalicelib.domain.limits import Limits
from chalicelib.domain.options import FPS_CHOICES, RESOLUTIONS, RenderOptions
from chalicelib.domain.plan import SourceInfo, fit_resolution, plan_timelapse
from chalicelib.domain.webhooks import CallbackPolicy
from chalicelib.errors import InvalidMediaError, ValidationError
from chalicelib.inputs import companion_create_fields
from chalicelib.inputs import create_command as parse_create
from tests.factories import a_timelapse

pytestmark = pytest.mark.disable_socket

LIMITS = Limits()
VALID: dict[str, Any] = {"projectId": "p-42", "contentType": "video/mp4", "sizeBytes": 1024}


def create(**fields: Any) -> Any:
    return parse_create({**VALID, **fields}, LIMITS, CallbackPolicy())


def source(**overrides: Any) -> SourceInfo:
    values: dict[str, Any] = {
        "width": 1920, "height": 1080, "rotation": 0, "fps": 30.0, "duration_seconds": 600.0,
        "codec": "h264", "format_name": "mov,mp4,m4a,3gp,3g2,mj2", "size_bytes": 10**6,
        "keyframe_interval_seconds": 2.0, "keyframe_count": 24,
    }  # fmt: skip
    return SourceInfo(**{**values, **overrides})


# --- the create body -------------------------------------------------------------------------


def test_no_options_means_the_defaults() -> None:
    request = create()
    assert request.options == RenderOptions()
    assert (request.target_seconds, request.speed) == (LIMITS.default_target_seconds, None)


def test_every_option_is_read() -> None:
    request = create(
        speed=30, fps=60, resolution="720p", skipIdle=True, timestamp=True, deflicker=True
    )
    assert request.speed == 30.0
    assert request.target_seconds is None
    assert request.options == RenderOptions(60, "720p", True, True, True)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"speed": 30, "targetSeconds": 10}, "not both"),
        ({"speed": 1.5}, "speed must be between 2 and 100000"),
        ({"speed": 100001}, "speed must be between"),
        ({"speed": "30"}, "speed must be a number"),
        ({"speed": True}, "speed must be a number"),
        ({"fps": 29.97}, "fps must be one of 24, 25, 30, 50, 60"),
        ({"fps": 120}, "fps must be one of"),
        ({"fps": "30"}, "fps must be one of"),
        ({"resolution": "4k"}, "resolution must be one of 720p, 1080p, 1440p, 2160p"),
        ({"resolution": 720}, "resolution must be one of"),
        ({"skipIdle": "yes"}, "skipIdle must be true or false"),
        ({"timestamp": 1}, "timestamp must be true or false"),
        ({"deflicker": None}, "deflicker must be true or false"),
    ],
)
def test_bad_values_and_combinations_are_refused_with_a_reason(
    fields: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValidationError, match=reason):
        create(**fields)


def test_the_resource_echoes_the_options_and_speed() -> None:
    record = a_timelapse(
        target_seconds=None, speed=12.5, options=RenderOptions(fps=24, resolution="1440p")
    )
    body = wire.timelapse(record)
    assert body["speed"] == 12.5
    assert body["targetSeconds"] is None
    assert body["options"] == {
        "fps": 24, "resolution": "1440p", "skipIdle": False, "timestamp": False,
        "deflicker": False,
    }  # fmt: skip


def test_stored_options_of_older_records_read_as_the_defaults() -> None:
    assert RenderOptions.from_api(None) == RenderOptions()
    assert RenderOptions.from_api({"fps": 60}) == RenderOptions(fps=60)


def test_companion_metadata_strings_become_options() -> None:
    fields = companion_create_fields(
        "a.mp4",
        "video/mp4",
        {"projectId": "p", "speed": "30", "fps": "60", "resolution": "720p", "skipIdle": "true",
         "timestamp": "false", "deflicker": "true"},
    )  # fmt: skip
    request = parse_create(fields, LIMITS, CallbackPolicy(), size_required=False)
    assert request.speed == 30
    assert request.options == RenderOptions(60, "720p", True, False, True)


# --- the planner -----------------------------------------------------------------------------


@pytest.mark.parametrize("fps", FPS_CHOICES)
def test_any_frame_rate_keeps_the_asked_length(fps: int) -> None:
    plan = plan_timelapse(source(), 20, LIMITS, options=RenderOptions(fps=fps))
    assert plan.output_fps == fps
    assert plan.frame_count == 20 * fps
    assert plan.expected_duration_seconds == pytest.approx(20)


def test_speed_sets_the_length_to_the_duration_over_the_speed() -> None:
    plan = plan_timelapse(source(duration_seconds=600.0), None, LIMITS, speed=30)
    assert plan.expected_duration_seconds == pytest.approx(20)
    assert plan.speedup == pytest.approx(30)


def test_a_speed_too_slow_for_the_longest_timelapse_fails_with_the_speed_to_ask() -> None:
    with pytest.raises(InvalidMediaError, match="speed of at least 144"):
        plan_timelapse(source(duration_seconds=86_400.0), None, LIMITS, speed=2)


def test_720p_of_1080p_is_1280x720_and_portrait_720x1280() -> None:
    small = RenderOptions(resolution="720p")
    assert plan_timelapse(source(), 10, LIMITS, options=small).output_width == 1280
    assert fit_resolution(1920, 1080, small, 1920) == (1280, 720)
    assert fit_resolution(1080, 1920, small, 1920) == (720, 1280)


def test_a_resolution_above_the_source_never_upscales() -> None:
    assert fit_resolution(1920, 1080, RenderOptions(resolution="2160p"), 1920) == (1920, 1080)
    assert fit_resolution(3840, 2160, RenderOptions(resolution="1440p"), 1920) == (2560, 1440)


@given(
    st.integers(2, 8192),
    st.integers(2, 8192),
    st.sampled_from(list(RESOLUTIONS)),
)
def test_the_short_side_never_exceeds_the_resolution(width: int, height: int, name: str) -> None:
    options = RenderOptions(resolution=name)
    out_w, out_h = fit_resolution(width, height, options, LIMITS.output_max_side)
    assert min(out_w, out_h) <= max(2, options.short_side)
    assert out_w <= max(2, width)
    assert out_h <= max(2, height)
    assert out_w % 2 == out_h % 2 == 0
