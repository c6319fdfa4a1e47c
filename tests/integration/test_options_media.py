"""The options' effect on the picture, measured on the render engine's output (real ffmpeg)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench.range_server import serve_directory
from chalicelib.domain.limits import Limits
from chalicelib.domain.options import RenderOptions
from chalicelib.domain.plan import RenderPlan, plan_timelapse
from chalicelib.errors import RenderCancelled, RenderError
from chalicelib.media.idle_scan import find_idle, render_skipping_idle
from chalicelib.media.render import render_timelapse
from chalicelib.media.source import describe_source
from tests.integration.test_media import ffmpeg_children
from tests.support import FFMPEG, count_frames, ffmpeg, luma_flicker

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


FONT = Path(__file__).resolve().parents[2] / "chalicelib" / "fonts" / "DejaVuSansMono-Bold.ttf"


@pytest.fixture(scope="module")
def screen_recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """100 s of a small screen recording at 10 fps, a keyframe a second: 20 s of activity, 60 s
    of a still page where only the cursor blinks, 20 s of activity."""
    path = tmp_path_factory.mktemp("screen") / "screen.mp4"
    still = (
        f"color=c=0xf0f0f0:size=320x180:rate=10:duration=60,"
        f"drawtext=fontfile={FONT}:text='def main()\\:':x=20:y=20:fontsize=12:fontcolor=black,"
        "drawbox=x=100:y=20:w=2:h=12:color=black:t=fill:enable='lt(mod(t\\,1.06)\\,0.53)'"
    )
    active = "testsrc2=size=320x180:rate=10:duration=20"
    ffmpeg(
        "-f", "lavfi", "-i", active, "-f", "lavfi", "-i", still, "-f", "lavfi", "-i", active,
        "-filter_complex", "[0][1][2]concat=n=3:v=1:a=0,format=yuv420p",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-g", "10", str(path),
    )  # fmt: skip
    return path


def _skip_idle_plan(source: str, strategy: str, index: object) -> RenderPlan:
    found = describe_source(source, ffmpeg=FFMPEG)
    plan = plan_timelapse(
        found.info, None, Limits(), indexed=index is not None, speed=30,
        options=RenderOptions(skip_idle=True),
    )  # fmt: skip
    return dataclasses.replace(plan, strategy=strategy)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["ranges", "keyframes", "decode_all"])
def test_skip_idle_in_one_pass_leaves_out_what_the_scan_finds(
    screen_recording: Path, tmp_path: Path, strategy: str
) -> None:
    with serve_directory(screen_recording.parent) as (base, _counter):
        source = (
            f"{base}/{screen_recording.name}" if strategy == "ranges" else str(screen_recording)
        )
        index = describe_source(source, ffmpeg=FFMPEG).index if strategy == "ranges" else None
        plan = _skip_idle_plan(source, strategy, index)
        # Given the idle stretches the scan finds in the plan's sampled frames
        scanned = find_idle(
            source, plan, ffmpeg=FFMPEG, work_dir=tmp_path / "scan",
            should_stop=lambda: False, index=index,
        )  # fmt: skip
        # When the plan is rendered deciding idle in the same decode
        progress: list[int] = []
        result, rendered = render_skipping_idle(
            source, tmp_path / "out.mp4", plan, ffmpeg=FFMPEG, work_dir=tmp_path / "work",
            on_progress=progress.append, should_stop=lambda: False,
            index=index,
        )  # fmt: skip
    # Then it leaves out the same stretch: the idle minute less a beat, nothing of the activity
    assert rendered.dropped == scanned
    assert len(scanned) == 1
    start, end = scanned[0]
    assert 20 <= start <= 35  # a beat (a third of a second: 10 frames, 10 s) stays in
    assert end == pytest.approx(80, abs=2)
    # And the output holds the frames it kept, at the plan's rate
    assert result.frame_count == rendered.frame_count == count_frames(str(tmp_path / "out.mp4"))
    assert result.duration_seconds == pytest.approx((100 - (end - start)) / 30, abs=0.1)
    assert (result.width, result.height, result.fps) == (320, 180, plan.output_fps)
    assert progress == sorted(progress)
    assert progress[-1] == 100


@pytest.mark.parametrize("strategy", ["ranges", "decode_all"])
def test_skip_idle_in_one_pass_stops_when_asked_and_leaves_no_ffmpeg(
    screen_recording: Path, tmp_path: Path, strategy: str
) -> None:
    asked: list[int] = []
    with serve_directory(screen_recording.parent) as (base, _counter):
        source = f"{base}/{screen_recording.name}"
        index = describe_source(source, ffmpeg=FFMPEG).index if strategy == "ranges" else None
        plan = _skip_idle_plan(source, strategy, index)
        with pytest.raises(RenderCancelled):
            render_skipping_idle(
                source, tmp_path / "out.mp4", plan, ffmpeg=FFMPEG,
                work_dir=tmp_path / "work", on_progress=asked.append,
                should_stop=lambda: bool(asked), index=index,
            )  # fmt: skip
    assert ffmpeg_children() == []


def test_skip_idle_in_one_pass_names_the_decoder_when_the_source_is_unreadable(
    screen_recording: Path, tmp_path: Path
) -> None:
    # Given a plan of the recording, and then the file cut to its first half (index lost)
    plan = _skip_idle_plan(str(screen_recording), "decode_all", None)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(screen_recording.read_bytes()[: screen_recording.stat().st_size // 2])
    # When it is rendered, Then the failure is the decoder's, with ffmpeg's reason, and no ffmpeg
    # is left behind
    with pytest.raises(RenderError, match="could not decode"):
        render_skipping_idle(
            str(truncated), tmp_path / "out.mp4", plan, ffmpeg=FFMPEG,
            work_dir=tmp_path / "work", on_progress=lambda _p: None, should_stop=lambda: False,
        )  # fmt: skip
    assert ffmpeg_children() == []
