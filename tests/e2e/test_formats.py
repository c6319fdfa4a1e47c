"""Every kind of the format corpus end to end through the local stack, as a front end sends it.

All kinds are uploaded at once (a module fixture) with the content type and filename a browser or
camera gives them; each test then checks one: `complete`, the asked length (±10 %), the display
size and orientation the probe reported, the first frame upright (against the picture the source
shows), SDR BT.709, and a poster that is the timelapse's middle frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import output_size
from tests.corpus import KINDS, Kind, reference_frame
from tests.e2e.conftest import RunningStack
from tests.support import describe, psnr, rgb_pixels

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

TARGET_SECONDS = 1


@dataclass
class Done:
    kind: Kind
    record: dict[str, Any]
    video: Path
    poster: Path


def _download(url: str, path: Path) -> Path:
    answer = requests.get(url, timeout=60)
    assert answer.status_code == 200, answer.text
    path.write_bytes(answer.content)
    return path


@pytest.fixture(scope="module")
def rendered(stack: RunningStack, media: Path) -> dict[str, Done]:
    api = stack.api("camera-owner")
    folder = media / "formats"
    folder.mkdir(exist_ok=True)
    started: dict[str, str] = {}
    # When each kind is uploaded with the type and name a browser or camera gives it
    for kind in KINDS.values():
        path = kind.build(folder)
        created = api.submit(
            path, contentType=kind.content_type, filename=path.name, targetSeconds=TARGET_SECONDS
        )
        assert created["timelapse"]["originalVideoKey"].endswith(path.suffix.lower())
        started[kind.name] = created["timelapse"]["id"]
    done: dict[str, Done] = {}
    for name, timelapse_id in started.items():
        api.wait_for(timelapse_id, timeout=180)
        record = api.get(timelapse_id)
        if record["status"] != "complete":
            done[name] = Done(KINDS[name], record, Path(), Path())
            continue
        urls = record["urls"]
        video = _download(urls["video"], folder / f"{name}-timelapse.mp4")
        poster = _download(urls["poster"], folder / f"{name}-poster.jpg")
        done[name] = Done(KINDS[name], record, video, poster)
    return done


def _compare_size(kind: Kind) -> tuple[int, int]:
    width, height = kind.display
    return (40, 24) if width >= height else (24, 40)


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_kind_completes_upright_in_sdr_with_its_poster(
    rendered: dict[str, Done], name: str, tmp_path: Path
) -> None:
    done = rendered[name]
    kind, record = done.kind, done.record
    # Then it completes with the asked length
    assert record["status"] == "complete", record["error"]
    output = record["output"]
    assert output["durationSeconds"] == pytest.approx(TARGET_SECONDS, rel=0.1)
    # at the size and orientation it is shown at
    assert (output["width"], output["height"]) == output_size(
        *kind.display, Limits().output_max_side
    )
    source = record["source"]
    assert (source["width"], source["height"]) == kind.display
    assert (source["rotation"], source["mirrored"]) == (kind.rotation, kind.mirrored)
    assert source["hdr"] == kind.hdr
    # in SDR BT.709
    assert "yuv420p(tv, bt709, progressive)" in describe(str(done.video))
    # upright: the first frame is the picture the source shows, not a mirrored one
    size = _compare_size(kind)
    shown = rgb_pixels(reference_frame(kind, tmp_path / "shown.png"), size=size)
    upright = psnr(rgb_pixels(done.video, size=size), shown)
    assert upright >= (17 if kind.hdr else 30)  # HDR: as close as the tone map comes
    assert psnr(rgb_pixels(done.video, size=size, before="hflip,"), shown) < upright - 6
    # and the poster is the timelapse's middle frame, in a JPEG's colours
    middle = rgb_pixels(done.video, size=size, at_seconds=output["durationSeconds"] / 2)
    poster = rgb_pixels(done.poster, size=size, matrix="bt601", full_range=True)
    assert psnr(poster, middle) >= 30
