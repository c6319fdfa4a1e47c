"""The README's contact sheet and format table: every kind of the corpus through probe, plan,
render and poster, timed; the posters tiled into one picture.

    python -m tests.contact_sheet docs/formats.jpg [--scale 4 --seconds 30 --target 3]

`--scale` multiplies each kind's picture size (4: 1280x720), `--seconds` sets its length; the
table gives wall seconds for the probe and for the render (with the poster) on this machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import plan_timelapse
from chalicelib.media.probe import probe
from chalicelib.media.render import make_poster, render_timelapse
from tests.corpus import KINDS, Kind, run
from tests.support import FFMPEG

TILE = 240
COLUMNS = 5
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def scaled(kind: Kind, scale: int, seconds: float) -> Kind:
    def side(value: int) -> int:  # an odd side stays odd
        bigger = value * scale
        return bigger + 1 if value % 2 and not bigger % 2 else bigger

    width, height = kind.display
    return dataclasses.replace(kind, display=(side(width), side(height)), seconds=seconds)


def measure(kind: Kind, folder: Path, target: float) -> tuple[Path, str]:
    source = kind.build(folder)
    started = time.perf_counter()
    info = probe(str(source), ffmpeg=FFMPEG)
    probed = time.perf_counter()
    plan = plan_timelapse(info, target, Limits())
    out, poster = folder / f"{kind.name}-timelapse.mp4", folder / f"{kind.name}-poster.jpg"
    result = render_timelapse(
        str(source), out, plan, ffmpeg=FFMPEG, work_dir=folder / "work",
        on_progress=lambda _: None, should_stop=lambda: False,
    )  # fmt: skip
    make_poster(out, poster, ffmpeg=FFMPEG, at_seconds=result.duration_seconds / 2)
    rendered = time.perf_counter()
    megabytes = source.stat().st_size / 1e6
    hdr = f", {info.color.hdr.upper()}" if info.color.hdr else ""
    turned = f", turned {info.rotation}°" if info.rotation else ""
    mirrored = " and mirrored" if info.mirrored else ""
    row = (
        f"| {kind.what} | {info.width}x{info.height} {info.codec}{hdr}{turned}{mirrored}, "
        f"{info.duration_seconds:.0f} s, {megabytes:.1f} MB | {probed - started:.2f} s | "
        f"{plan.strategy} | {rendered - probed:.2f} s |"
    )
    return poster, row


def tile(posters: list[tuple[str, Path]], sheet: Path) -> None:
    inputs: list[str] = []
    parts: list[str] = []
    for index, (name, poster) in enumerate(posters):
        inputs += ["-i", str(poster)]
        label = (
            f",drawtext=fontfile={FONT}:text='{name}':x=6:y=h-22:fontsize=15:fontcolor=white"
            ":box=1:boxcolor=black@0.6:boxborderw=4"
            if FONT.exists()
            else ""
        )
        parts.append(
            f"[{index}]scale={TILE}:{TILE}:force_original_aspect_ratio=decrease,"
            f"pad={TILE}:{TILE}:(ow-iw)/2:(oh-ih)/2:color=0x202020{label}[t{index}]"
        )
    blanks = -len(posters) % COLUMNS
    for extra in range(blanks):
        parts.append(f"color=c=0x202020:s={TILE}x{TILE}:d=1[b{extra}]")
    cells = [f"[t{i}]" for i in range(len(posters))] + [f"[b{i}]" for i in range(blanks)]
    layout = "|".join(f"{(i % COLUMNS) * TILE}_{(i // COLUMNS) * TILE}" for i in range(len(cells)))
    parts.append(f"{''.join(cells)}xstack=inputs={len(cells)}:layout={layout}")
    run(*inputs, "-filter_complex", ";".join(parts), "-frames:v", "1", "-q:v", "3", str(sheet))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sheet", type=Path)
    parser.add_argument("--scale", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--target", type=float, default=1)
    args = parser.parse_args(argv)
    rows = [
        "| format | source | probe | strategy | render + poster |",
        "|---|---|---|---|---|",
    ]
    posters: list[tuple[str, Path]] = []
    with tempfile.TemporaryDirectory() as folder:
        for kind in KINDS.values():
            poster, row = measure(scaled(kind, args.scale, args.seconds), Path(folder), args.target)
            posters.append((kind.name, poster))
            rows.append(row)
            print(row, flush=True)
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        tile(posters, args.sheet)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
