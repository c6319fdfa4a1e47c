"""Parts rendered with the real ffmpeg and joined: frame by frame, the joined timelapse is the
whole render — the planned frames, each source frame the whole render keeps, none repeated or lost
where two parts meet — for every strategy a part can use."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.domain.fanout import (
    PART_OVERHEAD_SECONDS,
    estimate_seconds,
    part_plan,
    split_render,
)
from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import plan_timelapse
from chalicelib.media.ffmpeg import locate_ffmpeg
from chalicelib.media.join import join_segments
from chalicelib.media.render import render_timelapse
from chalicelib.media.source import describe_source
from tests.framecode import expected_indices, frame_indices, make_indexed_clip

pytestmark = [pytest.mark.integration]

FFMPEG = locate_ffmpeg()
FPS = 30
SECONDS = 40


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """40 s at 30 fps, frames numbered: a keyframe every 250 frames (OBS's spacing: every frame
    decoded for a timelapse of 8 s) or every 30 (keyframes serve a timelapse of 1 s)."""
    folder = tmp_path_factory.mktemp("fanout-media")
    return {
        gop: make_indexed_clip(folder / f"indexed-{gop}.mp4", seconds=SECONDS, fps=FPS, gop=gop)
        for gop in (250, 30)
    }


def _parts_of(plan, info, keyframes):
    """The parts a budget gives that cuts the render in 3 to 6."""
    work = estimate_seconds(plan, info) - PART_OVERHEAD_SECONDS
    for lead in (0.0, 0.05, 0.1, 0.2):
        for share in (0.4, 0.3, 0.25, 0.2, 0.15):
            budget = PART_OVERHEAD_SECONDS + lead + work * share
            parts = split_render(plan, info, budget_seconds=budget, keyframes=keyframes)
            if 3 <= len(parts) <= 6:
                return parts
    raise AssertionError("no budget cuts this render in 3 to 6 parts")


def _render(source: str, out: Path, plan, described) -> int:
    result = render_timelapse(
        source,
        out,
        plan,
        ffmpeg=FFMPEG,
        work_dir=out.parent / f"work-{out.stem}",
        on_progress=lambda _p: None,
        should_stop=lambda: False,
        index=described.index,
    )
    return result.frame_count


@pytest.mark.parametrize(
    ("gop", "target", "strategy"),
    [(250, 8.0, "decode_all"), (30, 1.0, "ranges"), (30, 1.0, "keyframes")],
)
@pytest.mark.parametrize("aligned", [True, False])
def test_joined_parts_are_the_whole_render_frame_by_frame(
    clips: dict[int, Path], tmp_path: Path, gop: int, target: float, strategy: str, aligned: bool
) -> None:
    # Given a plan of the clip, and its parts as a short time limit would cut them
    clip = clips[gop]
    described = describe_source(str(clip), ffmpeg=FFMPEG)
    assert described.index is not None
    keyframes = [k.seconds for k in described.index.keyframes]
    plan = plan_timelapse(described.info, target, Limits(), indexed=strategy == "ranges")
    assert plan.strategy == strategy
    parts = _parts_of(plan, described.info, keyframes if aligned else None)
    # When each part is rendered on its own and the segments are joined
    folder = tmp_path / "segments"
    folder.mkdir()
    segments = []
    for number, part in enumerate(parts):
        segment = folder / f"part-{number:04d}.mp4"
        assert _render(str(clip), segment, part_plan(plan, part), described) == part.frame_count
        segments.append(segment)
    joined = join_segments(
        segments,
        tmp_path / "joined.mp4",
        durations=[part.frame_count / plan.output_fps for part in parts],
        ffmpeg=FFMPEG,
        should_stop=lambda: False,
    )
    whole = tmp_path / "whole.mp4"
    _render(str(clip), whole, plan, described)
    # Then the joined timelapse holds exactly the planned frames, the very ones the whole keeps
    assert joined.frame_count == plan.frame_count
    assert abs(joined.duration_seconds - plan.frame_count / plan.output_fps) < 0.05
    shown = frame_indices(tmp_path / "joined.mp4")
    assert shown == frame_indices(whole)
    assert len(shown) == plan.frame_count
    assert len(set(shown)) == len(shown)
    if strategy == "decode_all":
        assert shown == expected_indices(
            plan.frame_count, plan.sample_interval_seconds, FPS, SECONDS * FPS
        )
