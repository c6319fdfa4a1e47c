"""`skipIdle`'s first pass: the plan's sampled frames, tiny and grey, to find idle stretches.

The pass reads exactly what the render will read (same strategy, same kept frames), scaled to
`ANALYSIS_SIZE` grey before anything else, and writes them raw to a file; `domain.idle` decides
from those. It decodes the kept frames once more but encodes nothing, so it costs a fraction of
the render (measured in the README).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from chalicelib.domain.idle import ANALYSIS_SIZE, Ranges, idle_flags, idle_ranges
from chalicelib.domain.plan import RenderPlan
from chalicelib.media.ffmpeg import base_args, is_url
from chalicelib.media.mp4index import VideoIndex
from chalicelib.media.render import _download, _keyframe_feed, _reading, _run, _Watch

# The beat of each idle stretch that stays in: a third of a second of the timelapse.
BEAT_OUTPUT_SECONDS = 1 / 3


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
    frames_path = work_dir / "idle-scan.gray"
    reading, picking = _reading(source, plan)
    width, height = ANALYSIS_SIZE
    command = [
        *base_args(ffmpeg), "-loglevel", "error", "-nostats", "-progress", "pipe:1",
        *reading, "-an", "-sn", "-dn",
        "-vf", ",".join([*picking, f"scale={width}:{height}:flags=area", "format=gray"]),
        "-frames:v", str(plan.frame_count), "-f", "rawvideo", str(frames_path),
    ]  # fmt: skip
    feed: Iterator[bytes] | None = None
    if plan.strategy == "ranges":
        feed, _stats = _keyframe_feed(source, plan, watch, index)
    _run(command, work_dir / "ffmpeg-idle.log", plan.frame_count, lambda _p: None, watch, feed=feed)
    data = frames_path.read_bytes()
    size = width * height
    frames = [data[i : i + size] for i in range(0, len(data) - size + 1, size)]
    beat = max(1, round(BEAT_OUTPUT_SECONDS * plan.output_fps))
    return idle_ranges(
        idle_flags(frames), plan.sample_interval_seconds, beat, plan.source_duration_seconds
    )
