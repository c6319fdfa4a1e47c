"""Every kind of the format corpus (tests/corpus.py) through probe, plan, render and poster."""

from __future__ import annotations

from pathlib import Path

import pytest

from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import SourceInfo, plan_timelapse
from chalicelib.media.ffmpeg import ALLOWED_DEMUXERS
from chalicelib.media.probe import probe
from chalicelib.media.render import (
    RenderResult,
    build_render_command,
    make_poster,
    render_timelapse,
)
from tests.corpus import KINDS, Kind
from tests.support import FFMPEG, describe

LIMITS = Limits()
TARGET_SECONDS = 1.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("corpus")


def source_of(name: str, corpus: Path) -> tuple[Kind, Path]:
    kind = KINDS[name]
    return kind, kind.build(corpus)


def render(path: Path, out: Path) -> tuple[SourceInfo, RenderResult]:
    info = probe(str(path), ffmpeg=FFMPEG)
    plan = plan_timelapse(info, TARGET_SECONDS, LIMITS)
    result = render_timelapse(
        str(path), out, plan, ffmpeg=FFMPEG, work_dir=out.parent / "work",
        on_progress=lambda _: None, should_stop=lambda: False,
    )  # fmt: skip
    return info, result


@pytest.mark.parametrize("name", ["mts", "m2ts"])
def test_mpeg_ts_is_read_from_its_bytes(corpus: Path, name: str, tmp_path: Path) -> None:
    kind, path = source_of(name, corpus)
    # Given a camcorder file, stored under a name that says nothing (the key ends .bin)
    anonymous = tmp_path / "original.bin"
    anonymous.write_bytes(path.read_bytes())
    # Then the probe opens it with the mpegts demuxer and reads its length and picture
    info = probe(str(anonymous), ffmpeg=FFMPEG)
    assert info.format_name == "mpegts"
    assert (info.width, info.height) == kind.display
    assert info.duration_seconds == pytest.approx(kind.seconds, abs=0.1)
    assert (info.keyframe_count or 0) >= 3


def test_mpeg_ts_stays_the_only_new_demuxer() -> None:
    # HLS playlists, concat scripts and other text formats stay refused
    allowed = set(ALLOWED_DEMUXERS.split(","))
    assert "mpegts" in allowed
    assert not allowed & {"hls", "concat", "tty", "image2", "lavfi", "mpegtsraw", "dash"}


def test_a_browser_recording_states_no_length_yet_is_measured(corpus: Path) -> None:
    kind, path = source_of("browser-webm", corpus)
    # Given a WebM written as MediaRecorder writes it: no duration, no cues
    assert "Duration: N/A" in describe(str(path))
    # Then the probe learns its length and frame rate from the packets
    info = probe(str(path), ffmpeg=FFMPEG)
    assert info.duration_seconds == pytest.approx(kind.seconds, abs=0.1)
    assert info.fps == pytest.approx(30, abs=1)


def test_a_cut_browser_recording_is_measured_as_what_it_holds(corpus: Path, tmp_path: Path) -> None:
    # Given a recording whose last part never arrived (no index says what is missing)
    _, path = source_of("browser-webm", corpus)
    cut = tmp_path / "cut.webm"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    # Then its length is what its packets hold, and it renders
    info = probe(str(cut), ffmpeg=FFMPEG)
    assert 1.0 < info.duration_seconds < 3.5


@pytest.mark.parametrize("name", ["mts", "m2ts", "browser-webm"])
def test_renders_the_asked_length(corpus: Path, name: str, tmp_path: Path) -> None:
    kind, path = source_of(name, corpus)
    _, result = render(path, tmp_path / "out.mp4")
    assert result.duration_seconds == pytest.approx(TARGET_SECONDS, rel=0.1)
    assert (result.width, result.height) == kind.display
    make_poster(tmp_path / "out.mp4", tmp_path / "poster.jpg", ffmpeg=FFMPEG, at_seconds=0.5)
    assert (tmp_path / "poster.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_the_render_names_the_demuxer_the_probe_found(corpus: Path, tmp_path: Path) -> None:
    # Given an MPEG-TS renamed .mp4: the render opens it as the probe did, not by its name
    _, path = source_of("mts", corpus)
    renamed = tmp_path / "camera.mp4"
    renamed.write_bytes(path.read_bytes())
    plan = plan_timelapse(probe(str(renamed), ffmpeg=FFMPEG), TARGET_SECONDS, LIMITS)
    command = build_render_command(str(renamed), tmp_path / "out.mp4", plan, ffmpeg=FFMPEG)
    named = command.index("-f")
    assert command[named + 1] == "mpegts"
    assert named < command.index("-i")
