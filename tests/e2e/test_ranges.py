"""An MP4 through the whole local stack renders by "ranges": only the kept keyframes' bytes are
read from the local storage (moto over HTTP, through the presigned URL the worker makes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import Api, RunningStack
from tests.support import count_frames, ffmpeg

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


@pytest.fixture(scope="module")
def recording(media: Path) -> Path:
    """40 s of noisy 640x360 (every frame costly, as from a camera; 34 MB), a keyframe a second."""
    path = media / "recording.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30,noise=alls=12:allf=t", "-t", "40",
        "-c:v", "libx264", "-preset", "ultrafast", "-crf", "25", "-pix_fmt", "yuv420p",
        "-g", "30", "-keyint_min", "30", "-sc_threshold", "0", str(path),
    )  # fmt: skip
    return path


def test_an_mp4_renders_by_ranges_reading_a_small_share_of_it(
    alice: Api, recording: Path, stack: RunningStack
) -> None:
    # Given a 40-second MP4 with a keyframe every second, uploaded for a 1-second timelapse
    size = recording.stat().st_size
    tid = alice.submit(recording, targetSeconds=1)["timelapse"]["id"]
    # When the worker renders it
    done = alice.wait_for(tid)
    # Then it is complete with the planned 30 frames, rendered by ranges
    assert done["status"] == "complete", done
    video = requests.get(done["urls"]["video"], timeout=30)
    assert video.status_code == 200
    out = recording.parent / f"{tid}.mp4"
    out.write_bytes(video.content)
    assert count_frames(str(out)) == 30
    rendered = [
        line
        for line in stack.log.read_text().splitlines()
        if f"timelapse_id={tid}" in line and " rendered " in line
    ]
    assert rendered, "no 'rendered' line for this timelapse"
    assert "plan=ranges" in rendered[-1], rendered[-1]
    # reading the index and 30 of the 40 keyframes: a small share of the file
    read = re.search(r"bytes_read=(\d+)", rendered[-1])
    requests_made = re.search(r"requests=(\d+)", rendered[-1])
    assert read is not None, rendered[-1]
    assert requests_made is not None, rendered[-1]
    assert int(read[1]) < 0.10 * size
    assert int(requests_made[1]) <= 40
