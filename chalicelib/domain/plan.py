"""Planning a timelapse from probed metadata. Pure: no subprocess, no I/O, no environment.

`plan_timelapse` decides which source frames are kept, the output size and frame rate, the encoder
settings, and the strategy:

- ``ranges``: for H.264/HEVC in MP4/MOV whose index was read, fetch exactly the byte ranges of
  the keyframes the ``keyframes`` path would keep (the first of each sampling window) and decode
  them from a pipe (`media.keyframe_fetch`). It reads only those bytes (a few % of the file) in a
  few concurrent ranged reads, and needs no PyAV, so Lambda runs it too.
- ``keyframes``: decode only keyframes (``-skip_frame nokey -discard nokey``), ffmpeg's demuxer
  streaming the file (other containers: MKV/WebM, AVI). Chosen like ``ranges``: when the sampling
  interval is at least the keyframe interval, so every sampling window holds a keyframe and the
  output keeps the planned frame count. When keyframes lie up to ~10 % further apart than the
  interval asked for, the plan samples at the keyframe spacing instead (an output up to 10 %
  shorter) rather than decode every frame.
- ``decode_all``: decode every frame and sample by time, with a fast preset.

Frames are selected by time window, not by frame number (variable frame rate sources): the first
frame whose timestamp falls into window ``floor(t / interval)`` is kept. That yields exactly one
frame per window whenever the window holds one, unlike ``fps=`` (repeats the first frame, picks the
last frame of each window) or "t - prev_selected_t >= interval" (drifts to fewer frames). Where
every frame is decoded, a window that holds none (a variable frame rate source's gap; a source with
fewer frames than the length asks for) repeats the frame before (`RenderPlan.fills_gaps`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from chalicelib.domain.color import ColorInfo
from chalicelib.domain.limits import Limits
from chalicelib.domain.options import RenderOptions
from chalicelib.errors import InvalidMediaError

Strategy = Literal["ranges", "keyframes", "decode_all"]

# Seconds a timestamp may sit before a window boundary and still count for the next window;
# absorbs rounding of timestamps to the stream time base.
_WINDOW_SLACK_SECONDS = 0.001
_SUPPORTED_ROTATIONS = (0, 90, 180, 270)
INTERLACED_FIELD_ORDERS = ("tff", "bff")
_PART_READ_MARGIN_SECONDS = 1.0


@dataclass(frozen=True)
class SourceInfo:
    """What the probe learned about a source video.

    ``width``/``height`` are as stored; ``rotation`` is the clockwise rotation a player applies
    (a phone's portrait clip is stored 1920x1080 with rotation 90). ``keyframe_interval_seconds`` is
    the largest gap between keyframes seen by the probe (None if unknown), ``keyframe_count`` the
    number of keyframes it saw (over the whole file when short, else over its first minutes).
    ``bitrate_bps`` is the container's overall bit rate (what a URL's size is estimated from).
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
    bitrate_bps: int | None = None
    # Mirrored after the rotation (front cameras); the size is that of the rotation alone.
    mirrored: bool = False
    color: ColorInfo = field(default_factory=ColorInfo)
    # When recording began (seconds since the epoch, shifted to the recording's local time when
    # the file states its offset); None when the file does not say.
    recorded_at: float | None = None
    # As the stream states it: "tff"/"bff" (interlaced: camcorders, broadcast), "progressive",
    # or "" when it does not say.
    field_order: str = ""
    # The stored pixels' shape, width:height (anamorphic DV/DVD: 720x480 at 32:27 shows 16:9).
    sample_aspect: tuple[int, int] = (1, 1)

    @property
    def estimated_bytes(self) -> float | None:
        """The file's size: as measured (local file), else from the bit rate (URL), else None."""
        if self.size_bytes:
            return float(self.size_bytes)
        if self.bitrate_bps and math.isfinite(self.duration_seconds):
            return self.bitrate_bps * self.duration_seconds / 8
        return None

    @property
    def interlaced(self) -> bool:
        return self.field_order in INTERLACED_FIELD_ORDERS

    @property
    def upright_width(self) -> int:
        """The stored width or height as the rotation shows it (pixels as stored)."""
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def upright_height(self) -> int:
        return self.width if self.rotation in (90, 270) else self.height

    @property
    def display_width(self) -> int:
        """Shown upright in square pixels: the size the output is fitted from."""
        return self._square_pixels[1] if self.rotation in (90, 270) else self._square_pixels[0]

    @property
    def display_height(self) -> int:
        return self._square_pixels[0] if self.rotation in (90, 270) else self._square_pixels[1]

    @property
    def _square_pixels(self) -> tuple[int, int]:
        """The stored picture in square pixels: its short side kept, its long side stretched or
        squeezed by the sample aspect (720x480 at 32:27 → 854x480), to the nearest even size."""
        num, den = self.sample_aspect
        if num <= 0 or den <= 0 or num == den:
            return self.width, self.height
        if self.width >= self.height:
            return _nearest_even(self.width * num / den), self.height
        return self.width, _nearest_even(self.height * den / num)

    def as_api(self) -> dict[str, Any]:
        return {
            "width": self.upright_width,
            "height": self.upright_height,
            "fps": round(self.fps, 3),
            "durationSeconds": round(self.duration_seconds, 3),
            "codec": self.codec,
            "sizeBytes": self.size_bytes,
            "rotation": self.rotation,
            "mirrored": self.mirrored,
            "hdr": self.color.hdr,
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
    # Clockwise rotation a player applies; "ranges" applies it itself (raw input).
    rotation: int = 0
    # The demuxer to name when ffmpeg opens the source.
    input_format: str | None = None
    # Mirrored after the rotation; paths that do not autorotate apply it with the rotation.
    mirrored: bool = False
    # The source is interlaced: kept frames flagged interlaced are deinterlaced.
    interlaced: bool = False
    # The source's colours: HDR is tone-mapped and every picture converted to BT.709.
    color: ColorInfo = field(default_factory=ColorInfo)
    # The stored picture's height (picks the matrix of an untagged source: SD or HD).
    source_height: int = 0
    # The source's video codec as ffmpeg names it ("ranges" pipes it raw: -f h264 / -f hevc).
    codec: str = ""
    options: RenderOptions = field(default_factory=RenderOptions)
    # Source-time ranges left out as idle (`skipIdle`), in order, not overlapping.
    dropped: tuple[tuple[float, float], ...] = ()
    recorded_at: float | None = None
    # One part of a fanned-out render (domain/fanout.py): output frames first_frame… of the whole,
    # decoded from `seek_seconds` into the source (0: from its start).
    first_frame: int = 0
    seek_seconds: float = 0.0

    @property
    def is_part(self) -> bool:
        return self.first_frame > 0 or self.seek_seconds > 0

    @property
    def read_seconds(self) -> float | None:
        """How much of the source a part reads from its seek point: up to the end of its last
        window and a little more. ffmpeg does not stop reading when the output has its frames
        while an ``fps`` filter ends the chain (measured: a 19-frame part of a 20-minute source
        decoded on to the end of the file), so a part bounds its input. ffmpeg counts the
        duration from where the demuxer landed, up to a keyframe spacing before the seek point
        when the keyframes' times were not known (the part then seeks two spacings before its
        first window): that lead is added."""
        if not self.is_part:
            return None
        iv = self.sample_interval_seconds
        end = (self.first_frame + self.frame_count + 1) * iv
        lead = max(0.0, self.first_frame * iv - self.seek_seconds)
        return end - self.seek_seconds + lead + _PART_READ_MARGIN_SECONDS

    @property
    def idle_seconds_skipped(self) -> float:
        return sum(end - start for start, end in self.dropped)

    def is_dropped(self, seconds: float) -> bool:
        return any(start <= seconds < end for start, end in self.dropped)

    @property
    def source_time_expression(self) -> str:
        """Seconds into the source of output frame ``N`` (the start of its sampling window), as
        an ffmpeg expression: kept windows follow one another, each dropped range pushes the
        rest later by its length."""
        iv = self.sample_interval_seconds
        frame = f"(N+{self.first_frame})" if self.first_frame else "N"
        terms = [f"{frame}*{iv:.9f}"]
        before = 0.0
        for start, end in self.dropped:
            first_after = round((start - before) / iv)
            terms.append(f"gte(N,{first_after})*{end - start:.6f}")
            before += end - start
        return "+".join(terms)

    def sample_times(self) -> list[float]:
        """Seconds from the source's start of each kept sample: the window starts.

        The first keyframe at or after each is the very frame ``select_expression`` keeps from a
        keyframes-only decode; with keyframes at most one interval apart it lies in that window,
        so the keyframes are distinct and in order. (The engine benchmark's PyAV row,
        `bench/seek.py`, seeks to these.)
        """
        windows = math.ceil(self.source_duration_seconds / self.sample_interval_seconds)
        starts = (i * self.sample_interval_seconds for i in range(max(windows, self.frame_count)))
        kept = [max(0.0, t - _WINDOW_SLACK_SECONDS) for t in starts if not self.is_dropped(t)]
        return kept[: self.frame_count]

    def window_at(self, time: str) -> str:
        """The sampling window (output frame number) of a frame `time` seconds into the input,
        as an ffmpeg expression (a part's input starts at its seek point)."""
        offset = _WINDOW_SLACK_SECONDS + self.seek_seconds
        return f"floor(({time}+{offset:.9f})/{self.sample_interval_seconds:.9f})"

    @property
    def fills_gaps(self) -> bool:
        """Whether windows the source has no frame in repeat the frame before: where every
        frame is decoded (a variable frame rate source leaves some windows empty when the
        sampling interval is near its frame spacing), and no idle range is left out (its windows
        must stay out)."""
        return self.strategy == "decode_all" and not self.dropped

    @property
    def select_expression(self) -> str:
        """The ffmpeg ``select`` expression keeping the first frame of each sampling window.

        A part's input starts `seek_seconds` into the source (``t`` counts from there, and frames
        before it come through with negative times: ``-noaccurate_seek``), so its windows are
        numbered from the source's start again and only its own are kept."""
        window = self.window_at("t")
        previous_window = self.window_at("prev_selected_t")
        new_window = f"isnan(prev_selected_t)+gt({window},{previous_window})"
        if self.is_part:
            end = self.first_frame + self.frame_count
            new_window = f"({new_window})*gte({window},{self.first_frame})*lt({window},{end})"
        if not self.dropped:
            return new_window
        # Frames inside a dropped range are never selected, so prev_selected_t stays outside them.
        inside = "+".join(f"between(t,{start:.6f},{end:.6f})" for start, end in self.dropped)
        return f"({new_window})*not({inside})"


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


def plan_timelapse(
    source: SourceInfo,
    target_seconds: float | None,
    limits: Limits,
    *,
    indexed: bool = False,
    speed: float | None = None,
    options: RenderOptions | None = None,
    dropped: tuple[tuple[float, float], ...] = (),
) -> RenderPlan:
    """Plan a timelapse of `source` lasting about `target_seconds` (or the source's duration over
    `speed`), never longer than the source, at the options' frame rate and resolution.

    `indexed` says the container's own index was read (`media.mp4index`): the keyframes' byte
    ranges are known, so "ranges" can fetch just those. `dropped` are idle source ranges to leave
    out (`skipIdle`): with `speed` the timelapse gets shorter by them, with `target_seconds` the
    rest fills the length.
    """
    check_source_limits(source, limits)
    chosen = options or RenderOptions(fps=limits.output_fps)
    length = _asked_length(source, target_seconds, speed, limits)
    fps = chosen.fps
    kept = max(1e-3, source.duration_seconds - sum(end - start for start, end in dropped))
    if speed is not None:
        length = kept / speed
    wanted_frames = round(length * fps)
    fitting_frames = math.floor(kept * fps + 1e-6)  # never longer than the source
    # A source with fewer frames than the length asks for (25 fps shown at 30, a 10 fps screen
    # recording) still gets the asked length: windows without a frame of their own repeat the
    # one before (`RenderPlan.fills_gaps`).
    frame_count = max(1, min(wanted_frames, fitting_frames))
    if not dropped:
        frame_count = _near_keyframes(source, frame_count)
    interval = kept / frame_count
    width, height = fit_resolution(
        source.display_width, source.display_height, chosen, limits.output_max_side
    )
    strategy = _strategy(source, interval, indexed=indexed)
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
        crf=_crf(strategy),
        preset=_preset(strategy),
        x264_params=_x264_params(strategy),
        source_duration_seconds=source.duration_seconds,
        stream_index=source.stream_index,
        max_pixels=limits.max_pixels,
        download_first=source.format_name == "avi",
        rotation=source.rotation,
        input_format=source.format_name.split(",")[0] or None,
        mirrored=source.mirrored,
        interlaced=source.interlaced,
        color=source.color,
        source_height=source.height,
        codec=source.codec,
        options=chosen,
        dropped=dropped,
        recorded_at=source.recorded_at,
    )


def _asked_length(
    source: SourceInfo, target_seconds: float | None, speed: float | None, limits: Limits
) -> float:
    """Seconds of output asked for: a length, or the source's duration over a speed-up."""
    if speed is None:
        if target_seconds is None or not math.isfinite(target_seconds) or target_seconds <= 0:
            raise ValueError(f"target_seconds must be positive, got {target_seconds!r}")
        return target_seconds
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"speed must be positive, got {speed!r}")
    length = source.duration_seconds / speed
    if length > limits.max_target_seconds:
        fastest = math.ceil(source.duration_seconds / limits.max_target_seconds)
        raise InvalidMediaError(
            f"At speed {speed:g} this {_hours(source.duration_seconds)} video would last "
            f"{_hours(length)}; lapse makes timelapses up to "
            f"{_hours(limits.max_target_seconds)}. Choose a speed of at least {fastest}."
        )
    return length


def fit_resolution(
    width: int, height: int, options: RenderOptions, max_side: int
) -> tuple[int, int]:
    """The output size: short side at most the resolution's (long side at most 16:9 of it, and
    at most `max_side` for the default 1080p), never upscaled; even sides."""
    long_side = options.long_side if options.resolution != "1080p" else max_side
    scale = min(1.0, options.short_side / min(width, height), long_side / max(width, height))
    return _even(width * scale), _even(height * scale)


def output_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """Fit (width, height) within `max_side` on the longest side, never upscaling; even sides."""
    scale = min(1.0, max_side / max(width, height))
    return _even(width * scale), _even(height * scale)


def _even(value: float) -> int:
    return max(2, math.floor(value / 2 + 1e-9) * 2)


def _nearest_even(value: float) -> int:
    return max(2, round(value / 2) * 2)


# Near-keyframe sampling: when keyframes lie at most 10 % further apart than the sampling
# interval, sampling at the keyframe spacing instead lets keyframes serve (a few hundred pictures
# decoded instead of every frame), for an output up to 10 % (and a frame) shorter than asked.
NEAR_KEYFRAME_FACTOR = 1.1
# "ranges" reads H.264/HEVC keyframes by the MP4/MOV index: the bytes of the kept keyframes only.
RANGE_CODECS = ("h264", "hevc")
_INDEXED_FORMATS = ("mov,",)


def _keyframes_known(source: SourceInfo) -> float | None:
    """The keyframe spacing, when there are keyframes enough to sample from (pitfall 8: a lone
    keyframe has an interval as long as the probe window, never enough)."""
    keyframe_interval = source.keyframe_interval_seconds
    if keyframe_interval is None or keyframe_interval <= 0:
        return None
    if source.keyframe_count is None or source.keyframe_count < 2:
        return None
    return keyframe_interval


def _near_keyframes(source: SourceInfo, frame_count: int) -> int:
    """`frame_count`, or fewer frames (about 10 % fewer at most) one keyframe spacing apart
    when that lets every sampling window hold a keyframe."""
    keyframe_interval = _keyframes_known(source)
    interval = source.duration_seconds / frame_count
    if keyframe_interval is None or interval >= keyframe_interval:
        return frame_count
    spaced = math.floor(source.duration_seconds / keyframe_interval + 1e-9)
    if spaced >= 1 and keyframe_interval <= NEAR_KEYFRAME_FACTOR * interval * (1 + 1e-9):
        return spaced
    return frame_count


def _strategy(source: SourceInfo, interval: float, *, indexed: bool) -> Strategy:
    keyframe_interval = _keyframes_known(source)
    if keyframe_interval is None or interval < keyframe_interval * (1 - 1e-9):
        return "decode_all"
    # Every window holds a keyframe: fetch just those by the index, or stream the file.
    if indexed and source.format_name.startswith(_INDEXED_FORMATS) and source.codec in RANGE_CODECS:
        return "ranges"
    return "keyframes"


def _preset(strategy: Strategy) -> str:
    # With keyframes only, encoding is most of the job (1080p, 300 frames: decoding 0.5 s, encoding
    # 3.3 s at veryfast, 2.6 s at superfast, 1.5 s at ultrafast); decode_all is bound by decoding:
    # keep veryfast there.
    return "veryfast" if strategy == "decode_all" else "ultrafast"


def _crf(strategy: Strategy) -> int:
    # Measured with bench/render.py, 1080p, 300 keyframes, SSIM against the slow pipeline's output:
    # veryfast CRF 23 8.9 MB 0.994 (3.9 s); superfast CRF 23 14.8 MB 0.995 (3.4 s);
    # superfast CRF 25 12.3 MB 0.995 (3.1 s). Again at the end of session 2 (10-min 1080p30 source,
    # keyframes decoded from disk, encode seconds): superfast CRF 25 12.3 MB 0.9946 (2.6 s);
    # ultrafast CRF 25 18.8 MB 0.9949 (1.4 s); ultrafast CRF 27 16.5 MB 0.9946 (1.5 s): the same
    # SSIM as superfast CRF 25 in 57 % of the time for 34 % more bytes — the product path's render
    # is mostly this encode. Sparse samples differ a lot frame to frame.
    return 23 if strategy == "decode_all" else 27


def _x264_params(strategy: Strategy) -> str:
    # Keyframe samples lie seconds apart and differ a lot: B-frames there cost ~25 % of the encode
    # time and save ~10 % of the size (measured, 1080p, 300 frames). Dense samples keep them.
    return "" if strategy == "decode_all" else "bframes=0"


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 60:
        return f"{seconds / 60:.1f} minutes"
    return f"{seconds:.1f} seconds"
