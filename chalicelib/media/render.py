"""Rendering a planned timelapse with one ffmpeg process, and the poster from its output.

The process is watched from this thread: progress comes from ``-progress`` on stdout (a reader
thread), and every quarter second the caller's `should_stop` and the deadline are checked. Whatever
happens, ffmpeg is killed and reaped before this module returns or raises.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from chalicelib.domain.plan import RenderPlan
from chalicelib.errors import DeadlineExceeded, LapseError, RenderCancelled, RenderError
from chalicelib.media.ffmpeg import base_args, input_args, is_url, stderr_reason, stderr_tail
from chalicelib.media.finishing import finishing_filters
from chalicelib.media.keyframe_fetch import annexb_keyframes
from chalicelib.media.mp4index import IndexUnsupported, VideoIndex, read_index
from chalicelib.media.picture import (
    OUTPUT_COLOR_ARGS,
    TAG_BT709,
    deinterlacing,
    orientation_filters,
    picture_filters,
)
from chalicelib.media.ranges import FileRangeSource, ReadStats, open_range_source

logger = logging.getLogger(__name__)

POLL_SECONDS = 0.25
KILL_GRACE_SECONDS = 1.0
_DOWNLOAD_CHUNK = 4 * 1024 * 1024
POSTER_FILTER = (
    "scale=in_color_matrix=bt709:in_range=limited:out_color_matrix=bt601:out_range=full,"
    "format=yuvj420p"
)
_RAW_FORMATS = {"h264": "h264", "hevc": "hevc"}


@dataclass(frozen=True)
class RenderResult:
    """The output as measured from the file, not as planned."""

    width: int
    height: int
    fps: float
    duration_seconds: float
    frame_count: int
    size_bytes: int
    # What "ranges" read from the source (None for the strategies ffmpeg reads itself).
    source_bytes_read: int | None = None
    source_requests: int | None = None


def render_timelapse(
    source: str,
    output_path: Path,
    plan: RenderPlan,
    *,
    ffmpeg: str,
    work_dir: Path,
    on_progress: Callable[[int], None],
    should_stop: Callable[[], bool],
    deadline: float | None = None,
    index: VideoIndex | None = None,
    poster_path: Path | None = None,
) -> RenderResult:
    """Render `plan` from `source` (local path or http(s) URL) into `output_path` (MP4).

    "ranges" uses `index` (the source's MP4 index) when the caller has read it already.
    With `poster_path`, the same ffmpeg also writes the middle frame there as a JPEG, taken from
    the frames it encodes (a poster made afterwards decodes half the output again: ~0.4 s for
    300 1080p frames); `make_poster` makes it from the output if that frame never came.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    watch = _Watch(should_stop, deadline)
    if is_url(source) and plan.download_first:
        source = str(_download(source, work_dir / "source", watch))
    command = build_render_command(
        source, output_path, plan, ffmpeg=ffmpeg, poster_path=poster_path
    )
    feed: Iterator[bytes] | None = None
    stats: ReadStats | None = None
    if plan.strategy == "ranges":
        feed, stats = _keyframe_feed(source, plan, watch, index)
    if poster_path is not None:
        poster_path.unlink(missing_ok=True)  # only this render's frame counts
    log_path = work_dir / "ffmpeg-render.log"
    frames = _run(command, log_path, plan.frame_count, on_progress, watch, feed=feed)
    if stats is not None:
        logger.info(
            "source read by ranges",
            extra={"bytes": stats.bytes_read, "requests": stats.requests},
        )
    result = measured_result(output_path, frames, plan.output_fps, stats)
    if poster_path is not None and not _written(poster_path):
        make_poster(output_path, poster_path, ffmpeg=ffmpeg, at_seconds=result.duration_seconds / 2)
    on_progress(100)
    return result


def measured_result(
    output_path: Path, frames: int, planned_fps: float, stats: ReadStats | None = None
) -> RenderResult:
    """What an ffmpeg run that wrote `frames` frames to `output_path` produced, measured from
    the output's own index. Nothing written, or nothing decoded: RenderError."""
    if frames == 0:
        raise RenderError("No frame of this video could be decoded.")
    if not output_path.exists() or output_path.stat().st_size == 0:
        raise RenderError("ffmpeg produced no output for this video.")
    width, height, fps, duration = measure_output(output_path, planned_fps)
    return RenderResult(
        width=width,
        height=height,
        fps=fps,
        duration_seconds=duration,
        frame_count=frames,
        size_bytes=output_path.stat().st_size,
        source_bytes_read=stats.bytes_read if stats else None,
        source_requests=stats.requests if stats else None,
    )


def measure_output(path: Path, planned_fps: float) -> tuple[int, int, float, float]:
    """Width, height, frame rate and length of a rendered MP4, read from its own index (its
    pictures' times; no ffmpeg run: ~0.1 s less per job; the rate of a one-picture video is the
    planned one). Unreadable: RenderError."""
    try:
        index = read_index(FileRangeSource(str(path)))
    except (IndexUnsupported, LapseError) as exc:
        raise RenderError(f"The rendered video is unreadable: {exc}") from exc
    count, last = index.sample_count, index.last_picture_seconds
    if count < 1:
        raise RenderError("The rendered video holds no picture.")
    fps = round((count - 1) / last, 3) if count > 1 and last > 0 else float(planned_fps)
    return index.width, index.height, fps, count / fps


def _keyframe_feed(
    source: str, plan: RenderPlan, watch: _Watch, index: VideoIndex | None
) -> tuple[Iterator[bytes], ReadStats]:
    """The kept keyframes as Annex B, fetched by range; the reader's counts."""
    stop = threading.Event()
    reader = open_range_source(source, stop=stop.is_set)
    if index is None:
        try:
            index = read_index(reader)
        except IndexUnsupported as exc:
            raise RenderError(f"This video's index cannot be used here: {exc}") from exc
    return annexb_keyframes(reader, index, plan, watch.check, stop=stop), reader.stats


def build_render_command(
    source: str,
    output_path: Path,
    plan: RenderPlan,
    *,
    ffmpeg: str,
    loglevel: str = "error",
    poster_path: Path | None = None,
) -> list[str]:
    """The ffmpeg argument list for `plan`; the benchmark runs it as is.

    For "keyframes" and "decode_all" ffmpeg reads `source` itself and samples with ``select``.
    For "ranges" it reads the kept keyframes as raw H.264/HEVC on stdin and only turns them
    upright. Everything after the input is shared. With `poster_path` the finished frames are
    split: all to the encoder, the middle one to a JPEG.
    """
    reading, picking = _reading(source, plan)
    filters = tagged_for_output(
        [
            *picking,
            *picture_filters(plan),
            *finishing_filters(plan),
            # (rounded: setpts truncates, and in a time base of one output frame, which the gap
            # filling of `_reading` leaves, 121.99999 would be frame 121)
            f"setpts='round(N/({plan.output_fps}*TB))'",
            # Each frame lasts one output frame: setpts keeps the source frame's duration, and
            # from a VFR source (15 fps stretches) the rate conversion at the encoder doubled such
            # a frame and lost the last one kept, so the output was not the frames the graph picked.
            f"fps={plan.output_fps}",
        ]
    )
    opening = [
        *base_args(ffmpeg),
        "-loglevel",
        loglevel,
        "-nostats",
        "-progress",
        "pipe:1",
        "-stats_period",
        "0.5",
    ]
    if poster_path is None:
        return [*opening, *reading, *encoder_args(plan, output_path, filters)]
    *reading, _map, stream = reading  # the graph names the stream instead of -map
    # The middle frame as make_poster takes it from the output: at duration / 2.
    middle = min((plan.frame_count + 1) // 2, max(0, plan.frame_count - 1))
    graph = (
        f"[{stream}]{','.join(filters)},split[video][still];"
        f"[still]select='eq(n,{middle})',{POSTER_FILTER}[poster]"
    )
    return [
        *opening,
        *reading,
        "-filter_complex",
        graph,
        "-map",
        "[video]",
        *encoder_args(plan, output_path, []),
        "-map",
        "[poster]",
        *_poster_output(poster_path),
    ]


def _reading(source: str, plan: RenderPlan) -> tuple[list[str], list[str]]:
    """How ffmpeg reads `plan`'s input, and the filters that pick and turn the kept frames."""
    if plan.strategy == "ranges":
        reading = [
            "-threads", str(plan.threads), "-max_pixels", str(plan.max_pixels),
            "-f", _RAW_FORMATS[plan.codec], "-framerate", str(plan.output_fps),
            "-protocol_whitelist", "pipe", "-i", "pipe:0", "-map", "0:0",
        ]  # fmt: skip
        # Raw H.264/HEVC carries no display matrix and no timestamps: turn and time it here.
        return reading, orientation_filters(plan.rotation, plan.mirrored)
    keyframes_only = ["-skip_frame", "nokey", "-discard", "nokey"]
    # A part of a fanned-out render starts at its keyframe; frames before the seek point (the
    # demuxer may land earlier) are passed on, and the select expression keeps only the part's.
    seek = ["-noaccurate_seek", "-ss", f"{plan.seek_seconds:.6f}"] if plan.seek_seconds else []
    if plan.read_seconds is not None:
        seek += ["-t", f"{plan.read_seconds:.6f}"]
    reading = [
        *(keyframes_only if plan.strategy == "keyframes" else []),
        *seek,
        "-threads",
        str(plan.threads),
        *input_args(source, max_pixels=plan.max_pixels, input_format=plan.input_format),
        "-map",
        f"0:{plan.stream_index}",
    ]
    picking = [*deinterlacing(plan), f"select='{plan.select_expression}'"]
    if plan.fills_gaps:
        # Each kept frame timed by its window, then a window without a frame of its own (a
        # variable frame rate source's gap) repeats the frame before: the output keeps its
        # length instead of losing those windows (a jittered 30 fps source asked at speed 1.3
        # lost a quarter of its frames). setpts leaves the last frame almost no duration, and
        # `fps` would drop it: one clone after it keeps it (-frames:v caps the count). Windows
        # before the first frame (a part's first, a source starting late) repeat that frame.
        window = f"({plan.window_at('T')}-{plan.first_frame})"
        picking += [
            f"setpts='round({window}/({plan.output_fps}*TB))'",
            "tpad=stop=1:stop_mode=clone",
            f"fps={plan.output_fps}:start_time=0",
        ]
    return reading, picking


def tagged_for_output(filters: list[str]) -> list[str]:
    """`filters`, then what every output says of its pictures: square pixels, BT.709 limited
    range. The encoder tags the stream from the frames it is given (the -color_* options alone
    leave primaries and transfer unknown), so this ends every chain that reaches it; raw frames
    through a pipe (`idle_scan`) carry no tags and get them here again."""
    return [*filters, "setsar=1", TAG_BT709]


def encoder_args(plan: RenderPlan, output_path: Path, filters: list[str]) -> list[str]:
    """Output options shared by every strategy: H.264 yuv420p BT.709, CRF, +faststart, no audio."""
    return [
        "-an",
        "-sn",
        "-dn",
        "-map_metadata",
        "-1",
        *(["-vf", ",".join(filters)] if filters else []),
        "-frames:v",
        str(plan.frame_count),
        "-r",
        str(plan.output_fps),
        "-c:v",
        "libx264",
        "-preset",
        plan.preset,
        "-crf",
        str(plan.crf),
        *(["-x264-params", plan.x264_params] if plan.x264_params else []),
        "-pix_fmt",
        "yuv420p",
        *OUTPUT_COLOR_ARGS,
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        str(output_path),
    ]


def make_poster(video_path: Path, poster_path: Path, *, ffmpeg: str, at_seconds: float) -> None:
    """Write a JPEG of the frame at `at_seconds` of `video_path` (the rendered output)."""
    command = [
        *base_args(ffmpeg),
        "-loglevel",
        "error",
        "-ss",
        f"{max(0.0, at_seconds):.3f}",
        *input_args(str(video_path)),
        # The output is BT.709 limited range; a JPEG is read as BT.601 full range (JFIF).
        "-vf",
        POSTER_FILTER,
        *_poster_output(poster_path),
    ]
    poster_path.unlink(missing_ok=True)
    completed = subprocess.run(command, capture_output=True, timeout=60, check=False)
    if completed.returncode != 0 or not _written(poster_path):
        stderr = completed.stderr.decode("utf-8", "replace")
        logger.warning("poster failed: %s", stderr_tail(stderr))
        raise RenderError(f"The poster could not be made: {stderr_reason(stderr)}")


def _poster_output(poster_path: Path) -> list[str]:
    return ["-frames:v", "1", "-q:v", "3", "-update", "1", "-f", "image2", str(poster_path)]


def _written(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


class _Watch:
    """The caller's stop conditions, checked between chunks of work."""

    def __init__(self, should_stop: Callable[[], bool], deadline: float | None) -> None:
        self._should_stop = should_stop
        self._deadline = deadline

    def check(self) -> None:
        if self._should_stop():
            raise RenderCancelled("The render was stopped.")
        if self._deadline is not None and time.monotonic() >= self._deadline:
            raise DeadlineExceeded(
                "This video takes too long to render in the time available; "
                "try a shorter video or a lower resolution."
            )


class _Progress:
    """Frames ffmpeg reports through ``-progress``; read on a thread so stdout never fills."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.frames = 0
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            key, _, value = raw.decode("ascii", "replace").strip().partition("=")
            if key == "frame" and value.isdigit():
                self.frames = max(self.frames, int(value))

    def join(self) -> None:
        self._thread.join(timeout=5)


def _run(
    command: list[str],
    log_path: Path,
    planned_frames: int,
    on_progress: Callable[[int], None],
    watch: _Watch,
    *,
    feed: Iterator[bytes] | None = None,
) -> int:
    """Run ffmpeg to completion under `watch`, writing `feed` (raw frames) to its stdin if given;
    return the frames it wrote."""
    reporter = _Reporter(on_progress, planned_frames)
    with log_path.open("w+b") as log, _running(command, log, stdin=feed is not None) as process:
        assert process.stdout is not None
        progress = _Progress(process.stdout)
        try:
            if feed is not None:
                _feed(process, feed, watch, lambda: reporter.report(progress.frames))
            while process.poll() is None:
                watch.check()
                reporter.report(progress.frames)
                time.sleep(POLL_SECONDS)
        finally:
            if isinstance(feed, Generator):
                feed.close()  # stops the range reads now, not at garbage collection
            _stop(process)
            progress.join()
            process.stdout.close()
        if process.returncode != 0:
            log.seek(0)
            stderr = log.read().decode("utf-8", "replace")
            logger.warning("ffmpeg failed (%s): %s", process.returncode, stderr_tail(stderr))
            raise RenderError(f"ffmpeg could not render this video: {stderr_reason(stderr)}")
        return progress.frames


class _Reporter:
    """Percent of the planned frames written, reported when it rises; 100 is the caller's."""

    def __init__(self, on_progress: Callable[[int], None], planned_frames: int) -> None:
        self._on_progress = on_progress
        self._planned = max(1, planned_frames)
        self._reported = -1

    def report(self, frames: int) -> None:
        percent = min(99, frames * 100 // self._planned)
        if percent > self._reported:
            self._reported = percent
            self._on_progress(percent)


def _feed(
    process: subprocess.Popen[bytes],
    frames: Iterator[bytes],
    watch: _Watch,
    report: Callable[[], None],
) -> None:
    """Write `frames` to ffmpeg's stdin, checking `watch` between frames; close stdin after."""
    assert process.stdin is not None
    try:
        watch.check()
        for frame in frames:
            process.stdin.write(frame)
            watch.check()
            report()
    except BrokenPipeError:
        pass  # ffmpeg ended early; its exit status and log tell why
    finally:
        with suppress(BrokenPipeError):
            process.stdin.close()


@contextmanager
def _running(
    command: list[str], log: IO[bytes], *, stdin: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ffmpeg; on leaving, whatever the reason, make sure it is dead and reaped."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
    )
    try:
        yield process
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=KILL_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
    process.wait()


def _download(url: str, directory: Path, watch: _Watch) -> Path:
    """Copy a source whose container seeks poorly over HTTP (AVI) into the job's folder."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "source.bin"
    request = urllib.request.Request(url, headers={"User-Agent": "lapse"})  # noqa: S310 - http(s) only
    try:
        with urllib.request.urlopen(request, timeout=30) as response, target.open("wb") as out:  # noqa: S310
            while chunk := response.read(_DOWNLOAD_CHUNK):
                out.write(chunk)
                watch.check()
    except OSError as exc:
        raise RenderError(f"The source could not be downloaded: {exc}") from exc
    return target
