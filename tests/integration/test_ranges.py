"""The "ranges" strategy against real ffmpeg and a real range-serving HTTP server.

It must give the very pictures the "keyframes" path gives (ffmpeg streaming the file and decoding
keyframes only), upright, in the planned number, while reading only the kept keyframes' bytes;
and it must stop at once when cancelled, and fail with a reason when the source cannot be read.
"""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from pathlib import Path

import pytest

from bench.range_server import ByteCounter, Network, serve_directory
from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import RenderPlan, plan_timelapse
from chalicelib.errors import DeadlineExceeded, RenderCancelled, RenderError
from chalicelib.media.keyframe_fetch import choose_keyframes, plan_reads
from chalicelib.media.mp4index import Keyframe, VideoIndex
from chalicelib.media.render import RenderResult, render_timelapse
from chalicelib.media.source import DescribedSource, describe_source
from tests.support import FFMPEG

LIMITS = Limits()
# A keyframe every 8 frames: a 1-second timelapse (30 frames) of 10 s keeps every third or so.
GOP = ["-g", "8", "-keyint_min", "8", "-sc_threshold", "0"]
SOURCE = ["-f", "lavfi", "-t", "10", "-i", "testsrc2=size=320x180:rate=30"]
AUDIO = ["-f", "lavfi", "-t", "10", "-i", "sine", "-c:a", "aac"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", *GOP]
X265 = ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
X265_GOP = "keyint=8:min-keyint=8:scenecut=0:log-level=error"
CLIPS: dict[str, list[str]] = {
    "plain.mp4": [*SOURCE, *AUDIO, *X264],
    "bframes.mp4": [*SOURCE, *AUDIO, *X264, "-bf", "2", "-x264-params", "bframes=2"],
    "hevc.mp4": [*SOURCE, *X265, "-x265-params", f"{X265_GOP}:bframes=0"],
    "hevc_bframes.mp4": [*SOURCE, *X265, "-x265-params", f"{X265_GOP}:bframes=3"],
    "fragmented.mp4": [*SOURCE, *X264, "-movflags", "+frag_keyframe+empty_moov"],
    "faststart.mov": [*SOURCE, *X264, "-movflags", "+faststart"],
    # Noise makes every frame costly, as in a camera recording: keyframes are a small share.
    "noisy.mp4": [
        "-f", "lavfi", "-t", "20", "-i", "testsrc2=size=320x180:rate=30,noise=alls=30:allf=t",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-g", "30", "-keyint_min", "30", "-sc_threshold", "0",
    ],
}  # fmt: skip


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ranges")
    for name, args in CLIPS.items():
        _ffmpeg(*args, str(folder / name))
    _ffmpeg("-display_rotation", "90", "-i", str(folder / "plain.mp4"), "-c", "copy",
            str(folder / "portrait.mp4"))  # fmt: skip
    return folder


def described(path: Path | str) -> tuple[DescribedSource, RenderPlan]:
    found = describe_source(str(path), ffmpeg=FFMPEG)
    plan = plan_timelapse(found.info, 1, LIMITS, indexed=found.index is not None)
    return found, plan


def every_other_keyframe(found: DescribedSource) -> RenderPlan:
    """10 frames from the noisy 20-second clip (a keyframe each second): one keyframe in two."""
    return dataclasses.replace(
        plan_timelapse(found.info, 1, LIMITS, indexed=True),
        strategy="ranges",
        frame_count=10,
        sample_interval_seconds=2.0,
    )


def render(
    source: Path | str,
    out: Path,
    plan: RenderPlan,
    index: VideoIndex | None,
    *,
    should_stop: object = None,
    deadline: float | None = None,
) -> RenderResult:
    progress: list[int] = []
    result = render_timelapse(
        str(source), out, plan, ffmpeg=FFMPEG, work_dir=out.parent / f"{out.stem}-work",
        on_progress=progress.append, deadline=deadline,
        should_stop=should_stop if callable(should_stop) else (lambda: False),
        index=index,
    )  # fmt: skip
    assert progress == sorted(progress)
    return result


@pytest.mark.parametrize(
    "name", ["plain.mp4", "hevc.mp4", "fragmented.mp4", "faststart.mov", "portrait.mp4"]
)
def test_ranges_gives_the_pictures_of_the_keyframes_path(
    clips: Path, tmp_path: Path, name: str
) -> None:
    # Given an H.264/HEVC MP4 or MOV whose keyframes are close enough for a 1-second timelapse
    found, plan = described(clips / name)
    assert found.index is not None
    assert plan.strategy == "ranges"
    # When it is rendered by ranges, and by ffmpeg streaming its keyframes
    ranged = render(clips / name, tmp_path / "ranges.mp4", plan, found.index)
    streamed = render(
        clips / name, tmp_path / "keyframes.mp4", dataclasses.replace(plan, strategy="keyframes"),
        None,
    )  # fmt: skip
    # Then both hold the planned frames, upright, and the very same pictures
    assert ranged.frame_count == streamed.frame_count == plan.frame_count
    upright = (180, 320) if name == "portrait.mp4" else (320, 180)
    assert (ranged.width, ranged.height) == (streamed.width, streamed.height) == upright
    assert frame_hashes(tmp_path / "ranges.mp4") == frame_hashes(tmp_path / "keyframes.mp4")


@pytest.mark.parametrize("name", ["bframes.mp4", "hevc_bframes.mp4"])
def test_with_b_frames_ranges_decodes_the_same_keyframes(
    clips: Path, tmp_path: Path, name: str
) -> None:
    """With B-frames, ffmpeg's keyframes-only decode stamps a keyframe with a neighbour's time
    (the reorder delay pairs pictures with the wrong packets' timestamps), so its windows may
    keep another keyframe than the index's true times say. Keeping every keyframe takes timing
    out: then both must give the very same pictures."""
    found, plan = described(clips / name)
    assert found.index is not None
    every = dataclasses.replace(
        plan, frame_count=len(found.index.keyframes), sample_interval_seconds=0.01
    )
    ranged = render(clips / name, tmp_path / "ranges.mp4", every, found.index)
    streamed = render(
        clips / name, tmp_path / "keyframes.mp4", dataclasses.replace(every, strategy="keyframes"),
        None,
    )  # fmt: skip
    assert ranged.frame_count == streamed.frame_count == len(found.index.keyframes)
    assert frame_hashes(tmp_path / "ranges.mp4") == frame_hashes(tmp_path / "keyframes.mp4")
    # and with the planned sampling, ranges keeps the planned count from the true times
    assert render(clips / name, tmp_path / "planned.mp4", plan, found.index).frame_count == 30


def test_ranges_reads_only_the_kept_keyframes_over_http(clips: Path, tmp_path: Path) -> None:
    # Given a noisy 20-second clip (every frame costly) behind a counting range server
    size = (clips / "noisy.mp4").stat().st_size
    with serve_directory(clips) as (base, counter):
        url = f"{base}/noisy.mp4"
        # When it is described and rendered into a 10-frame timelapse (one keyframe in two)
        found = describe_source(url, ffmpeg=FFMPEG)
        plan = every_other_keyframe(found)
        counter.reset()
        result = render(url, tmp_path / "out.mp4", plan, found.index)
        # Then it read the ten keyframes and nothing more, in at most one request each
        assert result.frame_count == 10
        assert found.index is not None
        kept = choose_keyframes(found.index.keyframes, plan)
        assert sent(counter, sum(k.size for k in kept)) == result.source_bytes_read
        assert result.source_bytes_read == sum(k.size for k in kept)
        assert counter.requests == result.source_requests
        assert counter.requests <= 10
        assert counter.bytes_sent < 0.1 * size


def test_neighbouring_keyframes_are_read_together() -> None:
    keyframes = [Keyframe(i * 1.0, 1000 + i * 50_000, 10_000) for i in range(10)]
    far = [Keyframe(i * 1.0, i * 10_000_000, 10_000) for i in range(3)]

    assert len(plan_reads(keyframes)) == 1  # 40 KB gaps: one read of 460 KB
    assert [len(r.keyframes) for r in plan_reads(far)] == [1, 1, 1]
    assert plan_reads(keyframes)[0].length == 9 * 50_000 + 10_000


def test_a_cancel_stops_ffmpeg_and_the_fetch_threads_within_a_second(
    clips: Path, tmp_path: Path
) -> None:
    # Given a slow link (0.3 s to each first byte, 200 kB/s), so reads are in flight when cancelled
    found = describe_source(str(clips / "noisy.mp4"), ffmpeg=FFMPEG)
    plan = every_other_keyframe(found)
    stop = threading.Event()
    cancelled_at: list[float] = []

    def cancel() -> None:
        cancelled_at.append(time.monotonic())
        stop.set()

    with serve_directory(clips, Network(0.3, 200_000)) as (base, _):
        threading.Timer(0.3, cancel).start()
        # When the job is cancelled while its first reads are in flight
        with pytest.raises(RenderCancelled):
            render(f"{base}/noisy.mp4", tmp_path / "out.mp4", plan, found.index,
                   should_stop=stop.is_set)  # fmt: skip
        # Then the render ends within a second (a little more on a loaded machine), ffmpeg is
        # gone, and the fetch threads let go within a chunk's time
        assert time.monotonic() - cancelled_at[0] < 1.5
        assert not _ffmpeg_children()
        deadline = time.monotonic() + 1.5
        while _fetch_threads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _fetch_threads()


def _fetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("lapse-range")]


def test_the_deadline_stops_a_ranged_render(clips: Path, tmp_path: Path) -> None:
    found, plan = described(clips / "bframes.mp4")
    with pytest.raises(DeadlineExceeded):
        render(clips / "bframes.mp4", tmp_path / "out.mp4", plan, found.index,
               deadline=time.monotonic())  # fmt: skip


def test_an_unreadable_source_fails_with_a_reason(clips: Path, tmp_path: Path) -> None:
    found, plan = described(clips / "bframes.mp4")
    data = (clips / "bframes.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 3])
    with serve_directory(tmp_path) as (base, _):
        # the object is gone: storage answers 404, which no retry mends
        with pytest.raises(RenderError, match="HTTP 404"):
            render(f"{base}/gone.mp4", tmp_path / "a.mp4", plan, found.index)
        # the object lost its end since it was described: the pictures there cannot be read
        with pytest.raises(RenderError, match="ended inside a picture"):
            render(f"{base}/cut.mp4", tmp_path / "b.mp4", plan, found.index)


# --- helpers -------------------------------------------------------------------------------------


def sent(counter: ByteCounter, expected: int) -> int:
    """The server's count once it has caught up (it counts after each write returns, so the
    client may hold the bytes a moment before the count does)."""
    deadline = time.monotonic() + 2
    while counter.bytes_sent < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return counter.bytes_sent


def frame_hashes(path: Path) -> list[str]:
    """The MD5 of every decoded frame of `path`."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-v", "error", "-i", str(path), "-map", "0:v:0",
         "-f", "framemd5", "-"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return [line.split(",")[-1].strip() for line in result.stdout.splitlines() if line[:1] != "#"]


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args],
        check=True,
        timeout=120,
    )


def _ffmpeg_children() -> list[str]:
    """ffmpeg processes started by this test process that still run."""
    import os  # noqa: PLC0415

    mine = str(os.getpid())
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:
            continue
        if fields.get("PPid", "").strip() == mine and "ffmpeg" in fields.get("Name", ""):
            found.append(status.parent.name)
    return found
