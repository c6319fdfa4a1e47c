"""bench/seek.py, the engine benchmark's PyAV row: one seek and one decoded keyframe per kept
sample, through the product's filters and encoder. Not a product strategy (PyAV is not in the
Lambda package); these keep the benchmark's comparison honest."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from bench.range_server import serve_directory
from bench.seek import render_seek
from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import RenderPlan, plan_timelapse
from chalicelib.media.ffmpeg import locate_ffmpeg
from chalicelib.media.probe import probe
from chalicelib.media.render import render_timelapse

pytestmark = [pytest.mark.integration]

FFMPEG = locate_ffmpeg(os.environ.get("LAPSE_FFMPEG"))


def make_clip(path: Path, *, size: str, seconds: float, gop: int, rate: str = "") -> Path:
    bitrate = ["-b:v", rate, "-maxrate", rate, "-bufsize", rate] if rate else []
    subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *bitrate,
         "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("seek-clips")
    upright = make_clip(root / "upright.mp4", size="320x180", seconds=4, gop=3)
    rotated = root / "rotated.mp4"
    subprocess.run(
        [FFMPEG, "-nostdin", "-y", "-loglevel", "error", "-display_rotation", "90",
         "-i", str(upright), "-c", "copy", str(rotated)],
        check=True, timeout=60,
    )  # fmt: skip
    return {
        "plain": make_clip(root / "plain.mp4", size="320x180", seconds=20, gop=15),
        "rotated": rotated,
        "dense": make_clip(root / "dense.mp4", size="640x360", seconds=60, gop=60, rate="8M"),
    }


def keyframes_plan(source: Path | str, target: float) -> RenderPlan:
    plan = plan_timelapse(probe(str(source), ffmpeg=FFMPEG), target, Limits())
    return dataclasses.replace(plan, strategy="keyframes", x264_params="bframes=0")


def render_keyframes(source: Path, out: Path, target: float, work: Path) -> None:
    render_timelapse(
        str(source), out, keyframes_plan(source, target), ffmpeg=FFMPEG, work_dir=work,
        on_progress=lambda _: None, should_stop=lambda: False,
    )  # fmt: skip


def ssim(a: Path, b: Path) -> float:
    completed = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-i", str(a), "-i", str(b), "-lavfi", "[0][1]ssim",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    line = next(x for x in completed.stderr.splitlines() if "SSIM" in x and "All:" in x)
    return float(line.split("All:")[1].split()[0])


def test_seek_renders_the_planned_frames(clips: dict[str, Path], tmp_path: Path):
    plan = keyframes_plan(clips["plain"], 1)

    result = render_seek(str(clips["plain"]), tmp_path / "out.mp4", plan, ffmpeg=FFMPEG)

    assert result.frame_count == 30
    assert result.duration_seconds == pytest.approx(1.0, abs=0.05)
    assert (result.width, result.height, result.fps) == (320, 180, 30)


def test_seek_and_keyframes_keep_the_same_pictures(clips: dict[str, Path], tmp_path: Path):
    seek, keyframes = tmp_path / "seek.mp4", tmp_path / "keyframes.mp4"

    render_seek(str(clips["plain"]), seek, keyframes_plan(clips["plain"], 1), ffmpeg=FFMPEG)
    render_keyframes(clips["plain"], keyframes, 1, tmp_path / "w")

    assert ssim(seek, keyframes) > 0.95


def test_seek_turns_rotated_video_upright(clips: dict[str, Path], tmp_path: Path):
    seek, keyframes = tmp_path / "seek.mp4", tmp_path / "keyframes.mp4"

    result = render_seek(
        str(clips["rotated"]), seek, keyframes_plan(clips["rotated"], 1), ffmpeg=FFMPEG
    )
    render_keyframes(clips["rotated"], keyframes, 1, tmp_path / "w")

    assert (result.width, result.height) == (180, 320)
    assert probe(str(seek), ffmpeg=FFMPEG).rotation == 0
    assert ssim(seek, keyframes) > 0.95  # turned the same way as the ffmpeg CLI turns it


def test_seek_over_http_reads_only_the_kept_keyframes(clips: dict[str, Path], tmp_path: Path):
    """A minute of dense video, 30 samples: seeking reads a small share of it."""
    dense = clips["dense"]
    plan = keyframes_plan(dense, 1)

    with serve_directory(dense.parent) as (base, counter):
        result = render_seek(f"{base}/{dense.name}", tmp_path / "out.mp4", plan, ffmpeg=FFMPEG)

    assert result.frame_count == 30
    assert counter.bytes_sent < dense.stat().st_size / 4
