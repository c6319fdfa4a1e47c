"""`make bench` (its second part): what each timelapse option adds to a render, in one run.

    python -m bench.options            # 10-minute 1080p30 screen recordings (generated once)
    python -m bench.options --quick    # the same shape, 2 minutes long (make bench QUICK=1)

The input is the issue's: a screen recording whose middle 60 % is a still page where only a cursor
blinks (2 min active, 6 min idle, 2 min active; a third of that with --quick), 1920x1080 at 30 fps,
with a creation time. Two encodings of it: a keyframe every second (the planner picks "ranges"
at speed 30) and x264's default GOP of 250 frames (it must decode every frame: "decode_all").

Through the product path — the local stack as `make run` starts it, storage on loopback — each
option is asked for on its own beside a plain `speed: 30` render of the same file: create over the
HTTP API, upload through the presigned URL, poll; seconds = completedAt − the end of the upload,
and the ratio to the plain render measured in the same run. Then the worker's render path alone
(in this process, the source read over HTTP from a local range server, on loopback and behind a
link like S3 seen from Lambda: bench/range_server.py) times skipIdle before and now: the idle scan
followed by the render (the source read twice), and `render_skipping_idle` (read once).

The load average is printed with the table: the machine is shared, so only ratios within one run
mean much.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from bench.product import parse_time, wait_for_end
from bench.range_server import LOOPBACK, S3_LIKE, serve_directory
from bench.render import CACHE, FFMPEG, _ffmpeg
from bench.stack import RunningStack, running_stack
from chalicelib.adapters.auth import make_local_token
from chalicelib.domain.limits import Limits
from chalicelib.domain.options import RenderOptions
from chalicelib.domain.plan import plan_timelapse
from chalicelib.media import idle_scan
from chalicelib.media.render import render_timelapse
from chalicelib.media.source import describe_source
from lapse_cli.client import ApiClient, Progress, upload

FONT = Path(__file__).resolve().parent.parent / "chalicelib" / "fonts" / "DejaVuSansMono-Bold.ttf"
SPEED = 30
LINKS = {"loopback": LOOPBACK, "S3-like link": S3_LIKE}


@dataclass(frozen=True)
class Screen:
    name: str
    description: str
    gop: list[str]

    def path(self, quick: bool) -> Path:
        return CACHE / f"{self.name}{'-quick' if quick else ''}.mp4"


SCREENS = [
    Screen("screen-idle-kf1s", "keyframe every 1 s", ["-g", "30", "-keyint_min", "30"]),
    Screen("screen-idle-gop250", "x264's default GOP (250)", []),
]

# (label, the create's option fields); every case is `speed: 30` unless it says otherwise.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("plain", {}),
    ("skipIdle", {"skipIdle": True}),
    ("timestamp", {"timestamp": True}),
    ("deflicker", {"deflicker": True}),
    ("fps 60", {"fps": 60}),
    ("resolution 720p", {"resolution": "720p"}),
]


def minutes(quick: bool) -> tuple[float, float, float]:
    """Active, idle, active minutes."""
    return (0.4, 1.2, 0.4) if quick else (2.0, 6.0, 2.0)


def generate(screen: Screen, quick: bool) -> Path:
    """The screen recording: a moving window, then a still page with a blinking cursor, then the
    window again (cached under build/bench/)."""
    target = screen.path(quick)
    if target.exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    active, idle, _ = (m * 60 for m in minutes(quick))
    moving = (
        f"color=c=0xeeeeee:s=1920x1080:r=30:d={active}[bg{{n}}];"
        f"testsrc2=s=800x450:r=30:d={active}[win{{n}}];"
        f"[bg{{n}}][win{{n}}]overlay=x='60+mod(t*40\\,1000)':y=300:shortest=1[a{{n}}]"
    )
    still = (
        f"color=c=0xf0f0f0:s=1920x1080:r=30:d={idle},"
        f"drawtext=fontfile={FONT}:text='def main()\\:':x=120:y=120:fontsize=48:fontcolor=black,"
        "drawbox=x=440:y=120:w=6:h=48:color=black:t=fill:enable='lt(mod(t\\,1.06)\\,0.53)'[i]"
    )
    graph = ";".join(
        [
            moving.format(n=0),
            still,
            moving.format(n=1),
            "[a0][i][a1]concat=n=3:v=1:a=0,format=yuv420p",
        ]
    )
    print(f"generating {target.name} ...", file=sys.stderr, flush=True)
    partial = target.with_suffix(".partial.mp4")
    _ffmpeg(
        "-filter_complex", graph, "-c:v", "libx264", "-preset", "ultrafast", "-crf", "28",
        *screen.gop, "-sc_threshold", "0", "-metadata", "creation_time=2026-11-29T14:03:27Z",
        str(partial),
    )  # fmt: skip
    partial.rename(target)
    return target


# --- through the stack ----------------------------------------------------------------------------


@dataclass
class Row:
    source: str
    case: str
    seconds: float
    strategy: str
    output: dict[str, Any] = field(default_factory=dict)
    status: str = "complete"
    ratio: float = 0.0


def run_case(
    stack: RunningStack, source: Path, fields: dict[str, Any]
) -> tuple[float, dict[str, Any]]:
    """Create, upload, wait: (seconds from the end of the upload to complete, the record)."""
    client = ApiClient(stack.config.api_url, make_local_token("bench", "local-dev-secret"), 120)
    size = source.stat().st_size
    body = {"projectId": "bench-options", "contentType": "video/mp4", "sizeBytes": size}
    created = client.request("POST", "/timelapses", {**body, "speed": SPEED, **fields})
    upload(client, created, source, Progress(size, label="  upload"))
    uploaded_at = time.time()
    done = wait_for_end(client, created["timelapse"]["id"])
    finished = parse_time(done["completedAt"]) if done.get("completedAt") else time.time()
    client.request("DELETE", f"/timelapses/{done['id']}")  # frees storage
    return finished - uploaded_at, done


def planned_strategy(source: Path, fields: dict[str, Any]) -> str:
    found = describe_source(str(source), ffmpeg=FFMPEG)
    options = RenderOptions(**{k: v for k, v in fields.items() if k in ("fps", "resolution")})
    plan = plan_timelapse(
        found.info, None, Limits(), indexed=found.index is not None, speed=SPEED, options=options
    )
    return plan.strategy


def bench_stack(sources: dict[str, Path], repeat: int, work: Path) -> list[Row]:
    """Every case on every source, `repeat` rounds (interleaved, so a change of load hits every
    case alike); each row holds the median."""
    times: dict[tuple[str, str], list[float]] = {}
    records: dict[tuple[str, str], dict[str, Any]] = {}
    with running_stack(work / "stack-options.log") as stack:
        for _ in range(repeat):
            for name, source in sources.items():
                for label, fields in CASES:
                    seconds, records[name, label] = run_case(stack, source, fields)
                    times.setdefault((name, label), []).append(seconds)
                    print(f"  {name} {label}: {seconds:.1f} s", file=sys.stderr, flush=True)
    rows = [
        Row(
            source=name,
            case=label,
            seconds=statistics.median(times[name, label]),
            strategy=planned_strategy(sources[name], fields),
            output=records[name, label].get("output") or {},
            status=records[name, label].get("status", "?"),
        )
        for name in sources
        for label, fields in CASES
    ]
    for row in rows:
        plain = next(r for r in rows if (r.source, r.case) == (row.source, "plain"))
        row.ratio = row.seconds / plain.seconds if plain.seconds else 0.0
    return rows


# --- the worker's render path alone: skipIdle's two ways ------------------------------------------


def engine_skip_idle(source: Path, repeat: int, work: Path, link: str) -> dict[str, float]:
    """Seconds (median of `repeat`) of a plain render, of the idle scan + render, and of
    `render_skipping_idle`, reading the source from an HTTP range server on `link` as the worker
    reads a presigned URL (its MP4 index read once beforehand, as the worker's describe step
    does)."""
    found = describe_source(str(source), ffmpeg=FFMPEG)
    indexed = found.index is not None
    plan = plan_timelapse(
        found.info, None, Limits(), indexed=indexed, speed=SPEED,
        options=RenderOptions(skip_idle=True),
    )  # fmt: skip
    common: dict[str, Any] = {
        "ffmpeg": FFMPEG, "should_stop": lambda: False, "index": found.index,
    }  # fmt: skip

    def plain(url: str, out: Path) -> None:
        render_timelapse(
            url, out, replace(plan, options=RenderOptions()), work_dir=out.parent / "work",
            on_progress=lambda _p: None, **common,
        )  # fmt: skip

    def scan_then_render(url: str, out: Path) -> None:
        dropped = idle_scan.find_idle(url, plan, work_dir=out.parent / "scan", **common)
        again = plan_timelapse(
            found.info, None, Limits(), indexed=indexed, speed=SPEED, options=plan.options,
            dropped=dropped,
        )  # fmt: skip
        render_timelapse(
            url, out, again, work_dir=out.parent / "work", on_progress=lambda _p: None, **common
        )

    def skipping_idle(url: str, out: Path) -> None:
        idle_scan.render_skipping_idle(
            url, out, plan, work_dir=out.parent / "work", on_progress=lambda _p: None, **common
        )

    ways: dict[str, Callable[[str, Path], None]] = {
        "plain render": plain,
        "skipIdle before: idle scan, then render": scan_then_render,
        "skipIdle now: render_skipping_idle": skipping_idle,
    }
    times: dict[str, list[float]] = {name: [] for name in ways}
    with serve_directory(source.parent, LINKS[link]) as (base, _counter):
        url = f"{base}/{source.name}"
        for _ in range(repeat):
            for name, run in ways.items():
                with tempfile.TemporaryDirectory(dir=work) as folder:
                    started = time.monotonic()
                    run(url, Path(folder) / "out.mp4")
                    times[name].append(time.monotonic() - started)
    return {name: statistics.median(values) for name, values in times.items()}


# --- the table ------------------------------------------------------------------------------------


def table(rows: list[Row], engine: dict[tuple[str, str], dict[str, float]], quick: bool) -> str:
    length = "2-min" if quick else "10-min"
    lines = [
        f"Through the product path (`make run`'s stack), speed {SPEED}, {length} 1080p30 screen "
        "recording, 60 % idle:",
        "",
        "| source | option | strategy | upload done → complete | × plain | output |",
        "|---|---|---|---|---|---|",
    ]
    screens = {screen.name: screen for screen in SCREENS}
    for row in rows:
        out = row.output
        produced = (
            f"{out.get('durationSeconds', 0):.1f} s {out.get('width')}x{out.get('height')} "
            f"@{out.get('fps', 0):g}"
            + (
                f", {out['idleSecondsSkipped']:.0f} s idle skipped"
                if out.get("idleSecondsSkipped")
                else ""
            )
            if row.status == "complete"
            else f"**{row.status}**"
        )
        source = screens[row.source].description if row.case == "plain" else ""
        lines.append(
            f"| {source} | {row.case} | {row.strategy} | {row.seconds:.1f} s | {row.ratio:.2f}× "
            f"| {produced} |"
        )
    lines += ["", "The worker's render path alone (the source over HTTP), skipIdle:", ""]
    lines += ["| source | link | way | seconds | × plain render |", "|---|---|---|---|---|"]
    for (name, link), ways in engine.items():
        plain = ways["plain render"]
        for way, seconds in ways.items():
            ratio = seconds / plain
            lines.append(
                f"| {screens[name].description} | {link} | {way} | {seconds:.1f} s | {ratio:.2f}× |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.options")
    parser.add_argument("--quick", action="store_true", help="2-minute sources")
    parser.add_argument("--repeat", type=int, default=1, help="runs per case (the median is shown)")
    parser.add_argument("--only", action="append", choices=[screen.name for screen in SCREENS])
    parser.add_argument("--no-stack", action="store_true", help="only the render path's skipIdle")
    args = parser.parse_args(argv)
    quick = bool(args.quick or os.environ.get("QUICK"))
    screens = [screen for screen in SCREENS if not args.only or screen.name in args.only]
    sources = {screen.name: generate(screen, quick) for screen in screens}
    work = CACHE / "options"
    work.mkdir(parents=True, exist_ok=True)
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    rows = [] if args.no_stack else bench_stack(sources, args.repeat, work)
    engine = {
        (name, link): engine_skip_idle(source, args.repeat, work, link)
        for name, source in sources.items()
        for link in LINKS
    }
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    result = CACHE / f"options{'-quick' if quick else ''}.json"
    engine_rows = [{"source": n, "link": k, **ways} for (n, k), ways in engine.items()]
    result.write_text(
        json.dumps({"rows": [asdict(r) for r in rows], "engine": engine_rows}, indent=1)
    )
    print(
        f"\n{os.cpu_count()} CPUs, load average {' '.join(load_before)} before, "
        f"{' '.join(load_after)} after; results in {result}\n"
    )
    print(table(rows, engine, quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
