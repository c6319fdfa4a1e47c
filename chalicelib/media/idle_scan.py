"""`skipIdle`: idle stretches found in the plan's sampled frames, tiny and grey, and left out.

Two ways, by what the length is asked as:

- `render_skipping_idle` (with `speed`: the kept frames are the plan's own, less the idle ones):
  the source is read once. Where ffmpeg reads and decodes it ("keyframes", "decode_all"), one
  ffmpeg decodes the plan's frames and splits each in two: `ANALYSIS_SIZE` grey on stdout, and the
  finished picture (picture chain, deflicker, the timestamp, whose source time is still frame ×
  interval) raw on a second pipe; this process reads both in step, decides each frame as it comes
  (`domain.idle.IdleFollower`) and writes the ones that stay to a second ffmpeg that encodes them.
  For "ranges" the keyframes are fetched once: scanned grey as they pass, kept on disk, and the
  ones that stay are rendered from there.
- `find_idle` (with `targetSeconds`: the active parts fill the length, so the render samples them
  more densely than the scan did): a first pass writes the grey frames only; the plan is made again
  without the idle ranges and rendered as usual, reading the source a second time.
"""

from __future__ import annotations

import os
import queue
import subprocess
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack, suppress
from dataclasses import replace
from pathlib import Path
from typing import IO

from chalicelib.domain.idle import ANALYSIS_SIZE, IdleFollower, Ranges, idle_flags, idle_ranges
from chalicelib.domain.plan import RenderPlan
from chalicelib.errors import RenderError
from chalicelib.media.ffmpeg import base_args, is_url, stderr_reason
from chalicelib.media.finishing import finishing_filters
from chalicelib.media.mp4index import VideoIndex
from chalicelib.media.picture import picture_filters
from chalicelib.media.ranges import ReadStats
from chalicelib.media.render import (
    POLL_SECONDS,
    RenderResult,
    _download,
    _keyframe_feed,
    _Progress,
    _reading,
    _Reporter,
    _run,
    _stop,
    _Watch,
    build_render_command,
    encoder_args,
    measured_result,
    tagged_for_output,
)

# The beat of each idle stretch that stays in: a third of a second of the timelapse.
BEAT_OUTPUT_SECONDS = 1 / 3
_GREY_BYTES = ANALYSIS_SIZE[0] * ANALYSIS_SIZE[1]
_GREY = f"scale={ANALYSIS_SIZE[0]}:{ANALYSIS_SIZE[1]}:flags=area,format=gray"
# Raw frames are written as they come: never duplicated or dropped to a constant rate (a
# `select`ed stream keeps its source timestamps, and rawvideo would otherwise fill the gaps).
_AS_THEY_COME = ["-fps_mode", "passthrough"]


def beat_frames(plan: RenderPlan) -> int:
    return max(1, round(BEAT_OUTPUT_SECONDS * plan.output_fps))


def find_idle(
    source: str,
    plan: RenderPlan,
    *,
    ffmpeg: str,
    work_dir: Path,
    should_stop: Callable[[], bool],
    deadline: float | None = None,
    index: VideoIndex | None = None,
) -> Ranges:
    """Source ranges to leave out of `plan`'s timelapse: idle stretches beyond a short beat."""
    work_dir.mkdir(parents=True, exist_ok=True)
    watch = _Watch(should_stop, deadline)
    if is_url(source) and plan.download_first:
        source = str(_download(source, work_dir / "source", watch))
    feed: Iterator[bytes] | None = None
    if plan.strategy == "ranges":
        feed, _stats = _keyframe_feed(source, plan, watch, index)
    greys = _grey_frames(source, plan, ffmpeg=ffmpeg, work_dir=work_dir, watch=watch, feed=feed)
    return idle_ranges(
        idle_flags(greys),
        plan.sample_interval_seconds,
        beat_frames(plan),
        plan.source_duration_seconds,
    )


def _grey_frames(
    source: str,
    plan: RenderPlan,
    *,
    ffmpeg: str,
    work_dir: Path,
    watch: _Watch,
    feed: Iterator[bytes] | None,
    on_progress: Callable[[int], None] = lambda _p: None,
) -> list[bytes]:
    """The plan's sampled frames at `ANALYSIS_SIZE`, grey; nothing encoded."""
    frames_path = work_dir / "idle-scan.gray"
    reading, picking = _reading(source, plan)
    command = [
        *base_args(ffmpeg), "-loglevel", "error", "-nostats", "-progress", "pipe:1",
        *reading, "-an", "-sn", "-dn", "-vf", ",".join([*picking, _GREY]), *_AS_THEY_COME,
        "-frames:v", str(plan.frame_count), "-f", "rawvideo", str(frames_path),
    ]  # fmt: skip
    _run(command, work_dir / "ffmpeg-idle.log", plan.frame_count, on_progress, watch, feed=feed)
    data = frames_path.read_bytes()
    frames_path.unlink()
    return [data[i : i + _GREY_BYTES] for i in range(0, len(data) - _GREY_BYTES + 1, _GREY_BYTES)]


def render_skipping_idle(
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
) -> tuple[RenderResult, RenderPlan]:
    """Render `plan` leaving out its idle stretches, with no second read of the source; the
    result, and the plan as rendered (its `dropped` ranges and frame count).

    "ranges": the kept keyframes are fetched once, scanned grey while they are written to disk,
    and the ones that stay are rendered from there (keyframes decode cheaply; fetching is what
    costs). Other strategies, where ffmpeg reads and decodes the source itself: one decode
    (`_render_in_one_decode`).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    watch = _Watch(should_stop, deadline)
    if is_url(source) and plan.download_first:
        source = str(_download(source, work_dir / "source", watch))
    if plan.strategy != "ranges":
        return _render_in_one_decode(
            source, output_path, plan, ffmpeg=ffmpeg, work_dir=work_dir,
            on_progress=on_progress, watch=watch,
        )  # fmt: skip
    feed, stats = _keyframe_feed(source, plan, watch, index)
    spool = _Spool(work_dir / "keyframes.annexb")
    # Progress: the scan is the first half, the render of the kept frames the second.
    greys = _grey_frames(
        source, plan, ffmpeg=ffmpeg, work_dir=work_dir, watch=watch, feed=spool.keeping(feed),
        on_progress=lambda percent: on_progress(percent // 2),
    )  # fmt: skip
    follower = IdleFollower(beat_frames(plan))
    kept = [number for number, grey in enumerate(greys) if follower.keep(grey)]
    rendered = _as_rendered(plan, follower, len(kept))
    command = build_render_command(source, output_path, rendered, ffmpeg=ffmpeg)
    log = work_dir / "ffmpeg-render.log"
    rendering = spool.replay(kept)
    try:
        frames = _run(
            command, log, len(kept), lambda percent: on_progress(50 + percent // 2), watch,
            feed=rendering,
        )  # fmt: skip
    finally:
        spool.remove()
    return _measured(output_path, frames, plan.output_fps, stats, on_progress), rendered


def _as_rendered(plan: RenderPlan, follower: IdleFollower, kept: int) -> RenderPlan:
    """`plan` as rendered: its frames less the idle ones, the ranges they stood for dropped
    (window-aligned, so `source_time_expression` stamps each kept frame with its own time)."""
    dropped = idle_ranges(
        follower.flags,
        plan.sample_interval_seconds,
        follower.beat_frames,
        plan.source_duration_seconds,
    )
    return replace(plan, dropped=dropped, frame_count=max(1, kept))


class _Spool:
    """The fetched keyframes, on disk in order as they pass to the scan, to be fed again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pieces: list[tuple[int, int]] = []

    def keeping(self, feed: Iterator[bytes]) -> Iterator[bytes]:
        try:
            with self.path.open("wb") as out:
                for piece in feed:
                    self._pieces.append((out.tell(), len(piece)))
                    out.write(piece)
                    yield piece
        finally:
            if isinstance(feed, Generator):
                feed.close()  # reads in flight let go of their connections now, whatever happened

    def replay(self, numbers: list[int]) -> Iterator[bytes]:
        with self.path.open("rb") as pieces:
            for number in numbers:
                offset, size = self._pieces[number]
                pieces.seek(offset)
                yield pieces.read(size)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _render_in_one_decode(
    source: str,
    output_path: Path,
    plan: RenderPlan,
    *,
    ffmpeg: str,
    work_dir: Path,
    on_progress: Callable[[int], None],
    watch: _Watch,
) -> tuple[RenderResult, RenderPlan]:
    """One ffmpeg decodes the plan's frames and splits each into grey and the finished picture;
    the kept pictures go on to an encoder."""
    follower = IdleFollower(beat_frames(plan))
    with ExitStack() as stack:
        pictures_out, pictures_in = os.pipe()
        pictures = stack.enter_context(os.fdopen(pictures_out, "rb", buffering=1 << 20))
        decode_log = stack.enter_context((work_dir / "ffmpeg-decode.log").open("w+b"))
        encode_log = stack.enter_context((work_dir / "ffmpeg-render.log").open("w+b"))
        try:
            decoder = subprocess.Popen(
                decode_command(source, plan, ffmpeg=ffmpeg, pictures_fd=pictures_in),
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=decode_log,
                pass_fds=(pictures_in,),
            )  # fmt: skip
        finally:
            os.close(pictures_in)  # the decoder's copy is the only writer: EOF when it ends
        stack.callback(_stop, decoder)
        encoder = subprocess.Popen(
            encode_command(output_path, plan, ffmpeg=ffmpeg),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=encode_log,
        )  # fmt: skip
        stack.callback(_stop, encoder)
        kept = _relay(
            decoder, pictures, encoder,
            follower=follower, plan=plan, watch=watch, on_progress=on_progress,
        )  # fmt: skip
        # The one that failed first speaks: a decoder stopped because the encoder had died was
        # terminated by us (a negative status), one that failed on its own exited positive.
        if decoder.returncode is not None and decoder.returncode > 0:
            _check_exit(decoder, decode_log, "decode")
        _check_exit(encoder, encode_log, "render")
        _check_exit(decoder, decode_log, "decode")
    rendered = _as_rendered(plan, follower, kept)
    return _measured(output_path, kept, plan.output_fps, None, on_progress), rendered


def decode_command(source: str, plan: RenderPlan, *, ffmpeg: str, pictures_fd: int) -> list[str]:
    """The plan's frames, each split into grey (stdout) and the finished picture (`pictures_fd`),
    both raw. The timestamp's source time is frame × interval: no frame is left out here."""
    reading, picking = _reading(source, plan)
    assert reading[-2] == "-map", reading
    stream, reading = reading[-1], reading[:-2]
    # Raw pictures lose their tags on the way: the encoder states them (`tagged_for_output`).
    finished = [*picture_filters(plan), *finishing_filters(plan), "format=yuv420p"]
    graph = (
        f"[{stream}]{','.join([*picking, 'split=2'])}[full][small];"
        f"[small]{_GREY}[grey];[full]{','.join(finished)}[picture]"
    )
    frames = ["-frames:v", str(plan.frame_count), *_AS_THEY_COME, "-f", "rawvideo"]
    return [
        *base_args(ffmpeg), "-loglevel", "error", "-nostats", *reading, "-filter_complex", graph,
        "-map", "[grey]", *frames, "pipe:1", "-map", "[picture]", *frames, f"pipe:{pictures_fd}",
    ]  # fmt: skip


def encode_command(output_path: Path, plan: RenderPlan, *, ffmpeg: str) -> list[str]:
    """The kept pictures, raw on stdin, encoded as every render encodes."""
    return [
        *base_args(ffmpeg), "-loglevel", "error", "-nostats", "-progress", "pipe:1",
        "-f", "rawvideo", "-pix_fmt", "yuv420p",
        "-video_size", f"{plan.output_width}x{plan.output_height}",
        "-framerate", str(plan.output_fps), "-i", "pipe:0",
        *encoder_args(plan, output_path, tagged_for_output([])),
    ]  # fmt: skip


def _relay(
    decoder: subprocess.Popen[bytes],
    pictures: IO[bytes],
    encoder: subprocess.Popen[bytes],
    *,
    follower: IdleFollower,
    plan: RenderPlan,
    watch: _Watch,
    on_progress: Callable[[int], None],
) -> int:
    """Read each frame's grey and picture in step, pass on the ones that stay; the count passed."""
    assert decoder.stdout is not None
    assert encoder.stdin is not None
    assert encoder.stdout is not None
    greys = _GreyReader(decoder.stdout)
    progress = _Progress(encoder.stdout)  # drains the encoder's -progress lines
    reporter = _Reporter(on_progress, plan.frame_count)
    picture_bytes = plan.output_width * plan.output_height * 3 // 2
    seen = kept = 0
    try:
        while picture := pictures.read(picture_bytes):
            if len(picture) < picture_bytes:
                break  # the decoder ended mid-frame; its exit status says why
            grey = greys.next(watch)
            if grey is None:
                break
            seen += 1
            if follower.keep(grey):
                encoder.stdin.write(picture)
                kept += 1
            watch.check()
            reporter.report(seen)
        encoder.stdin.close()
        # Both end on their own now: the decoder may still be exiting after its last frame.
        _wait_for(decoder, watch)
        _wait_for(encoder, watch)
    except BrokenPipeError:
        pass  # the encoder ended early; its exit status and log tell why
    finally:
        with suppress(BrokenPipeError):
            encoder.stdin.close()
        _stop(decoder)
        _stop(encoder)
        progress.join()
    return kept


def _wait_for(process: subprocess.Popen[bytes], watch: _Watch) -> None:
    while True:
        try:
            process.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            watch.check()
        else:
            return


class _GreyReader:
    """The decoder's grey frames, read on a thread so neither of its pipes ever blocks the other."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._frames: queue.Queue[bytes | None] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        try:
            while len(frame := stream.read(_GREY_BYTES)) == _GREY_BYTES:
                self._frames.put(frame)
        finally:
            self._frames.put(None)

    def next(self, watch: _Watch) -> bytes | None:
        while True:
            watch.check()
            with suppress(queue.Empty):
                return self._frames.get(timeout=POLL_SECONDS)


def _check_exit(process: subprocess.Popen[bytes], log: IO[bytes], what: str) -> None:
    if process.returncode not in (0, None):
        log.seek(0)
        stderr = log.read().decode("utf-8", "replace")
        raise RenderError(f"ffmpeg could not {what} this video: {stderr_reason(stderr)}")


def _measured(
    output_path: Path,
    frames: int,
    planned_fps: float,
    stats: ReadStats | None,
    on_progress: Callable[[int], None],
) -> RenderResult:
    result = measured_result(output_path, frames, planned_fps, stats)
    on_progress(100)
    return result
