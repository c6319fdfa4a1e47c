"""The engine benchmark's PyAV row ("seek"): one seek and one decoded keyframe per kept sample.

Not a product strategy: PyAV is absent on Lambda and the planner never chose it once "ranges"
read the same pictures with fewer requests (`chalicelib/media/keyframe_fetch.py`). It stays here
so `make bench-engine` can still compare the two ways of reading only the kept keyframes.

For each sample time of the plan (a window's start), the demuxer seeks to the first keyframe at or
after it, the frame the "keyframes" path keeps too (MP4's index says where it lies, so over HTTP
that is one ranged read of that keyframe's bytes); the decoder
decodes that one picture (``skip_frame = NONKEY``), and the frame is scaled to the output size as
raw yuv420p. `render_seek` pipes these frames into the product's filter chain and encoder
settings; the rotation is applied there (PyAV ignores the display matrix).

Untrusted input: the demuxer is named and whitelisted, the protocols are limited to what the
source needs, the decoder refuses frames above ``max_pixels``, and every read has a timeout.
Checked against PyAV 18: ``format_whitelist``/``protocol_whitelist`` given in ``options`` are
honoured by the demuxer; ``max_pixels`` given there is silently ignored by the decoder, so it is
set on the codec context itself, where an oversized stream fails to open.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.error
from av.container import InputContainer
from av.video.stream import VideoStream

from chalicelib.domain.plan import RenderPlan
from chalicelib.errors import RenderError
from chalicelib.media.ffmpeg import (
    ALLOWED_DEMUXERS,
    LOCAL_PROTOCOLS,
    URL_PROTOCOLS,
    base_args,
    is_url,
    stderr_reason,
)
from chalicelib.media.finishing import finishing_filters
from chalicelib.media.picture import orientation_filters, picture_filters
from chalicelib.media.probe import probe
from chalicelib.media.render import RenderResult, encoder_args

# Bytes per HTTP range request. A seek starts a new request; without a bound ffmpeg asks for the
# rest of the file and the network (and S3's bill) carries far more than the keyframe before the
# connection is dropped: on the 1080p bench input, 2.1 MB per sample instead of 0.13 MB.
# 128 KiB holds a typical 1080p keyframe; a larger one costs one more request on the same
# connection (keep-alive).
HTTP_REQUEST_BYTES = 128 * 1024
OPEN_TIMEOUT_SECONDS = 30.0
READ_TIMEOUT_SECONDS = 30.0
# Keyframe packets tried after one seek before giving up on that sample (damaged pictures).
_TRIES_PER_SAMPLE = 3


def render_seek(source: str, output_path: Path, plan: RenderPlan, *, ffmpeg: str) -> RenderResult:
    """Render `plan`'s kept frames, read by PyAV, with the product's filters and encoder."""
    stored = (
        (plan.output_height, plan.output_width)
        if plan.rotation in (90, 270)
        else (plan.output_width, plan.output_height)
    )
    filters = [
        *orientation_filters(plan.rotation, plan.mirrored),
        *picture_filters(plan),
        "setsar=1",
        *finishing_filters(plan),
        f"setpts=N/{plan.output_fps}/TB",
    ]
    command = [
        *base_args(ffmpeg), "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-video_size", f"{stored[0]}x{stored[1]}",
        "-framerate", str(plan.output_fps), "-protocol_whitelist", "pipe", "-i", "pipe:0",
        "-map", "0:0", *encoder_args(plan, output_path, filters),
    ]  # fmt: skip
    frames = 0
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=log)
        assert process.stdin is not None
        try:
            for frame in sample_frames(source, plan):
                process.stdin.write(frame)
                frames += 1
        finally:
            process.stdin.close()
            process.wait()
        log.seek(0)
        stderr = log.read().decode("utf-8", "replace")
    if process.returncode != 0:
        raise RenderError(f"ffmpeg could not render this video: {stderr_reason(stderr)}")
    info = probe(str(output_path), ffmpeg=ffmpeg)
    return RenderResult(
        width=info.display_width,
        height=info.display_height,
        fps=info.fps,
        duration_seconds=info.duration_seconds,
        frame_count=min(frames, plan.frame_count),
        size_bytes=output_path.stat().st_size,
    )


def open_source(source: str, plan: RenderPlan) -> InputContainer:
    """Open `source` (local path or http(s) URL) with the hardened options."""
    options = {"format_whitelist": ALLOWED_DEMUXERS}
    if is_url(source):
        location = source
        options |= {
            "protocol_whitelist": URL_PROTOCOLS,
            "seekable": "1",
            "multiple_requests": "1",
            "request_size": str(HTTP_REQUEST_BYTES),
            "reconnect": "1",
            "reconnect_on_network_error": "1",
            "reconnect_delay_max": "4",
            "rw_timeout": str(int(READ_TIMEOUT_SECONDS * 1_000_000)),
        }
    else:
        # "file:" keeps a name like "x:y.mp4" from being read as protocol "x".
        location = "file:" + os.path.abspath(source)
        options["protocol_whitelist"] = LOCAL_PROTOCOLS
    try:
        return av.open(
            location,
            "r",
            format=plan.input_format,
            options=options,
            timeout=(OPEN_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
        )
    except av.error.FFmpegError as exc:
        raise RenderError(f"The source could not be opened: {_reason(exc)}") from exc


def sample_frames(source: str, plan: RenderPlan) -> Iterator[bytes]:
    """Yield `plan.frame_count` raw yuv420p frames, one per sample time, in the stored
    orientation (output sides swapped for a 90/270 rotation; the encoder turns them).

    A sample whose seek finds no picture repeats the previous one, so the output keeps the planned
    length; a source where no sample decodes raises RenderError.
    """
    width, height = plan.output_width, plan.output_height
    if plan.rotation in (90, 270):
        width, height = height, width
    with open_source(source, plan) as container:
        stream = _video_stream(container, plan)
        codec = stream.codec_context
        codec.options = {"max_pixels": str(plan.max_pixels)}
        codec.skip_frame = "NONKEY"
        # One picture per seek: frame threads would hold it back until more packets arrive.
        codec.thread_type = "SLICE"
        codec.thread_count = plan.threads
        time_base = stream.time_base or Fraction(1, 90_000)
        start = stream.start_time or 0
        previous: bytes | None = None
        previous_pts: int | None = None
        for seconds in plan.sample_times():
            target = start + int(Fraction(seconds) / time_base)
            picture, pts = _keyframe_at(container, stream, target, previous_pts)
            if picture is not None:
                scaled = picture.reformat(width, height, format="yuv420p", interpolation="BICUBIC")
                previous = _packed(scaled)
                previous_pts = pts
            if previous is not None:
                yield previous
        if previous is None:
            raise RenderError("No frame of this video could be decoded.")


def _video_stream(container: InputContainer, plan: RenderPlan) -> VideoStream:
    for stream in container.streams.video:
        if stream.index == plan.stream_index:
            return stream
    if container.streams.video:
        return container.streams.video[0]
    raise RenderError("This file has no video stream (it may be audio only).")


def _keyframe_at(
    container: InputContainer, stream: VideoStream, target: int, previous_pts: int | None
) -> tuple[av.VideoFrame | None, int | None]:
    """The first keyframe at or after `target` (stream time base), decoded, and its pts.

    (None, pts) when it is the keyframe decoded last time (the caller repeats its frame without
    decoding it again); (None, None) when no keyframe could be read.
    """
    # Forward first: the first keyframe at or after the window's start is the one the
    # "keyframes" path keeps (select keeps the first frame of each window), so both give the
    # same pictures. Past the last keyframe (the mov demuxer refuses that seek), take the one at
    # or before.
    failure: av.error.FFmpegError | None = None
    for backward in (False, True):
        try:
            container.seek(target, stream=stream, backward=backward, any_frame=False)
            found = _first_keyframe(container, stream, previous_pts)
        except av.error.FFmpegError as exc:
            failure = exc
            continue
        if found != (None, None):
            return found
    if failure is not None:
        raise RenderError(f"The source could not be read: {_reason(failure)}") from failure
    return None, None


def _first_keyframe(
    container: InputContainer, stream: VideoStream, previous_pts: int | None
) -> tuple[av.VideoFrame | None, int | None]:
    tries = 0
    for packet in container.demux(stream):
        if packet.size == 0 or not packet.is_keyframe:
            continue
        if packet.pts is not None and packet.pts == previous_pts:
            return None, packet.pts
        tries += 1
        try:
            frames = stream.codec_context.decode(packet)
        except av.error.InvalidDataError:
            frames = []
        if frames:
            return frames[0], packet.pts
        if tries >= _TRIES_PER_SAMPLE:
            break
    return None, None


def _packed(frame: av.VideoFrame) -> bytes:
    """The frame's planes without row padding, as ``-f rawvideo`` expects them (no numpy)."""
    out = bytearray()
    for plane in frame.planes:
        width, height, stride = plane.width, plane.height, plane.line_size
        data = memoryview(plane)
        if stride == width:
            out += data[: width * height]
        else:
            for row in range(height):
                out += data[row * stride : row * stride + width]
    return bytes(out)


def _reason(exc: av.error.FFmpegError) -> str:
    return str(exc.strerror or exc)[:200]
