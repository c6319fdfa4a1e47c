"""The render engine against real ffmpeg, on small clips generated with lavfi's testsrc2."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.range_server import serve_directory
from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import RenderPlan, Strategy, plan_timelapse
from chalicelib.errors import DeadlineExceeded, InvalidMediaError, RenderCancelled
from chalicelib.media.ffmpeg import locate_ffmpeg
from chalicelib.media.probe import probe
from chalicelib.media.render import RenderResult, make_poster, render_timelapse
from lapse_cli.main import main

LIMITS = Limits()
FFMPEG = locate_ffmpeg(os.environ.get("LAPSE_FFMPEG"))


def make_clip(
    path: Path,
    *,
    size: str = "320x180",
    seconds: float = 4,
    gop: int = 30,
    extra_in: list[str] | None = None,
    extra_out: list[str] | None = None,
) -> Path:
    command = [
        FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error",
        *(extra_in or []),
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac",
        *(extra_out or ["-pix_fmt", "yuv420p"]),
        *fixed_keyframes(gop, x264="libvpx-vp9" not in (extra_out or [])),
        str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=60)
    return path


def lavfi_clip(path: Path, graph: str, *output: str) -> Path:
    """`graph` (a lavfi source and filters) encoded to `path` with x264, no audio."""
    command = [
        FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-f", "lavfi", "-i", graph,
        *output, "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=60)
    return path


def fixed_keyframes(gop: int, *, x264: bool = True) -> list[str]:
    """A keyframe every `gop` frames exactly: no scene-cut keyframes, which x264 puts on
    testsrc2's moving pattern at will (a 20 s clip probed 24 keyframes instead of 16)."""
    args = ["-g", str(gop), "-keyint_min", str(gop)]
    if x264:
        args += ["-sc_threshold", "0", "-x264-params", f"scenecut=0:keyint={gop}:min-keyint={gop}"]
    return args


def rotate(source: Path, path: Path, *, degrees: int) -> Path:
    """Tag `source` with a display matrix (counter-clockwise `degrees`) without re-encoding."""
    subprocess.run(
        [FFMPEG, "-nostdin", "-y", "-loglevel", "error", "-display_rotation", str(degrees),
         "-i", str(source), "-c", "copy", str(path)],
        check=True, timeout=60,
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "plain": make_clip(root / "plain.mp4", seconds=20, gop=15),
        "short": make_clip(root / "short.mp4", seconds=5),
        "rotated": rotate(make_clip(root / "upright.mp4"), root / "rotated.mp4", degrees=90),
        "odd": make_clip(
            root / "odd.mkv", size="853x481", extra_out=["-pix_fmt", "yuv444p"], seconds=3
        ),
        "big": make_clip(root / "big.mp4", size="2560x1440", seconds=2),
        "long_gop": make_clip(root / "long_gop.mp4", seconds=10, gop=1000),
        "webm": make_clip(root / "clip.webm", seconds=3, extra_out=["-c:v", "libvpx-vp9",
                          "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus"]),
    }  # fmt: skip


@pytest.fixture
def work_dir(tmp_path: Path) -> Path:
    return tmp_path / "work"


def planned(source: Path | str, target: float, strategy: Strategy | None = None) -> RenderPlan:
    """The planner's plan, or the same plan with `strategy` forced."""
    plan = plan_timelapse(probe(str(source), ffmpeg=FFMPEG), target, LIMITS)
    if strategy is None or strategy == plan.strategy:
        return plan
    return dataclasses.replace(
        plan, strategy=strategy, x264_params="" if strategy == "decode_all" else "bframes=0"
    )


def render(
    source: Path | str,
    out: Path,
    target: float,
    work_dir: Path,
    strategy: Strategy | None = None,
    **kw: object,
) -> RenderResult:
    plan = planned(source, target, strategy)
    progress: list[int] = []
    result = render_timelapse(
        str(source), out, plan, ffmpeg=FFMPEG, work_dir=work_dir,
        on_progress=progress.append, should_stop=lambda: False, **kw,  # type: ignore[arg-type]
    )  # fmt: skip
    assert progress == sorted(progress)
    assert progress[-1] == 100
    return result


def ssim(a: Path, b: Path) -> float:
    completed = subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-i", str(a), "-i", str(b), "-lavfi", "[0][1]ssim",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    line = next(x for x in completed.stderr.splitlines() if "SSIM" in x and "All:" in x)
    return float(line.split("All:")[1].split()[0])


def ffmpeg_children() -> list[str]:
    """ffmpeg processes this test process started and has not reaped."""
    found: list[str] = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for child in (task / "children").read_text().split():
            comm = Path(f"/proc/{child}/comm")
            if comm.exists() and "ffmpeg" in comm.read_text():
                found.append(child)
    return found


def test_probe_reads_size_rate_duration_codec_and_keyframes(clips: dict[str, Path]):
    info = probe(str(clips["plain"]), ffmpeg=FFMPEG)

    assert (info.width, info.height, info.rotation) == (320, 180, 0)
    assert info.fps == pytest.approx(30)
    assert info.duration_seconds == pytest.approx(20, abs=0.1)
    assert info.codec == "h264"
    assert info.format_name.startswith("mov,mp4")
    assert info.size_bytes == clips["plain"].stat().st_size
    assert info.keyframe_interval_seconds == pytest.approx(0.5)
    assert info.keyframe_count == 16


def test_probe_reports_the_display_rotation(clips: dict[str, Path]):
    info = probe(str(clips["rotated"]), ffmpeg=FFMPEG)

    assert info.rotation == 270
    assert (info.display_width, info.display_height) == (180, 320)


def test_a_long_gop_has_one_keyframe_and_decodes_everything(clips: dict[str, Path]):
    info = probe(str(clips["long_gop"]), ffmpeg=FFMPEG)

    assert info.keyframe_count == 1
    assert plan_timelapse(info, 1, LIMITS).strategy == "decode_all"


def test_keyframes_strategy_renders_the_planned_frames(clips: dict[str, Path], tmp_path: Path):
    info = probe(str(clips["plain"]), ffmpeg=FFMPEG)
    assert plan_timelapse(info, 1, LIMITS).strategy == "keyframes"

    result = render(clips["plain"], tmp_path / "out.mp4", 1, tmp_path / "w")

    assert result.frame_count == 30
    assert result.duration_seconds == pytest.approx(1.0, abs=0.05)
    assert (result.width, result.height, result.fps) == (320, 180, 30)
    assert result.size_bytes == (tmp_path / "out.mp4").stat().st_size


def test_a_five_second_clip_with_a_thirty_second_target_stays_five_seconds(
    clips: dict[str, Path], tmp_path: Path
):
    result = render(clips["short"], tmp_path / "out.mp4", 30, tmp_path / "w")

    assert result.frame_count == 150
    assert result.duration_seconds == pytest.approx(5.0, abs=0.05)


def test_a_jittered_variable_frame_rate_source_keeps_the_asked_length(tmp_path: Path):
    # Given 10 s of 30 fps whose frames arrive up to 12 ms early or late, as a browser's
    # MediaRecorder or a phone writes them, asked as 7.5 s: windows of 44 ms, some of which hold
    # no frame (two frames 57 ms apart)
    source = lavfi_clip(
        tmp_path / "jittered.mp4",
        "testsrc2=size=320x180:rate=30:duration=10,setpts='(N/30+0.012*sin(N*2.3))/TB'",
        "-fps_mode",
        "passthrough",
    )
    assert planned(source, 7.5).strategy == "decode_all"

    result = render(source, tmp_path / "out.mp4", 7.5, tmp_path / "w")

    # Then every window gives a frame (an empty one repeats the frame before): 225 frames, not
    # the ~170 the windows with a frame of their own hold
    assert result.frame_count == 225
    assert result.duration_seconds == pytest.approx(7.5, abs=0.05)


def test_a_source_with_fewer_frames_than_the_length_asks_keeps_the_asked_length(tmp_path: Path):
    # Given 4 s at 25 fps (100 frames) asked as a 4-s timelapse at 30 fps (120 frames)
    source = lavfi_clip(tmp_path / "pal.mp4", "testsrc2=size=320x180:rate=25:duration=4")

    result = render(source, tmp_path / "out.mp4", 4, tmp_path / "w")

    # Then it lasts 4 s (one frame in six shown twice), not 100 frames played 20 % fast
    assert result.frame_count == 120
    assert result.duration_seconds == pytest.approx(4.0, abs=0.05)


def test_rotation_is_applied(clips: dict[str, Path], tmp_path: Path):
    result = render(clips["rotated"], tmp_path / "out.mp4", 2, tmp_path / "w")

    assert (result.width, result.height) == (180, 320)
    assert probe(str(tmp_path / "out.mp4"), ffmpeg=FFMPEG).rotation == 0


def test_odd_sizes_render_even(clips: dict[str, Path], tmp_path: Path):
    result = render(clips["odd"], tmp_path / "out.mp4", 1, tmp_path / "w")

    assert (result.width, result.height) == (852, 480)


def test_large_frames_are_scaled_to_1920(clips: dict[str, Path], tmp_path: Path):
    result = render(clips["big"], tmp_path / "out.mp4", 1, tmp_path / "w")

    assert (result.width, result.height) == (1920, 1080)


def test_webm_renders(clips: dict[str, Path], tmp_path: Path):
    result = render(clips["webm"], tmp_path / "out.mp4", 1, tmp_path / "w")

    assert result.frame_count == 30


def test_output_is_h264_yuv420p_faststart_without_audio(clips: dict[str, Path], tmp_path: Path):
    out = tmp_path / "out.mp4"
    render(clips["plain"], out, 2, tmp_path / "w")

    described = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", str(out)], capture_output=True, text=True, check=False
    ).stderr
    assert "Video: h264" in described
    assert "yuv420p" in described
    assert "Audio" not in described
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head


def test_poster_is_a_jpeg_from_the_output(clips: dict[str, Path], tmp_path: Path):
    out = tmp_path / "out.mp4"
    result = render(clips["plain"], out, 2, tmp_path / "w")

    make_poster(out, tmp_path / "poster.jpg", ffmpeg=FFMPEG, at_seconds=result.duration_seconds / 2)

    assert (tmp_path / "poster.jpg").read_bytes()[:2] == b"\xff\xd8"


def test_reads_a_url_with_range_requests(clips: dict[str, Path], tmp_path: Path):
    with serve_directory(clips["plain"].parent) as (base, counter):
        result = render(f"{base}/plain.mp4", tmp_path / "out.mp4", 1, tmp_path / "w")

    assert result.frame_count == 30
    assert counter.requests >= 1


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("playlist.mp4", b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n"),
        ("concat.mp4", b"ffconcat version 1.0\nfile /etc/passwd\n"),
        ("text.mp4", b"hello, this is not a video\n" * 50),
        ("empty.mp4", b""),
    ],
)
def test_non_videos_are_refused(tmp_path: Path, name: str, content: bytes):
    (tmp_path / name).write_bytes(content)

    with pytest.raises(InvalidMediaError):
        probe(str(tmp_path / name), ffmpeg=FFMPEG)


def test_audio_only_is_refused(tmp_path: Path):
    audio = tmp_path / "audio.mp4"
    subprocess.run(
        [FFMPEG, "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i", "sine=duration=2",
         "-c:a", "aac", str(audio)],
        check=True,
    )  # fmt: skip

    with pytest.raises(InvalidMediaError, match="no video"):
        probe(str(audio), ffmpeg=FFMPEG)


def test_truncated_video_is_refused(clips: dict[str, Path], tmp_path: Path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clips["plain"].read_bytes()[:100_000])  # moov sits at the end

    with pytest.raises(InvalidMediaError):
        probe(str(broken), ffmpeg=FFMPEG)


@pytest.fixture
def slow_plan(clips: dict[str, Path]) -> Iterator[object]:
    info = probe(str(clips["plain"]), ffmpeg=FFMPEG)
    return plan_timelapse(info, 20, LIMITS)  # type: ignore[return-value]


def test_cancel_kills_ffmpeg(clips: dict[str, Path], tmp_path: Path, slow_plan):
    calls = iter([False, True])

    with pytest.raises(RenderCancelled):
        render_timelapse(
            str(clips["plain"]), tmp_path / "out.mp4", slow_plan, ffmpeg=FFMPEG,
            work_dir=tmp_path / "w", on_progress=lambda _: None,
            should_stop=lambda: next(calls, True),
        )  # fmt: skip

    assert ffmpeg_children() == []


def test_deadline_kills_ffmpeg_with_a_clear_message(
    clips: dict[str, Path], tmp_path: Path, slow_plan
):
    started = time.monotonic()

    with pytest.raises(DeadlineExceeded, match="too long"):
        render_timelapse(
            str(clips["plain"]), tmp_path / "out.mp4", slow_plan, ffmpeg=FFMPEG,
            work_dir=tmp_path / "w", on_progress=lambda _: None, should_stop=lambda: False,
            deadline=time.monotonic() + 0.1,
        )  # fmt: skip

    assert time.monotonic() - started < 5
    assert ffmpeg_children() == []


def test_cli_renders_a_timelapse_and_poster(clips: dict[str, Path], tmp_path: Path, capsys):
    code = main(
        ["render", str(clips["plain"]), "-o", str(tmp_path / "cli.mp4"), "--target-seconds", "1",
         "--poster", str(tmp_path / "cli.jpg"), "--quiet"]
    )  # fmt: skip

    assert code == 0
    assert "30 frames" in capsys.readouterr().out
    assert (tmp_path / "cli.jpg").exists()


def test_cli_explains_a_refusal(tmp_path: Path, capsys):
    (tmp_path / "notes.mp4").write_text("not a video")

    assert main(["render", str(tmp_path / "notes.mp4"), "-o", str(tmp_path / "o.mp4")]) == 1
    assert "not a video" in capsys.readouterr().err
