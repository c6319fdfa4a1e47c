"""Fanning a long render out over several function invocations (issue 14). Pure.

A render whose estimated time passes a safe share of the function's time limit is split into
parts: contiguous runs of output frames (sampling windows), each starting where the decoder can
start, at a keyframe. Each part is rendered by its own invocation to a segment; the segments are
joined (concat, stream copy) in order. Every window belongs to exactly one part and each part
keeps the first frame of each of its windows, as the whole render would, so the joined timelapse
holds exactly the planned frames: none repeated or lost where two parts meet.

The estimate is measured decode and encode speed (pixels per second on the reference machine, 2
vCPUs; a 4096 MB Lambda function has about 2.3) times the pixels each strategy decodes and encodes.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from chalicelib.domain.plan import RenderPlan, SourceInfo

# A part must fit in this share of the function's time limit: room for a slow machine, a busy
# neighbour, the upload and the join.
SAFE_SHARE = 1 / 3
# The speeds below were measured with this many vCPUs (ffmpeg runs 2 threads); an invocation with
# fewer (the local worker running two renders on two cores: one each) gets smaller parts.
REFERENCE_VCPUS = 2.0
# What every part pays besides decoding and encoding: describing the source again, starting
# ffmpeg, storing the segment.
PART_OVERHEAD_SECONDS = 1.5
# Decoding, pixels per second. H.264: ~160 frames/s of a real 1080p recording on 2 vCPUs (332 Mpx/s;
# a synthetic testsrc2 1080p60 clip decodes at ~310 frames/s here, so this is conservative); HEVC:
# ~45 frames/s of 4K (373 Mpx/s). Other codecs (VP8/9, AV1, ProRes, MJPEG): slower, guessed low.
DECODE_PIXELS_PER_SECOND: Mapping[str, float] = {"h264": 330e6, "hevc": 370e6}
OTHER_DECODE_PIXELS_PER_SECOND = 150e6
# Encoding the kept frames (x264, 2 threads), pixels per second by preset.
ENCODE_PIXELS_PER_SECOND: Mapping[str, float] = {"veryfast": 120e6, "ultrafast": 250e6}
OTHER_ENCODE_PIXELS_PER_SECOND = 60e6
# Containers whose demuxer seeks to a keyframe at or before a time (MP4/MOV by the index, Matroska
# by its cues): a part can start decoding in the middle. MPEG-TS and AVI seek by guessing bytes.
SPLITTABLE_FORMATS = ("mov,", "matroska")
# Without the keyframes' times, a part starts decoding this many keyframe spacings early (the
# demuxer lands on the keyframe before): frames before the part's first window are not kept.
UNALIGNED_LEAD_KEYFRAMES = 2
UNKNOWN_KEYFRAME_SPACING_SECONDS = 10.0
MAX_PARTS = 200
# Seconds a timestamp may sit before a window boundary and still count for the next window (as
# in plan.py's select expression).
_SLACK = 0.001


@dataclass(frozen=True)
class PartRange:
    """Output frames `first_frame` ≤ n < `end_frame` (sampling windows of the same numbers),
    decoded from `seek_seconds` into the source (0: from the start)."""

    first_frame: int
    end_frame: int
    seek_seconds: float

    @property
    def frame_count(self) -> int:
        return self.end_frame - self.first_frame


@dataclass(frozen=True)
class FanOut:
    """A render handed to parts, as the record holds it: the parts, and which are done (their
    segments' keys), how far each got and how often each failed."""

    token: str
    parts: tuple[PartRange, ...]
    frame_count: int
    done: frozenset[int] = frozenset()
    keys: Mapping[int, str] = field(default_factory=dict)
    frames: Mapping[int, int] = field(default_factory=dict)
    failures: Mapping[int, int] = field(default_factory=dict)

    @property
    def all_done(self) -> bool:
        return all(part in self.done for part in range(len(self.parts)))

    @property
    def join_part(self) -> int:
        """The number a join handed to its own invocation goes by: counted done like a part,
        once, so a duplicate join message finds it taken."""
        return len(self.parts)

    @property
    def progress(self) -> int:
        """Percent of the planned frames rendered over all parts (99 until joined)."""
        rendered = sum(
            part.frame_count if i in self.done else min(self.frames.get(i, 0), part.frame_count)
            for i, part in enumerate(self.parts)
        )
        return min(99, rendered * 100 // max(1, self.frame_count))


def part_plan(plan: RenderPlan, part: PartRange) -> RenderPlan:
    """`plan` narrowed to one part: its windows, numbered as in the whole, decoded from its seek.

    Segments are encoded without B-frames: a segment with them starts at a negative decoding
    time, and where the concat demuxer puts two such segments end to end the decoding times of
    the second overlap the first's, which the MP4 muxer then shifts (measured: an 8-s timelapse
    joined from six segments lasted 7.93 s)."""
    params = [p for p in plan.x264_params.split(":") if p and not p.startswith("bframes=")]
    return replace(
        plan,
        frame_count=part.frame_count,
        first_frame=part.first_frame,
        seek_seconds=part.seek_seconds,
        expected_duration_seconds=part.frame_count / plan.output_fps,
        x264_params=":".join([*params, "bframes=0"]),
    )


def is_splittable(plan: RenderPlan, source: SourceInfo) -> bool:
    """Parts can render it: a container that seeks to keyframes, nothing left out as idle (the
    windows then no longer follow one another), read by the container's own demuxer."""
    return (
        not plan.dropped
        and not plan.download_first
        and source.format_name.startswith(SPLITTABLE_FORMATS)
    )


def estimate_seconds(plan: RenderPlan, source: SourceInfo, frames: int | None = None) -> float:
    """Seconds one invocation needs to render `frames` consecutive windows of `plan` (all)."""
    windows = plan.frame_count if frames is None else frames
    return PART_OVERHEAD_SECONDS + windows * _seconds_per_window(plan, source)


def _seconds_per_window(plan: RenderPlan, source: SourceInfo) -> float:
    decode_rate = DECODE_PIXELS_PER_SECOND.get(source.codec, OTHER_DECODE_PIXELS_PER_SECOND)
    encode_rate = ENCODE_PIXELS_PER_SECOND.get(plan.preset, OTHER_ENCODE_PIXELS_PER_SECOND)
    decoded = _decoded_per_window(plan, source) * source.width * source.height / decode_rate
    encoded = plan.output_width * plan.output_height / encode_rate
    return decoded + encoded


def _decoded_per_window(plan: RenderPlan, source: SourceInfo) -> float:
    """Source frames decoded for one sampling window, by strategy."""
    if plan.strategy == "decode_all":
        return max(1.0, plan.sample_interval_seconds * source.fps)
    if plan.strategy == "keyframes":
        spacing = source.keyframe_interval_seconds or plan.sample_interval_seconds
        return max(1.0, plan.sample_interval_seconds / spacing)
    return 1.0  # "ranges", "seek": the kept keyframe only


def _lead_in_seconds(plan: RenderPlan, source: SourceInfo, aligned: bool) -> float:
    """What a part that does not start at the source's start decodes before its first window."""
    if plan.strategy not in ("decode_all", "keyframes"):
        return 0.0
    spacing = source.keyframe_interval_seconds or UNKNOWN_KEYFRAME_SPACING_SECONDS
    gops = 1 if aligned else 1 + UNALIGNED_LEAD_KEYFRAMES
    decode_rate = DECODE_PIXELS_PER_SECOND.get(source.codec, OTHER_DECODE_PIXELS_PER_SECOND)
    frames = gops * spacing * (source.fps if plan.strategy == "decode_all" else 1 / spacing)
    return frames * source.width * source.height / decode_rate


def split_render(
    plan: RenderPlan,
    source: SourceInfo,
    *,
    budget_seconds: float,
    keyframes: Sequence[float] | None = None,
) -> tuple[PartRange, ...]:
    """The parts to render `plan` in, each estimated to fit `budget_seconds`; () when the whole
    fits (or cannot be split). `keyframes` are the source's keyframe times, in order, when the
    container's index gave them: each part then starts exactly at one."""
    whole = estimate_seconds(plan, source)
    if whole <= budget_seconds or plan.frame_count < 2 or not is_splittable(plan, source):
        return ()
    per_window = _seconds_per_window(plan, source)
    lead_in = _lead_in_seconds(plan, source, aligned=bool(keyframes))
    room = budget_seconds - PART_OVERHEAD_SECONDS - lead_in
    room = max(room, per_window)  # a window per part at least: nothing smaller would fit
    per_part = max(1, math.floor(room / per_window))
    most = min(MAX_PARTS, plan.frame_count)
    count = min(most, math.ceil(plan.frame_count / per_part))
    if count < 2:
        return ()
    while True:
        targets = [round(i * plan.frame_count / count) for i in range(1, count)]
        if keyframes:
            starts = _keyframe_starts(targets, plan, keyframes)
        else:
            starts = [(first, _unaligned_seek(first, plan, source)) for first in targets]
        parts = _ranges(starts, plan.frame_count)
        # Moving the boundaries to keyframes can grow a part past its share: one more part
        # until every part fits (or no more parts would help).
        fits = all(
            estimate_seconds(plan, source, part.frame_count) + (lead_in if part.first_frame else 0)
            <= budget_seconds
            for part in parts
        )
        if fits or count >= most:
            return parts
        count += 1


def _keyframe_starts(
    targets: list[int], plan: RenderPlan, keyframes: Sequence[float]
) -> list[tuple[int, float]]:
    """Each target boundary moved to the keyframe nearest its window's start; the part then
    begins with the first window that lies wholly after that keyframe."""
    interval = plan.sample_interval_seconds
    starts: list[tuple[int, float]] = []
    for target in targets:
        time = target * interval
        at = bisect.bisect_left(keyframes, time)
        near = [keyframes[i] for i in (at - 1, at) if 0 <= i < len(keyframes)]
        if not near:
            continue
        keyframe = min(near, key=lambda k: abs(k - time))
        first = math.ceil((keyframe + _SLACK) / interval - 1e-9)
        if 0 < first < plan.frame_count and (not starts or first > starts[-1][0]):
            starts.append((first, keyframe))
    return starts


def _unaligned_seek(first: int, plan: RenderPlan, source: SourceInfo) -> float:
    spacing = source.keyframe_interval_seconds or UNKNOWN_KEYFRAME_SPACING_SECONDS
    window_start = first * plan.sample_interval_seconds
    return max(0.0, window_start - UNALIGNED_LEAD_KEYFRAMES * spacing)


def _ranges(starts: list[tuple[int, float]], frame_count: int) -> tuple[PartRange, ...]:
    if not starts:
        return ()
    bounds = [(0, 0.0), *starts]
    ends = [first for first, _seek in starts] + [frame_count]
    return tuple(
        PartRange(first, end, seek) for (first, seek), end in zip(bounds, ends, strict=True)
    )


def part_budget_seconds(limit_seconds: float, vcpus: float = REFERENCE_VCPUS) -> float:
    """Reference-machine seconds a part may be estimated at, for an invocation that has
    `limit_seconds` and `vcpus`: a safe share of the limit, less on a smaller machine."""
    return limit_seconds * SAFE_SHARE * min(1.0, vcpus / REFERENCE_VCPUS)


def fanout_lease_seconds(lease_seconds: float, limit_seconds: float | None) -> float:
    """How long a fanned-out record's lease lasts after each write: a part may wait in the queue
    for a free function while the others run, so a whole function limit more than a render's."""
    return lease_seconds + max(0.0, limit_seconds or 0.0)
