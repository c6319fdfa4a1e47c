"""Benchmark: the render engine against the usual pipeline, on generated inputs.

    python -m bench.render            # full inputs (generation takes a few minutes, cached)
    python -m bench.render --quick    # smaller inputs
    python -m bench.render --only 1080p-kf2s --target-seconds 10

Per input it prints: the usual pipeline (decode every frame, time-based select, x264 medium, from a
local file, so no download is counted against it), then the engine (probe + plan + render) once per
strategy that applies: the planned one and, where keyframes can be sampled, both "keyframes"
(ffmpeg reads the whole file and decodes keyframes only) and "seek" (PyAV seeks to each sample's
keyframe: bench/seek.py, not a product strategy, PyAV is not in the Lambda package). Each engine
run reads the source three ways: over HTTP range requests from a local server
standing in for a presigned S3 GET on loopback, the same server made S3-like (20 ms to first byte,
80 MB/s per connection; see bench/range_server.py), and from local disk. Also: the keyframe-decode
floor and the encode cost of the output frames, bytes the server sent for the render (after the
probe) against the file size, peak memory of the Python process and of ffmpeg, output size and SSIM
against the usual output.

Inputs are cached under build/bench/. Each is a one-minute testsrc2 segment encoded with x264
ultrafast at the stated bit rate, then looped with ``-c copy`` to full length: generating ten
minutes of 1080p frame by frame would cost several minutes on two cores and measure nothing new.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast, get_args

from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import RenderPlan, Strategy, plan_timelapse
from chalicelib.media.ffmpeg import locate_ffmpeg
from chalicelib.media.probe import probe

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "bench"
FFMPEG = locate_ffmpeg(os.environ.get("LAPSE_FFMPEG"))

SCREEN = (
    "color=c=0xeeeeee:s=1280x720:r=30[bg];testsrc2=s=480x270:r=30[win];"
    "color=c=0x333333:s=1280x40:r=30[bar];"
    "[bg][bar]overlay=0:0[top];[top][win]overlay=x='40+mod(t*20\\,720)':y=200"
)


@dataclass(frozen=True)
class Input:
    name: str
    description: str
    size: str
    minutes: float
    quick_minutes: float
    gop: int
    bitrate: str
    lavfi: str | None = None

    def path(self, quick: bool) -> Path:
        return CACHE / f"{self.name}{'-quick' if quick else ''}.mp4"


INPUTS = [
    Input("1080p-kf2s", "10 min 1080p30, keyframe every 2 s", "1920x1080", 10, 2, 60, "15M"),
    Input("1080p-kf8s", "10 min 1080p30, keyframe every 8 s", "1920x1080", 10, 2, 240, "15M"),
    Input("4k-2min", "2 min 2160p30, keyframe every 2 s", "3840x2160", 2, 0.5, 60, "40M"),
    Input(
        "720p-lowrate", "10 min 720p30 1 Mbit/s, keyframe every 2 s", "1280x720", 10, 2, 60, "1M"
    ),
    Input(
        "720p-1h-screen",
        "1 h 720p30 screen-like, x264 default GOP",
        "1280x720",
        60,
        10,
        250,
        "",
        lavfi=SCREEN,
    ),
]


def generate(spec: Input, quick: bool) -> Path:
    target = spec.path(quick)
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    minutes = spec.quick_minutes if quick else spec.minutes
    segment = CACHE / f"{spec.name}-segment{'-quick' if quick else ''}.mp4"
    segment_seconds = min(60.0, minutes * 60)
    source = spec.lavfi or f"testsrc2=size={spec.size}:rate=30"
    rate = ["-b:v", spec.bitrate, "-maxrate", spec.bitrate, "-bufsize", spec.bitrate]
    rate = rate if spec.bitrate else ["-crf", "23"]
    gop = ["-g", str(spec.gop)] + (
        ["-keyint_min", str(spec.gop), "-sc_threshold", "0"] * bool(spec.bitrate)
    )
    print(f"generating {target.name} ({spec.description}) ...", file=sys.stderr, flush=True)
    _ffmpeg(
        "-f", "lavfi", "-i", source, "-t", f"{segment_seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", *gop, *rate,
        "-pix_fmt", "yuv420p", str(segment),
    )  # fmt: skip
    partial = target.with_suffix(".partial.mp4")
    _ffmpeg(
        "-stream_loop",
        "-1",
        "-i",
        str(segment),
        "-t",
        f"{minutes * 60}",
        "-c",
        "copy",
        str(partial),
    )
    partial.rename(target)
    segment.unlink()
    return target


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args], check=True
    )


def timed(command: list[str]) -> tuple[float, int]:
    """Run `command`; its wall time and peak RSS (KiB) measured from its own rusage."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    if process.returncode != 0:
        assert process.stderr is not None
        raise RuntimeError(process.stderr.read().decode()[-2000:])
    return elapsed, usage.ru_maxrss


def usual_pipeline(source: Path, plan: RenderPlan, output: Path) -> tuple[float, int]:
    iv = plan.sample_interval_seconds
    select = f"select='isnan(prev_selected_t)+gte(t-prev_selected_t\\,{iv - 0.001:.6f})'"
    return timed(
        [
            FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(source),
            "-map", "0:v:0", "-an",
            "-vf", f"{select},scale={plan.output_width}:{plan.output_height},setpts=N/30/TB",
            "-frames:v", str(plan.frame_count), "-r", "30",
            "-c:v", "libx264", "-preset", "medium", "-crf", "23", "-pix_fmt", "yuv420p",
            "-movflags", "+faststart", str(output),
        ]
    )  # fmt: skip


def keyframe_floor(source: Path) -> tuple[float, int]:
    return timed(
        [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-skip_frame", "nokey",
            "-discard", "nokey", "-i", str(source), "-map", "0:v:0", "-f", "null", "-",
        ]
    )  # fmt: skip


def encode_only(rendered: Path, plan: RenderPlan) -> tuple[float, int]:
    """The encoder's share: re-encode the output's frames with the engine's settings."""
    params = ["-x264-params", plan.x264_params] if plan.x264_params else []
    return timed(
        [
            FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(rendered),
            "-c:v", "libx264", "-preset", plan.preset, "-crf", str(plan.crf), *params,
            "-f", "null", "-",
        ]
    )  # fmt: skip


NETWORKS = ("loopback", "s3")


def engine_once(
    source: Path, target: float, output: Path, where: str, strategy: str | None
) -> dict[str, float]:
    """Run the engine in a fresh interpreter so its (and its children's) peak memory is its own.

    `where` is "disk" or one of NETWORKS; `strategy` forces a strategy (None: the planner's).
    """
    command = [
        sys.executable, "-m", "bench.render", "--engine-once", str(source),
        "--target-seconds", str(target), "--output", str(output), "--where", where,
    ] + (["--strategy", strategy] if strategy else [])  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    result: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def run_engine_once(
    source: Path, target: float, output: Path, where: str, strategy: str | None
) -> None:
    from bench.range_server import LOOPBACK, S3_LIKE, ByteCounter, serve_directory  # noqa: PLC0415
    from chalicelib.media.render import RenderResult, render_timelapse  # noqa: PLC0415

    def engine(location: str, counter: ByteCounter | None) -> dict[str, float]:
        started = time.monotonic()
        info = probe(location, ffmpeg=FFMPEG)
        plan = plan_timelapse(info, target, Limits())
        if strategy and strategy != plan.strategy:
            forced: Strategy = "keyframes" if strategy == "seek" else _strategy(strategy)
            params = "" if forced == "decode_all" else "bframes=0"
            plan = dataclasses.replace(plan, strategy=forced, x264_params=params)
        probed = time.monotonic()
        probe_bytes = counter.bytes_sent if counter else 0
        result: RenderResult
        if strategy == "seek":
            from bench.seek import render_seek  # noqa: PLC0415 - PyAV only for this row

            result = render_seek(location, output, plan, ffmpeg=FFMPEG)
        else:
            with tempfile.TemporaryDirectory() as work:
                result = render_timelapse(
                    location, output, plan, ffmpeg=FFMPEG, work_dir=Path(work),
                    on_progress=lambda _: None, should_stop=lambda: False,
                )  # fmt: skip
        measured = {
            "seconds": time.monotonic() - started,
            "render_seconds": time.monotonic() - probed,
            "frames": result.frame_count,
        }
        if counter is not None:
            measured |= {
                "probe_bytes": probe_bytes,
                "bytes_sent": counter.bytes_sent - probe_bytes,
                "requests": counter.requests,
            }
        return measured

    if where == "disk":
        measured = engine(str(source), None)
    else:
        network = S3_LIKE if where == "s3" else LOOPBACK
        with serve_directory(source.parent, network) as (base, counter):
            measured = engine(f"{base}/{source.name}", counter)
    measured["python_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    measured["ffmpeg_rss_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(measured))


def ssim(a: Path, b: Path) -> float:
    completed = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-i", str(a), "-i", str(b), "-lavfi", "[0][1]ssim",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    for line in completed.stderr.splitlines():
        if "SSIM" in line and "All:" in line:
            return float(line.split("All:")[1].split()[0])
    return float("nan")


def _strategy(name: str) -> Strategy:
    for known in get_args(Strategy):
        if known == name:
            return cast(Strategy, known)
    raise SystemExit(f"unknown strategy {name!r}")


def strategies_for(plan: RenderPlan) -> list[str]:
    """The planned strategy, and both keyframe samplers (ffmpeg's and PyAV's) where it is
    "keyframes"."""
    if plan.strategy == "keyframes":
        return ["keyframes", "seek"]
    return [plan.strategy]


def bench_input(spec: Input, quick: bool, target: float, repeat: int) -> list[dict[str, object]]:
    source = generate(spec, quick)
    info = probe(str(source), ffmpeg=FFMPEG)
    plan = plan_timelapse(info, target, Limits())
    out = CACHE / "out"
    out.mkdir(exist_ok=True)
    usual_out = out / f"{spec.name}-usual.mp4"
    print(f"{spec.name}: usual pipeline ...", file=sys.stderr, flush=True)
    usual_s, usual_rss = usual_pipeline(source, plan, usual_out)
    floor_s = min(keyframe_floor(source)[0] for _ in range(repeat))
    rows: list[dict[str, object]] = []
    for strategy in strategies_for(plan):
        engine_out = out / f"{spec.name}-{strategy}.mp4"
        print(f"{spec.name}: {strategy} x{repeat} ...", file=sys.stderr, flush=True)
        runs: dict[str, list[dict[str, float]]] = {}
        for where in (*NETWORKS, "disk"):
            first = engine_once(source, target, engine_out, where, strategy)
            times = repeat if first["seconds"] < 30 else 1  # slow runs vary little; save time
            runs[where] = [first] + [
                engine_once(source, target, engine_out, where, strategy) for _ in range(times - 1)
            ]
        best = {where: min(r, key=lambda run: run["seconds"]) for where, r in runs.items()}
        every = [run for r in runs.values() for run in r]
        encode_s = min(encode_only(engine_out, plan)[0] for _ in range(repeat))
        rows.append(
            {
                "input": spec.name,
                "description": spec.description,
                "file_bytes": source.stat().st_size,
                "planned": plan.strategy,
                "strategy": strategy,
                "frames": plan.frame_count,
                "keyframes_per_sample": plan.sample_interval_seconds
                / (info.keyframe_interval_seconds or float("inf")),
                "usual_s": usual_s,
                "usual_rss_mib": usual_rss / 1024,
                "engine_http_s": best["loopback"]["seconds"],
                "engine_s3_s": best["s3"]["seconds"],
                "engine_local_s": best["disk"]["seconds"],
                "ratio": usual_s / best["loopback"]["seconds"],
                "floor_s": floor_s,
                "encode_s": encode_s,
                "vs_floor_plus_encode": best["loopback"]["seconds"] / (floor_s + encode_s),
                "bytes_sent": best["loopback"]["bytes_sent"],
                "probe_bytes": best["loopback"]["probe_bytes"],
                "requests": best["loopback"]["requests"],
                "python_rss_mib": max(run["python_rss_kib"] for run in every) / 1024,
                "ffmpeg_rss_mib": max(run["ffmpeg_rss_kib"] for run in every) / 1024,
                "usual_mb": usual_out.stat().st_size / 1e6,
                "engine_mb": engine_out.stat().st_size / 1e6,
                "ssim_vs_usual": ssim(engine_out, usual_out),
            }
        )
        print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict[str, object]]) -> str:
    header = (
        "| input | strategy (planned) | usual | engine: HTTP loopback / S3-like / disk | ratio "
        "| keyframe floor + encode | read by the render over HTTP | probe read "
        "| peak RSS usual / engine python + ffmpeg | size usual / engine | SSIM |\n|" + "---|" * 11
    )
    lines = [header]
    for r in rows:
        file_bytes: float = r["file_bytes"]  # type: ignore[assignment]
        sent: float = r["bytes_sent"]  # type: ignore[assignment]
        probe_read: float = r["probe_bytes"]  # type: ignore[assignment]
        mark = " (planned)" if r["strategy"] == r["planned"] else ""
        lines.append(
            f"| {r['description']} ({file_bytes / 1e9:.2f} GB, {r['frames']} frames, "
            f"{r['keyframes_per_sample']:.2f} keyframes/frame) | {r['strategy']}{mark} "
            f"| {r['usual_s']:.1f} s "
            f"| {r['engine_http_s']:.1f} / {r['engine_s3_s']:.1f} / {r['engine_local_s']:.1f} s "
            f"| {r['ratio']:.1f}x | {r['floor_s']:.1f} + {r['encode_s']:.1f} s "
            f"| {sent / 1e6:.0f} MB = {100 * sent / file_bytes:.1f} % ({r['requests']} req) "
            f"| {probe_read / 1e6:.0f} MB "
            f"| {r['usual_rss_mib']:.0f} / {r['python_rss_mib']:.0f} "
            f"+ {r['ffmpeg_rss_mib']:.0f} MiB "
            f"| {r['usual_mb']:.1f} / {r['engine_mb']:.1f} MB | {r['ssim_vs_usual']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.render")
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    parser.add_argument("--only", action="append", help="input name (repeatable)")
    parser.add_argument("--target-seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=3, help="engine runs per input (best of)")
    parser.add_argument("--engine-once", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--where", default="loopback", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.engine_once:
        run_engine_once(
            args.engine_once, args.target_seconds, args.output, args.where, args.strategy
        )
        return 0
    rows = []
    for spec in INPUTS:
        if args.only and spec.name not in args.only:
            continue
        rows += bench_input(spec, args.quick, args.target_seconds, args.repeat)
    (CACHE / f"results{'-quick' if args.quick else ''}.json").write_text(json.dumps(rows, indent=1))
    print(f"\ntarget {args.target_seconds:g} s, ffmpeg {FFMPEG}, {os.cpu_count()} CPUs\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
