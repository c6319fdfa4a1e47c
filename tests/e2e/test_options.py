"""Timelapse options through the local stack (real HTTP, storage, queue, table, ffmpeg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Api
from tests.support import count_frames, describe, make_clip

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
