"""The README's stills of `timestamp` and `deflicker`, made by the engine itself, with the time
each option adds to a render on this machine.

    python -m tests.options_stills docs/options.jpg

Top: a frame of a 1280x720 timelapse of a clip with a creation time, stamped. Bottom: six
consecutive frames of a flickering clip (brightness jumping frame to frame, as a camera's
auto-exposure does over a timelapse), without and with `deflicker`, each shrunk to a tile.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from chalicelib.domain.limits import Limits
from chalicelib.domain.options import RenderOptions
from chalicelib.domain.plan import RenderPlan, plan_timelapse
from chalicelib.media.render import render_timelapse
from chalicelib.media.source import describe_source
from tests.support import FFMPEG, ffmpeg

# Brightness jumping pseudo-randomly frame to frame by up to ±0.17.
FLICKER = "0.35*(mod(n*7919,13)/12-0.5)"


def _render(source: Path, out: Path, options: RenderOptions, work: Path) -> float:
    found = describe_source(str(source), ffmpeg=FFMPEG)
    plan: RenderPlan = plan_timelapse(found.info, 6, Limits(), options=options)
    started = time.monotonic()
    render_timelapse(
        str(source), out, replace(plan), ffmpeg=FFMPEG, work_dir=work,
        on_progress=lambda _p: None, should_stop=lambda: False, index=found.index,
    )  # fmt: skip
    return time.monotonic() - started


def main(target: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        camera = work / "camera.mp4"
        ffmpeg(
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=30",
            "-vf", f"eq=contrast=0.5:brightness='{FLICKER}':eval=frame,format=yuv420p",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
            "-metadata", "creation_time=2026-11-29T14:03:27Z", str(camera),
        )  # fmt: skip
        timings = {}
        for name, options in {
            "plain": RenderOptions(),
            "timestamp": RenderOptions(timestamp=True),
            "deflicker": RenderOptions(deflicker=True),
        }.items():
            timings[name] = _render(camera, work / f"{name}.mp4", options, work)
        strip = "select='between(n,60,65)',scale=320:180,tile=6x1"
        ffmpeg(
            "-ss", "3", "-i", str(work / "timestamp.mp4"), "-i", str(work / "plain.mp4"),
            "-i", str(work / "deflicker.mp4"), "-filter_complex",
            f"[0]scale=1920:1080,trim=end_frame=1[top];[1]{strip}[a];[2]{strip}[b];"
            "[top][a][b]vstack=3,scale=960:-2",
            "-frames:v", "1", "-q:v", "4", str(target),
        )  # fmt: skip
    for name, seconds in timings.items():
        print(f"{name}: {seconds:.2f} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
