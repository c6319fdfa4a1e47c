"""The timelapse options as flags, shared by `submit` (sent to the API) and `render` (the engine
here): --speed, --fps, --resolution, --skip-idle, --timestamp, --deflicker (API.md v1.1)."""

from __future__ import annotations

import argparse
from typing import Any

from chalicelib.domain.options import FPS_CHOICES, RESOLUTIONS, RenderOptions


def add_option_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--speed", type=float, help="speed-up factor instead of --target-seconds (2–100000)"
    )
    parser.add_argument("--fps", type=int, choices=FPS_CHOICES, help="output frame rate (30)")
    parser.add_argument(
        "--resolution", choices=list(RESOLUTIONS), help="short side at most this (1080p)"
    )
    parser.add_argument(
        "--skip-idle", action="store_true", help="leave out stretches where nothing changes"
    )
    parser.add_argument("--timestamp", action="store_true", help="burn the time into a corner")
    parser.add_argument("--deflicker", action="store_true", help="even out brightness")


def option_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The create body's option fields the user gave (the API's defaults fill in the rest)."""
    fields: dict[str, Any] = {
        "speed": args.speed,
        "fps": args.fps,
        "resolution": args.resolution,
        "skipIdle": args.skip_idle or None,
        "timestamp": args.timestamp or None,
        "deflicker": args.deflicker or None,
    }
    return {name: value for name, value in fields.items() if value is not None}


def render_options(args: argparse.Namespace) -> RenderOptions:
    defaults = RenderOptions()
    return RenderOptions(
        fps=args.fps or defaults.fps,
        resolution=args.resolution or defaults.resolution,
        skip_idle=args.skip_idle,
        timestamp=args.timestamp,
        deflicker=args.deflicker,
    )
