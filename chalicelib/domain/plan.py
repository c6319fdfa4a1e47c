"""Planning a timelapse from probed metadata. Pure: no subprocess, no I/O, no environment.

`plan_timelapse` decides which source frames are kept, the output size and frame rate, the encoder
settings, and the strategy:

- ``keyframes``: decode only keyframes (``-skip_frame nokey -discard nokey``). Chosen when the
  sampling interval is at least the keyframe interval, so every sampling window holds a keyframe
  and the output keeps the planned frame count (it snaps to keyframe times, never to fewer frames).
- ``decode_all``: decode every frame and sample by time, with a fast preset.

Frames are selected by time window, not by frame number (variable frame rate sources): the first
frame whose timestamp falls into window ``floor(t / interval)`` is kept. That yields exactly one
frame per window whenever the window holds one, unlike ``fps=`` (repeats the first frame, picks the
last frame of each window) or "t - prev_selected_t >= interval" (drifts to fewer frames).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from chalicelib.domain.limits import Limits
from chalicelib.errors import InvalidMediaError

Strategy = Literal["keyframes", "decode_all"]

# Seconds a timestamp may sit before a window boundary and still count for the next window;
# absorbs rounding of timestamps to the stream time base.
_WINDOW_SLACK_SECONDS = 0.001
_SUPPORTED_ROTATIONS = (0, 90, 180, 270)


@dataclass(frozen=True)
class SourceInfo:
    """What the probe learned about a source video.

    ``width``/``height`` are as stored; ``rotation`` is the clockwise rotation a player applies
    (a phone's portrait clip is stored 1920x1080 with rotation 90). ``keyframe_interval_seconds`` is
    the largest gap between keyframes seen by the probe (None if unknown), ``keyframe_count`` the
    number of keyframes it saw (over the whole file when short, else over its first minutes).
    """

    width: int
    height: int
    rotation: int
    fps: float
    duration_seconds: float
    codec: str
    format_name: str
    size_bytes: int | None = None
    keyframe_interval_seconds: float | None = None
    keyframe_count: int | None = None
    stream_index: int = 0

    @property
    def display_width(self) -> int:
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation in (90, 270) else self.height

    def as_api(self) -> dict[str, Any]:
        return {
            "width": self.display_width,
            "height": self.display_height,
            "fps": round(self.fps, 3),
            "durationSeconds": round(self.duration_seconds, 3),
            "codec": self.codec,
            "sizeBytes": self.size_bytes,
            "rotation": self.rotation,
        }


@dataclass(frozen=True)
class RenderPlan:
    """Everything the renderer needs; no decision is left to it."""

    strategy: Strategy
    sample_interval_seconds: float
    frame_count: int
    output_width: int
    output_height: int
    output_fps: int
    expected_duration_seconds: float
    speedup: float
    crf: int
    preset: str
    x264_params: str
    source_duration_seconds: float
    stream_index: int = 0
    max_pixels: int = Limits().max_pixels
    threads: int = 2
    # AVI seeks poorly over HTTP (its index sits at the end, and interleaving varies): download it.
    download_first: bool = False

    @property
    def select_expression(self) -> str:
        """The ffmpeg ``select`` expression keeping the first frame of each sampling window."""
        iv = f"{self.sample_interval_seconds:.9f}"
        slack = f"{_WINDOW_SLACK_SECONDS}"
        window = f"floor((t+{slack})/{iv})"
        previous_window = f"floor((prev_selected_t+{slack})/{iv})"
        return f"isnan(prev_selected_t)+gt({window},{previous_window})"


def check_source_limits(source: SourceInfo, limits: Limits) -> None:
    """Raise InvalidMediaError, with a reason a user can act on, if lapse cannot render `source`."""
    if source.width <= 0 or source.height <= 0:
        raise InvalidMediaError("The video has no picture size; it may be damaged.")
    if source.width > limits.max_width or source.height > limits.max_height:
        raise InvalidMediaError(
            f"The video is {source.width}x{source.height}; lapse accepts frames up to "
            f"{limits.max_width} pixels on a side."
        )
    if source.width * source.height > limits.max_pixels:
        raise InvalidMediaError(
            f"The video frame is {source.width}x{source.height}, larger than the "
            f"{limits.max_pixels:,} pixels lapse accepts (8K)."
        )
    if not math.isfinite(source.duration_seconds) or source.duration_seconds <= 0:
        raise InvalidMediaError("The video has no duration; it may be empty or damaged.")
    if source.duration_seconds > limits.max_source_seconds:
        raise InvalidMediaError(
            f"The video lasts {_hours(source.duration_seconds)}; lapse accepts videos up to "
            f"{_hours(limits.max_source_seconds)}."
        )
    if not math.isfinite(source.fps) or source.fps <= 0:
        raise InvalidMediaError("The video has no frame rate; it may be damaged.")
    if source.rotation not in _SUPPORTED_ROTATIONS:
        raise InvalidMediaError(f"The video is rotated by {source.rotation} degrees; lapse cannot.")


def plan_timelapse(source: SourceInfo, target_seconds: float, limits: Limits) -> RenderPlan:
    """Plan a timelapse of `source` lasting about `target_seconds`, never longer than the source."""
    check_source_limits(source, limits)
    if not math.isfinite(target_seconds) or target_seconds <= 0:
        raise ValueError(f"target_seconds must be positive, got {target_seconds!r}")
    fps = limits.output_fps
    source_frames = max(1, math.floor(source.duration_seconds * source.fps + 1e-6))
    wanted_frames = round(target_seconds * fps)
    fitting_frames = math.floor(
        source.duration_seconds * fps + 1e-6
    )  # never longer than the source
    frame_count = max(1, min(wanted_frames, fitting_frames, source_frames))
    interval = source.duration_seconds / frame_count
    width, height = output_size(source.display_width, source.display_height, limits.output_max_side)
    strategy = _strategy(source, interval)
    expected = frame_count / fps
    return RenderPlan(
        strategy=strategy,
        sample_interval_seconds=interval,
        frame_count=frame_count,
        output_width=width,
        output_height=height,
        output_fps=fps,
        expected_duration_seconds=expected,
        speedup=source.duration_seconds / expected,
        crf=23,
        preset="veryfast",
        x264_params=_x264_params(strategy),
        source_duration_seconds=source.duration_seconds,
        stream_index=source.stream_index,
        max_pixels=limits.max_pixels,
        download_first=source.format_name == "avi",
    )


def output_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Fit (width, height) within `max_side` on the longest side, never upscaling; even sides."""
    scale = min(1.0, max_side / max(width, height))
    return _even(width * scale), _even(height * scale)


def _even(value: float) -> int:
    return max(2, math.floor(value / 2 + 1e-9) * 2)


def _strategy(source: SourceInfo, interval: float) -> Strategy:
    keyframe_interval = source.keyframe_interval_seconds
    if keyframe_interval is None or keyframe_interval <= 0:
        return "decode_all"
    # A lone keyframe (pitfall 8) has an interval as long as the probe window: never enough.
    if source.keyframe_count is None or source.keyframe_count < 2:
        return "decode_all"
    return "keyframes" if interval >= keyframe_interval else "decode_all"


def _x264_params(strategy: Strategy) -> str:
    # Keyframe samples lie seconds apart and differ a lot: B-frames there cost ~25 % of the encode
    # time and save ~10 % of the size (measured, 1080p, 300 frames). Dense samples keep them.
    return "bframes=0" if strategy == "keyframes" else ""


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 60:
        return f"{seconds / 60:.1f} minutes"
    return f"{seconds:.1f} seconds"
