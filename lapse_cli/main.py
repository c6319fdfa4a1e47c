"""The ``lapse`` command line. Each subcommand registers itself in its own ``add_*`` function."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import RenderPlan, check_source_limits, plan_timelapse
from chalicelib.errors import LapseError
from chalicelib.inputs import pace
from chalicelib.media.ffmpeg import locate_ffmpeg
from chalicelib.media.idle_scan import find_idle, render_skipping_idle
from chalicelib.media.render import RenderResult, make_poster, render_timelapse
from chalicelib.media.source import describe_source
from lapse_cli.commands import EXIT_ERROR, EXIT_INTERRUPTED, add_client_commands
from lapse_cli.options import add_option_flags, option_fields, render_options

Handler = Callable[[argparse.Namespace], int]


def add_render(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render a timelapse of a local video (or an http(s) URL) with the service's engine",
    )
    parser.add_argument("input", help="source video: a path or an http(s) URL")
    parser.add_argument("-o", "--output", required=True, type=Path, help="output .mp4")
    parser.add_argument(
        "--target-seconds",
        type=float,
        help="length of the timelapse (never longer than the source; default "
        f"{Limits().default_target_seconds:g})",
    )
    add_option_flags(parser)
    parser.add_argument("--poster", type=Path, help="also write a JPEG poster here")
    parser.add_argument("--ffmpeg", default=os.environ.get("LAPSE_FFMPEG"), help="ffmpeg binary")
    parser.add_argument("--quiet", action="store_true", help="print only the result")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run_render)


def run_render(args: argparse.Namespace) -> int:
    limits = Limits()
    try:
        body = {"targetSeconds": args.target_seconds, **option_fields(args)}
        target, speed = pace(body, limits)
    except LapseError as exc:
        print(f"lapse render: {exc.message}", file=sys.stderr)
        return 2
    options = render_options(args)
    ffmpeg = locate_ffmpeg(args.ffmpeg)
    started = time.monotonic()
    described = describe_source(args.input, ffmpeg=ffmpeg)
    info = described.info
    check_source_limits(info, limits)
    indexed = described.index is not None

    def planned(dropped: tuple[tuple[float, float], ...] = ()) -> RenderPlan:
        return plan_timelapse(
            info, target, limits, indexed=indexed, speed=speed, options=options, dropped=dropped
        )

    plan = planned()
    # With a speed the render decides idle in its own decode; with a length it scans first.
    one_pass = options.skip_idle and speed is not None
    if options.skip_idle and not one_pass:
        with tempfile.TemporaryDirectory(prefix="lapse-") as work:
            plan = planned(
                find_idle(
                    args.input,
                    plan,
                    ffmpeg=ffmpeg,
                    work_dir=Path(work),
                    should_stop=lambda: False,
                    index=described.index,
                )
            )
    say = _say(args.quiet)
    say(
        f"source: {info.display_width}x{info.display_height} {info.fps:g} fps "
        f"{info.duration_seconds:.1f} s {info.codec}, keyframe every "
        f"{info.keyframe_interval_seconds or 0:.2f} s"
    )
    say(
        f"plan: {plan.strategy}, {plan.frame_count} frames "
        f"({plan.expected_duration_seconds:.1f} s, {plan.speedup:.1f}x faster), "
        f"{plan.output_width}x{plan.output_height}"
        + ("" if one_pass else f", {plan.idle_seconds_skipped:.0f} s idle left out")
    )
    with tempfile.TemporaryDirectory(prefix="lapse-") as work:
        rendering: dict[str, Any] = {
            "ffmpeg": ffmpeg,
            "work_dir": Path(work),
            "on_progress": _progress_printer(args.quiet),
            "should_stop": lambda: False,
            "index": described.index,
        }
        if one_pass:
            result, plan = render_skipping_idle(args.input, args.output, plan, **rendering)
            say(f"idle left out: {plan.idle_seconds_skipped:.0f} s")
        else:
            result = render_timelapse(args.input, args.output, plan, **rendering)
    if args.poster:
        make_poster(args.output, args.poster, ffmpeg=ffmpeg, at_seconds=result.duration_seconds / 2)
    if args.json:
        print(json.dumps({"output": str(args.output), **result_summary(result)}, indent=2))
        return 0
    print(
        f"{args.output}: {result.width}x{result.height} {result.fps:g} fps, "
        f"{result.duration_seconds:.2f} s, {result.frame_count} frames, "
        f"{result.size_bytes / 1e6:.1f} MB in {time.monotonic() - started:.1f} s"
    )
    return 0


def result_summary(result: RenderResult) -> dict[str, Any]:
    return {
        "width": result.width,
        "height": result.height,
        "fps": result.fps,
        "durationSeconds": result.duration_seconds,
        "frameCount": result.frame_count,
        "sizeBytes": result.size_bytes,
    }


def _say(quiet: bool) -> Callable[[str], None]:
    def say(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr)

    return say


def _progress_printer(quiet: bool) -> Callable[[int], None]:
    def show(percent: int) -> None:
        if not quiet and sys.stderr.isatty():
            print(
                f"\rrendering {percent:3d} %", end="\n" if percent == 100 else "", file=sys.stderr
            )

    return show


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lapse", description="Turn long videos into timelapses.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_render(subparsers)
    add_client_commands(subparsers)
    return parser


def version() -> str:
    try:
        return metadata.version("lapse")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except LapseError as exc:
        print(f"lapse: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
