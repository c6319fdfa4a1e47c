"""Benchmark: a long decode-all render on one worker against the same render fanned out (issue 14).

    python -m bench.fanout                 # 6-min 1080p60 source (cached under build/bench/)
    python -m bench.fanout --quick         # 2-min source
    python -m bench.fanout --source F.mp4 --target-seconds 60 --limit 120

The source is 1080p60 H.264 with a keyframe every 250 frames (OBS's spacing), a testsrc2 minute
looped with ``-c copy``; the timelapse samples every 2/3 s (the ratio of a 20-minute recording made
into a 60-second timelapse), so every frame is decoded. Both runs go through the worker's Renderer
(adapters/media.py) from the local file:

- one worker: the whole render, then the poster;
- fanned out: the parts `split_render` cuts for a function whose limit is `--limit` seconds (the
  plan's estimate against a third of it, keyframes from the MP4 index), each rendered alone, one
  after the other, so each has the machine as a function has its own vCPUs; then the join
  (concat, stream copy) and the poster.

Measured: wall time and CPU time (ffmpeg's, from the children's rusage) of each. The critical path
on N functions is the slowest part plus the join (both measured); the total CPU is what the parts
and the join cost together against the one worker. Extrapolated for a 1-hour 1080p60 and a
1-hour 4K HEVC recording (60-s timelapses): the domain's estimate scaled by the ratio this run
measured (measured / estimated seconds of the one-worker render), parts as `split_render` cuts
them for Lambda's 900-s limit, and GB-seconds at the processor's 4096 MB.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.render import CACHE, FFMPEG, _ffmpeg
from chalicelib.adapters.media import FfmpegRenderer
from chalicelib.domain.fanout import SAFE_SHARE, estimate_seconds, part_plan, split_render
from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import RenderPlan, SourceInfo, plan_timelapse
from chalicelib.services.ports import Described

LAMBDA_LIMIT_SECONDS = 900.0
LAMBDA_MARGIN_SECONDS = 20.0
PROCESSOR_GB = 4.0
GOP = 250


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _timed(action) -> tuple[object, Timing]:  # type: ignore[no-untyped-def]
    cpu, started = _children_cpu(), time.monotonic()
    result = action()
    return result, Timing(time.monotonic() - started, _children_cpu() - cpu)


def generate(minutes: float) -> Path:
    """1080p60, a keyframe every 250 frames: one testsrc2 minute looped to `minutes`."""
    target = CACHE / f"fanout-1080p60-{minutes:g}min.mp4"
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    segment = CACHE / "fanout-1080p60-segment.mp4"
    if not segment.exists():
        print("generating a 1080p60 minute ...", file=sys.stderr, flush=True)
        partial = segment.with_suffix(".partial.mp4")
        _ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=60", "-t", "60",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", str(GOP), "-keyint_min", str(GOP),
            "-sc_threshold", "0", "-pix_fmt", "yuv420p", str(partial),
        )  # fmt: skip
        partial.replace(segment)
    partial = target.with_suffix(".partial.mp4")
    _ffmpeg(
        "-stream_loop", "-1", "-i", str(segment), "-t", f"{minutes * 60}", "-c", "copy",
        "-movflags", "+faststart", str(partial),
    )  # fmt: skip
    partial.replace(target)
    return target


def _run_whole(
    media: FfmpegRenderer, source: str, plan: RenderPlan, described: Described, folder: Path
) -> Timing:
    def render() -> None:
        video = folder / "whole.mp4"
        media.render(
            source, video, plan, described,
            work_dir=folder / "whole", on_progress=lambda _p: None,
            should_stop=lambda: False, deadline=None,
        )  # fmt: skip
        media.poster(video, folder / "whole.jpg", at_seconds=plan.expected_duration_seconds / 2)

    return _timed(render)[1]


def _run_parts(
    media: FfmpegRenderer,
    source: str,
    plan: RenderPlan,
    described: Described,
    budget: float,
    folder: Path,
) -> tuple[list[Timing], Timing, int]:
    parts = split_render(plan, described.info, budget_seconds=budget, keyframes=described.keyframes)
    if not parts:
        raise SystemExit(f"the render fits a {budget:.0f}-s budget: nothing to fan out")
    segments = folder / "segments"
    segments.mkdir()
    timings = []
    for number, part in enumerate(parts):
        segment = segments / f"part-{number:04d}.mp4"

        def render(segment: Path = segment, part_range=part) -> None:  # type: ignore[no-untyped-def]
            media.render(
                source, segment, part_plan(plan, part_range), described,
                work_dir=folder / f"work-{segment.stem}", on_progress=lambda _p: None,
                should_stop=lambda: False, deadline=None,
            )  # fmt: skip

        timings.append(_timed(render)[1])
        print(
            f"  part {number + 1}/{len(parts)}: {part.frame_count} frames, "
            f"{timings[-1].wall:.1f} s wall, {timings[-1].cpu:.1f} s CPU",
            file=sys.stderr,
            flush=True,
        )
        for poster in segments.glob("*-poster.jpg"):
            poster.unlink()  # a render's own poster: the join makes the timelapse's

    def join() -> int:
        video = folder / "joined.mp4"
        result = media.join(
            sorted(segments.glob("part-*.mp4")),
            video,
            durations=[p.frame_count / plan.output_fps for p in parts],
            should_stop=lambda: False,
            deadline=None,
        )
        media.poster(video, folder / "joined.jpg", at_seconds=result.duration_seconds / 2)
        return result.frame_count

    frames, joined = _timed(join)
    return timings, joined, int(frames)  # type: ignore[call-overload]


def _extrapolate(
    name: str, source: SourceInfo, target: float, scale: float, join_per_frame: float
) -> str:
    """One row for a recording not run here: the domain's estimate times the measured scale."""
    plan = plan_timelapse(source, target, Limits())
    budget = (LAMBDA_LIMIT_SECONDS - LAMBDA_MARGIN_SECONDS) * SAFE_SHARE
    whole = estimate_seconds(plan, source) * scale
    parts = split_render(plan, source, budget_seconds=budget)  # as the product cuts them
    slowest = max(estimate_seconds(plan, source, p.frame_count) for p in parts) * scale
    join = join_per_frame * plan.frame_count
    cpu_total = sum(estimate_seconds(plan, source, p.frame_count) for p in parts) * scale + join
    gb_seconds = cpu_total * PROCESSOR_GB
    fits = "no (> 900 s)" if whole > LAMBDA_LIMIT_SECONDS else "yes"
    return (
        f"| {name} → {target:g} s (extrapolated) | {whole:.0f} s ({fits}) | {len(parts)} | "
        f"{slowest:.0f} + {join:.1f} = **{slowest + join:.0f} s** | {cpu_total:.0f} s "
        f"({gb_seconds:,.0f} GB-s) |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--source", type=Path)
    parser.add_argument("--target-seconds", type=float)
    parser.add_argument("--limit", type=float, default=120.0, help="function limit (seconds)")
    args = parser.parse_args()
    minutes = 2.0 if args.quick else 6.0
    path = args.source or generate(minutes)
    media = FfmpegRenderer(FFMPEG)
    described = media.describe(str(path))
    info = described.info
    target = args.target_seconds or info.duration_seconds / 20  # one frame per 2/3 s at 30 fps
    plan = plan_timelapse(info, target, Limits(), indexed=described.indexed)
    if plan.strategy != "decode_all":
        raise SystemExit(f"the plan is {plan.strategy}, not decode_all")
    budget = (args.limit - min(20.0, args.limit / 10)) * SAFE_SHARE
    load_before = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="lapse-bench-fanout-"))
    try:
        print(f"one worker: {path.name}, {plan.frame_count} frames ...", file=sys.stderr)
        whole = _run_whole(media, str(path), plan, described, folder)
        print(f"  {whole.wall:.1f} s wall, {whole.cpu:.1f} s CPU", file=sys.stderr)
        print(f"fanned out (limit {args.limit:g} s, budget {budget:.1f} s) ...", file=sys.stderr)
        parts, join, frames = _run_parts(media, str(path), plan, described, budget, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    load_after = os.getloadavg()
    if frames != plan.frame_count:
        raise SystemExit(f"the join holds {frames} frames, {plan.frame_count} planned")
    slowest = max(parts, key=lambda t: t.wall)
    critical = slowest.wall + join.wall
    cpu_total = sum(t.cpu for t in parts) + join.cpu
    estimated = estimate_seconds(plan, info)
    scale = whole.wall / estimated
    print(
        f"\nload average {load_before[0]:.1f} before, {load_after[0]:.1f} after; "
        f"{os.cpu_count()} cores; estimate {estimated:.1f} s for the one-worker render "
        f"(measured/estimated = {scale:.2f})\n"
    )
    print("| job | one worker (wall) | parts | critical path on N functions: slowest part + join "
          "| total CPU (fanned out vs one worker) |")  # fmt: skip
    print("|---|---|---|---|---|")
    minutes_run = info.duration_seconds / 60
    print(
        f"| {minutes_run:.0f} min 1080p60 → {plan.expected_duration_seconds:.0f} s "
        f"({plan.frame_count} frames, every frame decoded; limit {args.limit:g} s) | "
        f"{whole.wall:.1f} s | {len(parts)} | {slowest.wall:.1f} + {join.wall:.1f} = "
        f"**{critical:.1f} s** ({whole.wall / critical:.1f}× faster) | {cpu_total:.1f} s vs "
        f"{whole.cpu:.1f} s ({cpu_total / whole.cpu:.2f}×) |"
    )
    join_per_frame = join.wall / plan.frame_count
    hour = 3600.0
    for name, recording in (
        ("1 h 1080p60 H.264", SourceInfo(1920, 1080, 0, 60.0, hour, "h264", "mov,mp4",
                                        keyframe_interval_seconds=GOP / 60, keyframe_count=99)),
        ("1 h 4K60 HEVC", SourceInfo(3840, 2160, 0, 60.0, hour, "hevc", "mov,mp4",
                                    keyframe_interval_seconds=GOP / 60, keyframe_count=99)),
    ):  # fmt: skip
        print(_extrapolate(name, recording, 60.0, scale, join_per_frame))
    print(
        f"\n(extrapolated rows: the domain's estimate × {scale:.2f}, parts cut for Lambda's "
        f"{LAMBDA_LIMIT_SECONDS:.0f}-s limit; GB-s = function seconds × {PROCESSOR_GB:g} GB)"
    )


if __name__ == "__main__":
    main()
