"""The options' effect on the picture, measured on the render engine's output (real ffmpeg)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.domain.limits import Limits
from chalicelib.domain.options import RenderOptions
from chalicelib.domain.plan import plan_timelapse
from chalicelib.media.render import render_timelapse
from chalicelib.media.source import describe_source
from tests.support import FFMPEG, ffmpeg, luma_flicker

# Brightness alternating frame to frame by 0.3 of the range, as a camera's auto-exposure hunting.
ALTERNATING = "0.3*(mod(n\\,2)-0.5)"


@pytest.fixture(scope="module")
def flickering_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flicker") / "flicker.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=6",
        "-vf", f"eq=brightness='{ALTERNATING}':eval=frame,format=yuv420p",
        "-c:v", "libx264", "-preset", "ultrafast", "-g", "30", str(path),
    )  # fmt: skip
    return path


def _render(source: Path, out: Path, options: RenderOptions) -> Path:
    found = describe_source(str(source), ffmpeg=FFMPEG)
    # The whole clip at its own rate: every frame is kept, so the flicker reaches the render.
    plan = plan_timelapse(found.info, 6, Limits(), options=options)
    assert plan.frame_count == 180
    render_timelapse(
        str(source), out, plan, ffmpeg=FFMPEG, work_dir=out.parent / f"{out.stem}-work",
        on_progress=lambda _p: None, should_stop=lambda: False, index=found.index,
    )  # fmt: skip
    return out


def test_deflicker_evens_out_frame_to_frame_brightness(
    flickering_clip: Path, tmp_path: Path
) -> None:
    # Given a clip whose mean luma jumps by tens of levels every frame
    assert luma_flicker(flickering_clip) > 30
    # When it is rendered plain and with deflicker
    plain = _render(flickering_clip, tmp_path / "plain.mp4", RenderOptions())
    evened = _render(flickering_clip, tmp_path / "deflicker.mp4", RenderOptions(deflicker=True))
    # Then the plain render keeps the flicker and deflicker takes most of it out
    before, after = luma_flicker(plain), luma_flicker(evened)
    assert before > 30
    assert after < before / 3, (before, after)
