"""Camcorder and DVD pictures through probe, plan and every render strategy with real ffmpeg:
interlaced sources come out deinterlaced, anamorphic ones in square pixels of their shape."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import Strategy, plan_timelapse
from chalicelib.media.probe import probe
from chalicelib.media.render import RenderResult, render_timelapse
from tests.corpus import run
from tests.support import FFMPEG, combing, describe, psnr, rgb_pixels

LIMITS = Limits()
# 60 pictures a second woven into 30 interlaced frames, top field first, coded as fields
# (MBAFF), as a 1080i camcorder records; scrolling, so every frame's fields differ. A keyframe
# every 15 frames: the 1-second timelapse of 4 s has keyframes enough for "keyframes"/"ranges".
INTERLACED = [
    "-f", "lavfi", "-i",
    "testsrc2=s=320x240:r=60:d=4,scroll=h=0.02,tinterlace=mode=interleave_top,setfield=tff",
    "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-flags", "+ildct+ilme",
    "-x264-params", "tff=1:keyint=15:min-keyint=15:scenecut=0",
]  # fmt: skip
# An NTSC DVD's 16:9 picture: 720x480 stored, pixels 32:27 wide.
ANAMORPHIC = [
    "-f", "lavfi", "-i", "testsrc2=s=720x480:r=30:d=3,setsar=32/27",
    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "15",
]  # fmt: skip


def render_as(source: Path, strategy: Strategy, out: Path) -> RenderResult:
    """A 1-second timelapse of `source` by `strategy` (each is chosen by the plan elsewhere)."""
    info = probe(str(source), ffmpeg=FFMPEG)
    plan = dataclasses.replace(plan_timelapse(info, 1.0, LIMITS), strategy=strategy)
    return render_timelapse(
        str(source), out, plan, ffmpeg=FFMPEG, work_dir=out.parent / "work",
        on_progress=lambda _: None, should_stop=lambda: False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("container", "strategy"),
    [("mpegts", "decode_all"), ("mpegts", "keyframes"), ("mp4", "keyframes"), ("mp4", "ranges")],
)
def test_an_interlaced_source_comes_out_without_combing(
    container: str, strategy: Strategy, tmp_path: Path
) -> None:
    # Given a 1080i-style clip, whose pictures shown as stored are combed wherever things move
    source = tmp_path / f"camcorder.{'ts' if container == 'mpegts' else 'mp4'}"
    run(*INTERLACED, "-f", container, str(source))
    assert probe(str(source), ffmpeg=FFMPEG).field_order == "tff"
    assert combing(source) > 2
    # When it is rendered
    out = tmp_path / "out.mp4"
    result = render_as(source, strategy, out)
    # Then the timelapse's pictures are whole: neighbouring lines agree as in a progressive picture
    assert result.frame_count >= 4
    assert combing(out) < 1
    assert (result.width, result.height) == (320, 240)
    assert "progressive" in describe(str(out))


@pytest.mark.parametrize("strategy", ["decode_all", "keyframes", "ranges"])
def test_an_anamorphic_source_comes_out_in_square_pixels_of_its_shape(
    strategy: Strategy, tmp_path: Path
) -> None:
    # Given a DVD-style clip stored 720x480 with pixels 32:27 wide (shown 16:9)
    source = tmp_path / "dvd.mp4"
    run(*ANAMORPHIC, str(source))
    info = probe(str(source), ffmpeg=FFMPEG)
    assert info.sample_aspect == (32, 27)
    # When it is rendered
    out = tmp_path / "out.mp4"
    result = render_as(source, strategy, out)
    # Then the output is 16:9 in square pixels, its short side the source's
    assert (result.width, result.height) == (854, 480)
    assert "[SAR 1:1 DAR 427:240]" in describe(str(out))
    # And it shows the whole picture a player shows (untagged SD: read as BT.601), nothing cut
    size = (64, 36)
    shown = rgb_pixels(source, size=size, matrix="bt601", before="scale=854:480,")
    assert psnr(rgb_pixels(out, size=size), shown) >= 30
