"""Probing a source with ffmpeg alone (imageio-ffmpeg ships no ffprobe).

One ffmpeg run opens the input through the hardened options, prints the container and stream
description on stderr (format, duration, size, frame rate, codec, colour, display matrix), and
copies the first real video stream's *keyframe* packets to ``framecrc`` on stdout: their
timestamps give the keyframe spacing. The mov demuxer honours ``-discard nokey`` and skips the
other samples' bytes altogether; other demuxers pass every packet, whose flags still tell
keyframes apart. The scan stops after a few dozen keyframes or a couple of minutes of video, so
probing stays cheap on long files and over HTTP.

Two more runs only when needed: a source that states no length is measured from all its packets
(`_measure_length`), and a stream with a display matrix has one frame decoded to learn whether the
matrix mirrors (`_orientation`).
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fractions import Fraction
from typing import Protocol

from chalicelib.domain.color import ColorInfo
from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import SourceInfo
from chalicelib.errors import InvalidMediaError, RenderError
from chalicelib.media.ffmpeg import base_args, input_args, is_url, stderr_reason

KEYFRAME_SCAN_SECONDS = 90
KEYFRAME_SCAN_MAX = 16
HEADER_REQUEST_BYTES = 256 * 1024
# Reading every packet of a source that states no length (copying, decoding nothing) runs at
# the speed of the read: allow it longer than the opening scan.
PACKET_SCAN_MIN_TIMEOUT_SECONDS = 300.0

NOT_A_VIDEO = (
    "This file is not a video lapse can read. "
    "Upload an MP4, MOV, MKV, WebM, AVI or MPEG-TS (.mts, .m2ts, .ts) video."
)
DAMAGED = "This video cannot be read; it may be damaged or incomplete."
NO_VIDEO = "This file has no video stream (it may be audio only)."
CUT_SHORT = (
    "This video is cut short: its index names pictures that the file does not hold, so the "
    "file or its upload is incomplete. Upload the whole file."
)
# The mov demuxer (MP4, MOV, 3GP) trusts its index; the last keyframe it names must be readable.
_INDEXED_FORMAT = "mov,"
TAIL_SECONDS = 1.0

_INPUT = re.compile(r"^Input #0, (?P<format>.+?), from ", re.MULTILINE)
_DURATION = re.compile(r"Duration: (?:(?P<h>\d+):(?P<m>\d+):(?P<s>[\d.]+)|N/A)")
_BITRATE = re.compile(r"Duration: [^\n]*?, bitrate: (?P<kbps>\d+) kb/s")
_STREAM = re.compile(r"^\s*Stream #0:(?P<index>\d+)\S*: (?P<kind>\w+): (?P<rest>.*)$")
_CODEC = re.compile(r"^(?P<codec>[\w-]+)")
_SIZE = re.compile(r", (?P<w>\d{1,6})x(?P<h>\d{1,6})(?=[ ,\[]|$)")
_FPS = re.compile(r", (?P<v>[\d.]+)(?P<k>k?) (?:fps|tbr)")
_ROTATION = re.compile(r"rotation of (?P<deg>-?[\d.]+) degrees", re.IGNORECASE)
# "yuv420p10le(tv, bt2020nc/bt2020/arib-std-b67, progressive), 3840x2160": the pixel format and
# its colour properties (one name when matrix, primaries and transfer agree) before the size.
# The field order may hold parentheses of its own: "top coded first (swapped)".
_PIXELS = re.compile(
    r", (?P<pix>[a-z][a-z0-9_]*)(?:\((?P<props>(?:[^()]|\([^()]*\))*)\))?, \d{1,6}x\d{1,6}"
)
# ffmpeg's names for the field order → the order the fields are shown in.
_FIELD_ORDERS = {
    "progressive": "progressive",
    "top first": "tff",
    "bottom first": "bff",
    "top coded first (swapped)": "bff",
    "bottom coded first (swapped)": "tff",
}
# "[SAR 32:27 DAR 16:9]"; a container's own aspect (MP4 pasp) follows the codec's when they
# differ, and is the one ffmpeg shows.
_SAR = re.compile(r"SAR (?P<num>\d+):(?P<den>\d+) DAR")
_DOVI = re.compile(
    r"DOVI configuration record: .*?profile: (?P<profile>\d+).*?compatibility id: (?P<compat>\d+)"
)
_DEBUG_FILTER = re.compile(r"^Filter '(?P<name>transpose|hflip|vflip|rotate)' formats:", re.M)
_TRANSPOSE_DIR = re.compile(r"Setting 'dir' to value '(?P<dir>\w+)'")
# What the ffmpeg CLI inserts to show a display matrix → (clockwise rotation, mirrored), the
# mirror taken after the rotation.
_AUTOROTATE: dict[str, tuple[int, bool]] = {
    "hflip": (0, True),
    "vflip": (180, True),
    "hflip,vflip": (180, False),
    "transpose=clock": (90, False),
    "transpose=cclock": (270, False),
    "transpose=clock_flip": (270, True),
    "transpose=cclock_flip": (90, True),
}
_TIME_BASE = re.compile(r"^#tb 0: (?P<num>\d+)/(?P<den>\d+)")
_PACKET = re.compile(
    r"^0,\s*-?\d+,\s*(?P<pts>-?\d+),\s*(?P<duration>\d+),\s*\d+,\s*0x[0-9a-f]+(?P<flags>.*)$"
)
_FLAGS = re.compile(r"F=0x(?P<flags>[0-9A-Fa-f]+)")

_DAMAGE_SIGNS = ("moov atom not found", "End of file", "EBML header parsing failed", "truncated")
_REFUSAL_SIGNS = (
    "not on whitelist",
    "Invalid data found",
    "Unknown input format",
    "Invalid argument",
)


# A stated rate this high is a millisecond time base (WebM), not frames per second.
_UNSTATED_RATE = 1000.0


class _LineReader(Protocol):
    stopped_early: bool

    def read(self, line: str) -> bool: ...


@dataclass
class _VideoStream:
    index: int
    codec: str
    width: int
    height: int
    fps: float
    rotation: int
    has_matrix: bool
    color: ColorInfo
    field_order: str = ""
    sample_aspect: tuple[int, int] = (1, 1)


@dataclass
class _KeyframeScan:
    time_base: Fraction = Fraction(1, 1)
    times: list[float] = field(default_factory=list)
    stopped_early: bool = False

    def read(self, line: str) -> bool:
        """Record a keyframe from one framecrc line; True once enough keyframes are seen."""
        if match := _TIME_BASE.match(line):
            self.time_base = Fraction(int(match["num"]), int(match["den"]))
            return False
        match = _PACKET.match(line)
        if match is None or not _is_keyframe(match["flags"]):
            return False
        self.times.append(float(int(match["pts"]) * self.time_base))
        return len(self.times) >= KEYFRAME_SCAN_MAX


@dataclass
class _PacketSpan:
    """First and last presentation time over every packet of the stream (framecrc lines)."""

    stopped_early: bool = False
    time_base: Fraction = Fraction(1, 1)
    start: int | None = None
    end: int | None = None
    count: int = 0

    def read(self, line: str) -> bool:
        if match := _TIME_BASE.match(line):
            self.time_base = Fraction(int(match["num"]), int(match["den"]))
            return False
        match = _PACKET.match(line)
        if match is None:
            return False
        pts, duration = int(match["pts"]), int(match["duration"])
        self.start = pts if self.start is None else min(self.start, pts)
        self.end = pts + duration if self.end is None else max(self.end, pts + duration)
        self.count += 1
        return False

    @property
    def seconds(self) -> float | None:
        if self.start is None or self.end is None or self.end <= self.start:
            return None
        return float((self.end - self.start) * self.time_base)


def probe(
    source: str,
    *,
    ffmpeg: str,
    timeout_seconds: float = 60.0,
    max_pixels: int | None = None,
    scan_keyframes: bool = True,
) -> SourceInfo:
    """Describe `source` (local path or http(s) URL); raise InvalidMediaError if not a video.

    `scan_keyframes=False` when the caller knows the keyframes from the container's index
    (`media.mp4index`, which also checks that the file holds every sample): ffmpeg then reads
    only the header, and the keyframe fields are left for the caller to fill.
    """
    window = ["-discard", "nokey", "-t", str(KEYFRAME_SCAN_SECONDS)]
    if not scan_keyframes:
        # Header only: closed 256 KiB requests, or ffmpeg's open-ended ones carry ~10 MB of
        # the file before it hangs up (measured on a 280 MB 1080p MP4: 11.8 MB -> 1.9 MB).
        window = ["-request_size", str(HEADER_REQUEST_BYTES)] if is_url(source) else []
    command = [
        *base_args(ffmpeg),
        *window,
        *input_args(source, max_pixels=max_pixels),
        "-map",
        "0:V:0?",
        "-c",
        "copy",
        *([] if scan_keyframes else ["-frames:v", "0"]),
        "-f",
        "framecrc",
        "pipe:1",
    ]
    scan = _KeyframeScan()
    stderr = _run_scan(command, timeout_seconds, scan)
    info, has_matrix = _describe(source, stderr, scan)
    if info.duration_seconds <= 0:
        seconds, fps = _measure_length(source, info, ffmpeg=ffmpeg, timeout_seconds=timeout_seconds)
        interval, count = _keyframe_spacing(scan, seconds)
        info = replace(
            info,
            duration_seconds=seconds,
            fps=fps,
            keyframe_interval_seconds=interval,
            keyframe_count=count,
        )
    if has_matrix:
        rotation, mirrored = _orientation(
            source, info, ffmpeg=ffmpeg, timeout=timeout_seconds, max_pixels=max_pixels
        )
        info = replace(info, rotation=rotation, mirrored=mirrored)
    if scan_keyframes and info.format_name.startswith(_INDEXED_FORMAT):
        _check_tail(source, info, ffmpeg=ffmpeg, timeout_seconds=timeout_seconds)
    return info


def _check_tail(source: str, info: SourceInfo, *, ffmpeg: str, timeout_seconds: float) -> None:
    """Refuse an MP4/MOV whose end is missing.

    With the index ("moov") at the front, a file cut short still opens and states its full
    length, and would render only the part that is there. Seeking to the last second and copying
    the keyframe there costs one ranged read; no packet means the bytes the index names are gone.
    """
    command = [
        *base_args(ffmpeg),
        "-discard",
        "nokey",
        "-ss",
        f"{max(0.0, info.duration_seconds - TAIL_SECONDS):.3f}",
        *input_args(source),
        "-map",
        f"0:{info.stream_index}",
        "-c",
        "copy",
        "-frames:v",
        "1",
        "-f",
        "framecrc",
        "pipe:1",
    ]
    tail = _KeyframeScan()
    _run_scan(command, timeout_seconds, tail)
    if not tail.times:
        raise InvalidMediaError(CUT_SHORT)


def _measure_length(
    source: str, info: SourceInfo, *, ffmpeg: str, timeout_seconds: float
) -> tuple[float, float]:
    """The length of a source whose container states none, from its packets' timestamps.

    Browser recordings (MediaRecorder WebM) and live-muxed MKV carry neither a duration nor cues;
    they are complete all the same. One pass copies every packet of the video stream to
    ``framecrc`` (nothing is decoded) and the span of their timestamps is the length; the mean
    frame rate comes with it (such files state a 1k time base, not a rate).
    """
    command = [
        *base_args(ffmpeg),
        *input_args(source, input_format=info.format_name.split(",")[0]),
        "-map",
        f"0:{info.stream_index}",
        "-c",
        "copy",
        "-f",
        "framecrc",
        "pipe:1",
    ]
    span = _PacketSpan()
    _run_scan(command, max(timeout_seconds, PACKET_SCAN_MIN_TIMEOUT_SECONDS), span)
    seconds = span.seconds
    if seconds is None:
        raise InvalidMediaError(DAMAGED)
    fps = info.fps if 0 < info.fps < _UNSTATED_RATE else span.count / seconds
    return seconds, fps


def _run_scan(command: list[str], timeout_seconds: float, scan: _LineReader) -> str:
    """Run `command`, feeding each stdout line to `scan` until it says enough; return stderr."""
    timed_out = threading.Event()
    with tempfile.TemporaryFile() as err:
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL
        )

        def on_timeout() -> None:
            timed_out.set()
            process.kill()

        timer = threading.Timer(timeout_seconds, on_timeout)
        timer.start()
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                if scan.read(raw.decode("ascii", "replace")):
                    scan.stopped_early = True
                    process.kill()
                    break
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
            process.wait()
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
    if timed_out.is_set():
        raise RenderError(f"Reading the video took longer than {timeout_seconds:.0f} seconds.")
    return stderr


def _is_keyframe(flags_text: str) -> bool:
    """framecrc prints ``F=0x..`` only for packets whose flags are not just "key"."""
    flags = _FLAGS.search(flags_text)
    return flags is None or bool(int(flags["flags"], 16) & 1)


def _describe(source: str, stderr: str, scan: _KeyframeScan) -> tuple[SourceInfo, bool]:
    """What the opening scan's log says, and whether the stream has a display matrix."""
    input_match = _INPUT.search(stderr)
    if input_match is None:
        raise _open_failure(stderr)
    video = _first_video_stream(stderr)
    if video is None:
        raise InvalidMediaError(NO_VIDEO)
    # No stated length (MediaRecorder WebM): 0 until `_measure_length` reads it from the packets.
    duration = _duration(stderr) or 0.0
    interval, count = _keyframe_spacing(scan, duration)
    reason = video.color.unreadable_reason
    if reason is not None:
        raise InvalidMediaError(reason)
    info = SourceInfo(
        width=video.width,
        height=video.height,
        rotation=video.rotation,
        fps=video.fps,
        color=video.color,
        duration_seconds=duration,
        codec=video.codec,
        format_name=input_match["format"],
        size_bytes=None if is_url(source) else os.path.getsize(source),
        keyframe_interval_seconds=interval,
        keyframe_count=count,
        stream_index=video.index,
        bitrate_bps=_bitrate(stderr),
        recorded_at=recorded_at(stderr),
        field_order=video.field_order,
        sample_aspect=video.sample_aspect,
    )
    return info, video.has_matrix


def _orientation(
    source: str, info: SourceInfo, *, ffmpeg: str, timeout: float, max_pixels: int | None
) -> tuple[int, bool]:
    """Clockwise rotation and mirroring of a display matrix, as the ffmpeg CLI shows it.

    ffmpeg's stream summary states only an angle: a mirrored matrix (front cameras) reads as a
    rotation of 180 or as a plain 90. Decoding one frame with the debug log names the filters
    the CLI inserts to show the picture upright, which say both. The renders apply the same.
    """
    command = [
        *base_args(ffmpeg),
        "-loglevel",
        "debug",
        # It decodes a frame: never one larger than the limit (the plan refuses those after).
        *input_args(
            source,
            max_pixels=max_pixels or Limits().max_pixels,
            input_format=info.format_name.split(",")[0],
        ),
        "-map",
        f"0:{info.stream_index}",
        "-frames:v",
        "1",
        "-f",
        "null",
        "-",
    ]
    try:
        completed = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return info.rotation, False
    log = completed.stderr.decode("utf-8", "replace")
    names = sorted({m["name"] for m in _DEBUG_FILTER.finditer(log)})
    if completed.returncode != 0 or not names:
        # No frame went through (a damaged one, or one beyond the pixel limit): no filters were
        # inserted, so keep what the summary says.
        return info.rotation, False
    if "transpose" in names:
        direction = _TRANSPOSE_DIR.search(log)
        names = [f"transpose={direction['dir'] if direction else ''}"]
    return _AUTOROTATE.get(",".join(names), (info.rotation, False))


def _open_failure(stderr: str) -> Exception:
    reason = stderr_reason(stderr)
    if "misdetection possible" in stderr:  # guessed from the name alone: not a video at all
        return InvalidMediaError(NOT_A_VIDEO)
    if any(sign in stderr for sign in _DAMAGE_SIGNS):
        return InvalidMediaError(DAMAGED)
    if any(sign in stderr for sign in _REFUSAL_SIGNS):
        return InvalidMediaError(NOT_A_VIDEO)
    if "No such file" in stderr:
        return RenderError(f"The source could not be opened: {reason}")
    if "Server returned" in stderr or "HTTP error" in stderr:
        return RenderError(f"The source could not be downloaded: {reason}")
    return InvalidMediaError(f"{NOT_A_VIDEO} ({reason})")


def _first_video_stream(stderr: str) -> _VideoStream | None:
    lines = stderr.splitlines()
    for number, line in enumerate(lines):
        match = _STREAM.match(line)
        if match is None or match["kind"] != "Video" or "(attached pic)" in line:
            continue
        rest = match["rest"]
        size = _SIZE.search(rest)
        codec = _CODEC.match(rest)
        if size is None or codec is None:
            continue
        return _VideoStream(
            index=int(match["index"]),
            codec=codec["codec"],
            width=int(size["w"]),
            height=int(size["h"]),
            fps=_fps(rest),
            rotation=_rotation(lines[number + 1 :]),
            has_matrix=_stream_side_data(lines[number + 1 :], _ROTATION) is not None,
            color=_color(rest, lines[number + 1 :]),
            field_order=_field_order(rest),
            sample_aspect=_sample_aspect(rest),
        )
    return None


def _field_order(rest: str) -> str:
    pixels = _PIXELS.search(rest)
    props = (pixels["props"] or "").split(", ") if pixels else []
    return next((_FIELD_ORDERS[p] for p in props if p in _FIELD_ORDERS), "")


def _sample_aspect(rest: str) -> tuple[int, int]:
    """The last stated sample aspect ratio (1:1 when none or unknown, 0:1)."""
    stated = [(int(m["num"]), int(m["den"])) for m in _SAR.finditer(rest)]
    num, den = stated[-1] if stated else (1, 1)
    return (num, den) if num > 0 and den > 0 else (1, 1)


def _stream_side_data(following: list[str], pattern: re.Pattern[str]) -> re.Match[str] | None:
    """The first match of `pattern` in the lines describing this stream (up to the next one)."""
    for line in following:
        if _STREAM.match(line) or line.startswith(("Output #", "Stream mapping")):
            break
        if match := pattern.search(line):
            return match
    return None


def _color(rest: str, following: list[str]) -> ColorInfo:
    pixels = _PIXELS.search(rest)
    if pixels is None:
        return ColorInfo()
    range_, matrix, primaries, transfer = "", "", "", ""
    for prop in (pixels["props"] or "").split(", "):
        if prop in ("tv", "pc"):
            range_ = prop
        elif "/" in prop:
            matrix, primaries, transfer = (p if p != "unknown" else "" for p in prop.split("/"))
        elif prop and prop not in _FIELD_ORDERS and prop != "unknown":
            matrix = primaries = transfer = prop
    dovi = _stream_side_data(following, _DOVI)
    return ColorInfo(
        pixel_format=pixels["pix"],
        matrix=matrix,
        primaries=primaries,
        transfer=transfer,
        range=range_,
        dovi_profile=int(dovi["profile"]) if dovi else None,
        dovi_compatibility=int(dovi["compat"]) if dovi else None,
    )


def _fps(rest: str) -> float:
    match = _FPS.search(rest)
    if match is None:
        return 0.0
    value = float(match["v"])
    return value * 1000 if match["k"] else value


def _rotation(following: list[str]) -> int:
    """Clockwise degrees from the display matrix (which ffmpeg states counter-clockwise)."""
    match = _stream_side_data(following, _ROTATION)
    return round(-float(match["deg"]) / 90) * 90 % 360 if match else 0


_CREATION = re.compile(
    r"^\s*(?P<tag>com\.apple\.quicktime\.creationdate|creation_time)\s*: (?P<value>\S+)", re.M
)
# Cameras without a clock write 1904 or 1970 (the formats' zero): no creation time at all.
_EARLIEST_PLAUSIBLE_YEAR = 1990


def recorded_at(stderr: str) -> float | None:
    """When recording began, as seconds since the epoch in the recording's local time: Apple's
    creationdate carries the local offset; creation_time is UTC (all a file may say)."""
    found = {m["tag"]: m["value"] for m in reversed(list(_CREATION.finditer(stderr)))}
    for tag in ("com.apple.quicktime.creationdate", "creation_time"):
        moment = _moment(found.get(tag))
        if moment is not None:
            offset = moment.utcoffset()
            return moment.timestamp() + (offset.total_seconds() if offset else 0.0)
    return None


def _moment(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.year < _EARLIEST_PLAUSIBLE_YEAR:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _duration(stderr: str) -> float | None:
    match = _DURATION.search(stderr)
    if match is None or match["h"] is None:
        return None
    return int(match["h"]) * 3600 + int(match["m"]) * 60 + float(match["s"])


def _bitrate(stderr: str) -> int | None:
    """The container's overall bit rate (ffmpeg derives it from the size, a URL's too)."""
    match = _BITRATE.search(stderr)
    return int(match["kbps"]) * 1000 if match else None


def _keyframe_spacing(scan: _KeyframeScan, duration: float) -> tuple[float | None, int | None]:
    """The largest gap between keyframes seen, counting the unscanned tail of the window as one."""
    if not scan.times:
        return None, 0
    times = sorted(scan.times)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    if not scan.stopped_early:
        window_end = min(duration, float(KEYFRAME_SCAN_SECONDS))
        gaps.append(window_end - times[-1])
    largest = max(gaps) if gaps else duration
    return (largest if largest > 0 else None), len(times)
