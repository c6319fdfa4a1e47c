"""Every kind of the format corpus (tests/corpus.py) through probe, plan, render and poster."""

from __future__ import annotations

import itertools
import math
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from chalicelib.domain.limits import Limits
from chalicelib.domain.options import RenderOptions
from chalicelib.domain.plan import SourceInfo, Strategy, output_size, plan_timelapse
from chalicelib.errors import InvalidMediaError
from chalicelib.media.ffmpeg import ALLOWED_DEMUXERS
from chalicelib.media.idle_scan import render_skipping_idle
from chalicelib.media.probe import probe
from chalicelib.media.render import (
    RenderResult,
    build_render_command,
    make_poster,
    render_timelapse,
)
from chalicelib.media.source import describe_source
from tests.corpus import KINDS, Kind, h264, reference_frame, run
from tests.support import FFMPEG, describe, mean_level, psnr, rgb_pixels

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


# --- every kind: length, orientation, colours, poster ------------------------------------------


def compare_size(kind: Kind) -> tuple[int, int]:
    """Small enough to compare colours rather than edges (chroma subsampling smears those)."""
    width, height = kind.display
    return (40, 24) if width >= height else (24, 40)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_every_kind_renders_upright_in_bt709_with_its_poster(
    corpus: Path, name: str, tmp_path: Path
) -> None:
    kind, path = source_of(name, corpus)
    out, poster = tmp_path / "out.mp4", tmp_path / "poster.jpg"
    info, result = render(path, out)
    # The asked length, the display size (even sides), orientation as the probe reported it
    assert result.duration_seconds == pytest.approx(TARGET_SECONDS, rel=0.1)
    assert (result.width, result.height) == output_size(*kind.display, LIMITS.output_max_side)
    assert (info.rotation, info.mirrored) == (kind.rotation, kind.mirrored)
    assert ("hdr" if info.color.hdr else None) == ("hdr" if kind.hdr else None)
    # Tagged SDR BT.709
    assert "yuv420p(tv, bt709, progressive)" in describe(str(out))
    # Upright: the first frame is the picture the source shows, not a turned or mirrored one
    size = compare_size(kind)
    shown = rgb_pixels(reference_frame(kind, tmp_path / "shown.png"), size=size)
    first = rgb_pixels(out, size=size)
    upright = psnr(first, shown)
    # (HDR: what the tone map keeps of the SDR picture it was made from; SDR: all of it)
    assert upright >= (17 if kind.hdr else 30), upright
    for turned in ("hflip", "vflip"):
        assert psnr(rgb_pixels(out, size=size, before=f"{turned},"), shown) < upright - 6
    # The poster is the output's middle frame, read as a JPEG is read (BT.601 full range)
    make_poster(out, poster, ffmpeg=FFMPEG, at_seconds=TARGET_SECONDS / 2)
    middle = rgb_pixels(out, size=size, at_seconds=TARGET_SECONDS / 2)
    assert psnr(rgb_pixels(poster, size=size, matrix="bt601", full_range=True), middle) >= 30


# What the stream says of its pictures, as `ffmpeg -i` prints it: pixel format, range, colour
# matrix/primaries/transfer (one name when all three agree), scan, size, aspect ratios.
_PICTURE_TAGS = re.compile(r"Video: h264 [^,]*, (yuv420p\([^)]*\), \d+x\d+(?: \[SAR [^]]*\])?)")


def picture_tags(path: Path) -> str:
    found = _PICTURE_TAGS.search(describe(str(path)))
    assert found, describe(str(path))
    return found.group(1)


@pytest.mark.parametrize(
    ("name", "strategy"),
    [
        ("mp4", "decode_all"),
        ("mp4", "keyframes"),
        ("pq", "decode_all"),
        ("hlg-portrait", "keyframes"),
    ],
)
def test_skip_idle_with_a_speed_is_tagged_as_every_render(
    corpus: Path, name: str, strategy: Strategy, tmp_path: Path
) -> None:
    # Given a clip rendered as usual (a length), tagged SDR BT.709 with square pixels
    kind, path = source_of(name, corpus)
    render(path, tmp_path / "plain.mp4")
    width, height = output_size(*kind.display, LIMITS.output_max_side)
    common = math.gcd(width, height)
    assert picture_tags(tmp_path / "plain.mp4") == (
        f"yuv420p(tv, bt709, progressive), {width}x{height}"
        f" [SAR 1:1 DAR {width // common}:{height // common}]"
    )
    # When it is rendered skipping idle stretches at a speed (its own decode and encode)
    found = describe_source(str(path), ffmpeg=FFMPEG)
    plan = plan_timelapse(found.info, None, LIMITS, speed=2, options=RenderOptions(skip_idle=True))
    render_skipping_idle(
        str(path), tmp_path / "skipping.mp4", replace(plan, strategy=strategy), ffmpeg=FFMPEG,
        work_dir=tmp_path / "work", on_progress=lambda _: None, should_stop=lambda: False,
    )  # fmt: skip
    # Then its output says the same of its pictures
    assert picture_tags(tmp_path / "skipping.mp4") == picture_tags(tmp_path / "plain.mp4")


@pytest.mark.parametrize("name", ["hlg-portrait", "pq"])
def test_hdr_is_tone_mapped_close_to_the_sdr_picture(
    corpus: Path, name: str, tmp_path: Path
) -> None:
    # Given an HDR clip made from an SDR picture placed at HDR reference white (BT.2408)
    kind, path = source_of(name, corpus)
    size = compare_size(kind)
    sdr = rgb_pixels(reference_frame(kind, tmp_path / "sdr.png"), size=size)
    # When it is rendered
    render(path, tmp_path / "out.mp4")
    first = rgb_pixels(tmp_path / "out.mp4", size=size)
    # Then the output's colours are close to that SDR picture, its brightness within 6 %
    assert psnr(first, sdr) >= 17
    assert mean_level(first) == pytest.approx(mean_level(sdr), rel=0.06)
    # While the HDR pixels shown as they are (a player ignoring the tags) are far off
    assert psnr(rgb_pixels(path, size=size), sdr) <= 12
    # And the pipeline adds nothing to the tone map: the first frame tone-mapped directly by ffmpeg
    direct = tmp_path / "direct.png"
    run(
        "-i", str(path), "-frames:v", "1", "-vf",
        "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=mobius:desat=0,"
        "zscale=t=bt709:m=bt709:r=full,format=rgb24",
        str(direct),
    )  # fmt: skip
    assert psnr(first, rgb_pixels(direct, size=size)) >= 30


@pytest.mark.parametrize("name", ["mp4", "mjpeg-avi", "prores", "browser-webm"])
def test_sdr_colours_are_converted_to_bt709(corpus: Path, name: str, tmp_path: Path) -> None:
    # Given SD sources in BT.601 (untagged SD is BT.601, as players read it; MJPEG full range)
    kind, path = source_of(name, corpus)
    size = compare_size(kind)
    full = kind.name == "mjpeg-avi"
    render(path, tmp_path / "out.mp4")
    first = rgb_pixels(tmp_path / "out.mp4", size=size)
    # Then the BT.709 output shows the colours the source shows, and not the misread ones
    assert psnr(first, rgb_pixels(path, size=size, matrix="bt601", full_range=full)) >= 35
    assert psnr(first, rgb_pixels(path, size=size, matrix="bt709", full_range=full)) < 30


@pytest.mark.parametrize(
    ("rotation", "mirrored"), list(itertools.product((0, 90, 180, 270), (False, True)))
)
def test_every_display_matrix_is_probed_and_shown_upright(
    rotation: int, mirrored: bool, tmp_path: Path
) -> None:
    # Given a clip whose display matrix turns (and mirrors) the stored picture upright
    display = (256, 144) if rotation in (0, 180) else (144, 256)
    kind = Kind(
        "turned", "turned.mp4", "video/mp4", "", display, h264(), rotation=rotation,
        mirrored=mirrored, seconds=2,
    )  # fmt: skip
    path = kind.build(tmp_path)
    # Then the probe says how, and the output and poster show it upright
    info, _ = render(path, tmp_path / "out.mp4")
    assert (info.rotation, info.mirrored) == (rotation, mirrored)
    assert (info.display_width, info.display_height) == display
    size = (32, 18) if rotation in (0, 180) else (18, 32)
    shown = rgb_pixels(reference_frame(kind, tmp_path / "shown.png"), size=size)
    assert psnr(rgb_pixels(tmp_path / "out.mp4", size=size), shown) >= 25
    make_poster(tmp_path / "out.mp4", tmp_path / "p.jpg", ffmpeg=FFMPEG, at_seconds=0)
    poster = rgb_pixels(tmp_path / "p.jpg", size=size, matrix="bt601", full_range=True)
    assert psnr(poster, shown) >= 25


def test_the_bundled_ffmpeg_has_what_the_formats_need() -> None:
    # The Lambda layer ships this very binary (layers/ffmpeg): a build without zimg would fail
    # every HDR source, one without these decoders the kinds above
    def listed(option: str) -> str:
        return subprocess.run(
            [FFMPEG, "-hide_banner", option], capture_output=True, text=True, check=True
        ).stdout

    filters, demuxers, decoders = listed("-filters"), listed("-demuxers"), listed("-decoders")
    for name in ("zscale", "tonemap", "transpose", "hflip", "vflip"):
        assert f" {name} " in filters, name
    for name in ("mpegts", "matroska,webm", "avi", "mov,mp4,m4a,3gp,3g2,mj2"):
        assert f" {name} " in demuxers, name
    for name in ("h264", "hevc", "vp8", "vp9", "prores", "mjpeg", "av1"):
        assert f" {name} " in decoders, name


def test_the_orientation_pass_decodes_no_frame_beyond_the_limit(tmp_path: Path) -> None:
    # Given one 8192x8192 frame (67 Mpixel, over the 8K limit) behind a mirrored display matrix
    huge = tmp_path / "huge.mp4"
    run(
        "-f", "lavfi", "-i", "color=c=black:size=8192x8192:rate=1", "-frames:v", "1",
        "-c:v", "libx264", "-preset", "ultrafast", "-qp", "51", "-level", "6.2",
        "-pix_fmt", "yuv420p", str(tmp_path / "stored.mp4"),
    )  # fmt: skip
    run("-display_rotation", "90", "-display_hflip", "-i", str(tmp_path / "stored.mp4"),
        "-c", "copy", str(huge))  # fmt: skip
    # Then the probe does not decode it to learn the mirror (the summary's angle stands)
    info = probe(str(huge), ffmpeg=FFMPEG)
    assert (info.rotation, info.mirrored) == (270, False)
    # and the plan refuses it with a reason
    with pytest.raises(InvalidMediaError, match="8192x8192"):
        plan_timelapse(info, TARGET_SECONDS, LIMITS)
