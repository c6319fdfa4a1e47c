"""Timelapse options through the local stack (real HTTP, storage, queue, table, ffmpeg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Api
from tests.support import count_frames, describe, ffmpeg, make_clip, psnr, rgb_pixels

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


@pytest.fixture(scope="module")
def clip_1080p(media: Path) -> Path:
    """8 s of 1080p30 with a keyframe a second."""
    return make_clip(media / "clip-1080p.mp4", seconds=8, size="1920x1080")


def _download(record: dict[str, Any], tmp_path: Path) -> Path:
    assert record["status"] == "complete", record
    path = tmp_path / f"{record['id']}.mp4"
    path.write_bytes(requests.get(record["urls"]["video"], timeout=60).content)
    return path


def test_fps_60_at_720p_keeps_the_asked_length(
    alice: Api, clip_1080p: Path, tmp_path: Path
) -> None:
    created = alice.submit(clip_1080p, targetSeconds=2, fps=60, resolution="720p")
    assert created["timelapse"]["options"]["fps"] == 60
    assert created["timelapse"]["options"]["resolution"] == "720p"

    done = alice.wait_for(created["timelapse"]["id"])
    video = _download(done, tmp_path)
    assert "1280x720" in describe(str(video))
    assert "60 fps" in describe(str(video))
    assert abs(count_frames(str(video)) - 120) <= 3
    output = done["output"]
    assert (output["width"], output["height"], output["fps"]) == (1280, 720, 60)
    assert output["durationSeconds"] == pytest.approx(2, abs=0.1)
    assert output["idleSecondsSkipped"] == 0
    assert done["options"] == {
        "fps": 60, "resolution": "720p", "skipIdle": False, "timestamp": False,
        "deflicker": False,
    }  # fmt: skip


def test_speed_gives_the_duration_over_the_speed(
    alice: Api, clip_1080p: Path, tmp_path: Path
) -> None:
    created = alice.submit(clip_1080p, speed=4)
    assert created["timelapse"]["speed"] == 4
    assert created["timelapse"]["targetSeconds"] is None

    done = alice.wait_for(created["timelapse"]["id"])
    video = _download(done, tmp_path)
    assert abs(count_frames(str(video)) - 60) <= 3  # 8 s / 4 = 2 s at 30 fps
    assert done["output"]["speedup"] == pytest.approx(4, rel=0.05)
    assert (done["output"]["width"], done["output"]["height"]) == (1920, 1080)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"speed": 30, "targetSeconds": 10}, "not both"),
        ({"fps": 29.97}, "fps must be one of"),
        ({"resolution": "8k"}, "resolution must be one of"),
        ({"skipIdle": "yes"}, "skipIdle must be true or false"),
    ],
)
def test_bad_options_answer_400_with_a_reason(
    alice: Api, fields: dict[str, Any], reason: str
) -> None:
    body = {"projectId": "p-e2e", "contentType": "video/mp4", "sizeBytes": 1000, **fields}
    answer = alice.request("POST", "/timelapses", json=body)
    assert answer.status_code == 400, answer.text
    assert reason in answer.json()["error"]["message"]


FONT = Path(__file__).resolve().parents[2] / "chalicelib" / "fonts" / "DejaVuSansMono-Bold.ttf"


def _screen_recording(path: Path, gop: int) -> Path:
    """10 minutes of a small screen recording: 2 min of activity, 6 min of a still page where
    only the cursor blinks, 2 min of activity; recorded at 14:03:27 UTC; a keyframe every `gop`
    frames (10 fps)."""
    still = (
        f"color=c=0xf0f0f0:size=320x180:rate=10:duration=360,"
        f"drawtext=fontfile={FONT}:text='def main()\\:':x=20:y=20:fontsize=12:fontcolor=black,"
        "drawbox=x=100:y=20:w=2:h=12:color=black:t=fill:enable='lt(mod(t\\,1.06)\\,0.53)'"
    )
    active = "testsrc2=size=320x180:rate=10:duration=120"
    ffmpeg(
        "-f", "lavfi", "-i", active, "-f", "lavfi", "-i", still, "-f", "lavfi", "-i", active,
        "-filter_complex", "[0][1][2]concat=n=3:v=1:a=0,format=yuv420p",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "30", "-g", str(gop),
        "-metadata", "creation_time=2026-11-29T14:03:27Z", str(path),
    )  # fmt: skip
    return path


@pytest.fixture(scope="module")
def screen_recording(media: Path) -> Path:
    """A keyframe a second: the worker reads it by "ranges"."""
    return _screen_recording(media / "screen-idle.mp4", gop=10)


@pytest.fixture(scope="module")
def screen_recording_long_gop(media: Path) -> Path:
    """A keyframe every 25 s: the worker must decode every frame ("decode_all")."""
    return _screen_recording(media / "screen-idle-gop250.mp4", gop=250)


@pytest.mark.parametrize("recording", ["screen_recording", "screen_recording_long_gop"])
def test_skip_idle_leaves_out_the_idle_stretch(
    alice: Api, recording: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    source: Path = request.getfixturevalue(recording)
    whole = alice.submit(source, speed=30)
    cut = alice.submit(source, speed=30, skipIdle=True)

    whole_done = alice.wait_for(whole["timelapse"]["id"])
    cut_done = alice.wait_for(cut["timelapse"]["id"])
    assert whole_done["output"]["durationSeconds"] == pytest.approx(20, abs=0.2)
    assert whole_done["output"]["idleSecondsSkipped"] == 0
    # 4 active minutes at speed 30 are 8 s; a third of a second of the idle stretch stays in.
    assert cut_done["output"]["durationSeconds"] == pytest.approx(8.4, abs=0.4)
    assert cut_done["output"]["idleSecondsSkipped"] == pytest.approx(350, abs=12)
    cut_video = _download(cut_done, tmp_path)
    assert abs(count_frames(str(cut_video)) - 252) <= 12
    # Tagged as every output is: SDR BT.709, square pixels
    for video in (cut_video, _download(whole_done, tmp_path)):
        assert "yuv420p(tv, bt709, progressive), 320x180 [SAR 1:1 DAR 16:9]" in describe(str(video))


def test_skip_idle_with_a_length_fills_it_with_the_active_parts(
    alice: Api, screen_recording: Path
) -> None:
    cut = alice.submit(screen_recording, targetSeconds=10, skipIdle=True)
    done = alice.wait_for(cut["timelapse"]["id"])
    assert done["status"] == "complete", done
    assert done["output"]["durationSeconds"] == pytest.approx(10, abs=0.2)
    assert done["output"]["idleSecondsSkipped"] == pytest.approx(350, abs=15)


def _corner(path: Path, at_seconds: float) -> bytes:
    """The bottom-left corner (where the timestamp goes) of one frame, grey, 64x16."""
    return rgb_pixels(path, size=(64, 16), at_seconds=at_seconds, before="crop=iw/2:ih/6:0:ih*5/6,")


def test_timestamp_and_deflicker_complete_and_stamp_the_corner(
    alice: Api, screen_recording: Path, tmp_path: Path
) -> None:
    plain = alice.submit(screen_recording, speed=30)
    stamped = alice.submit(screen_recording, speed=30, timestamp=True, deflicker=True)

    plain_video = _download(alice.wait_for(plain["timelapse"]["id"]), tmp_path)
    done = alice.wait_for(stamped["timelapse"]["id"])
    stamped_video = _download(done, tmp_path)
    assert done["options"]["timestamp"] is done["options"]["deflicker"] is True
    assert done["output"]["durationSeconds"] == pytest.approx(20, abs=0.2)
    # The idle page (output 6 s: source 180 s) is flat grey in the corner, unless stamped.
    assert psnr(_corner(plain_video, 6), _corner(stamped_video, 6)) < 25
    # Away from the corner the picture is the same.
    top = rgb_pixels(plain_video, size=(32, 9), at_seconds=6, before="crop=iw:ih/2:0:0,")
    assert (
        psnr(top, rgb_pixels(stamped_video, size=(32, 9), at_seconds=6, before="crop=iw:ih/2:0:0,"))
        > 30
    )
