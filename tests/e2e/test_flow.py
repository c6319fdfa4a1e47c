"""The product as a front end drives it: create, upload straight to storage, poll, play."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Api
from tests.support import count_frames, describe

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def _check_timelapse(record: dict[str, Any], tmp_path: Path, *, expected_seconds: float) -> None:
    """Download the result through its presigned URL and check it with ffmpeg."""
    assert record["status"] == "complete", record
    tid = record["id"]
    assert record["videoKey"] == f"timelapses/{tid}.mp4" == record["processedVideoKey"]
    assert record["posterKey"] == f"posters/{tid}.jpg"
    assert record["progress"] == 100
    assert record["stage"] is None
    assert record["error"] is None

    video = requests.get(record["urls"]["video"], timeout=60)
    assert video.status_code == 200
    assert video.headers["x-amz-meta-timelapse-id"] == tid
    assert video.headers["x-amz-meta-file-size"] == str(len(video.content))
    assert video.headers["x-amz-meta-upload-method"] in {"simple", "multipart"}
    path = tmp_path / "timelapse.mp4"
    path.write_bytes(video.content)
    info = describe(str(path))
    assert "Video: h264" in info, info
    assert "yuv420p" in info
    assert "30 fps" in info
    assert "Audio:" not in info
    # +faststart: the index (moov) comes before the media data (mdat).
    assert video.content.find(b"moov") < video.content.find(b"mdat")
    frames = count_frames(str(path))
    assert abs(frames - expected_seconds * 30) <= max(3, 0.1 * expected_seconds * 30), frames
    assert record["output"]["sizeBytes"] == len(video.content)
    assert record["output"]["fps"] == 30

    poster = requests.get(record["urls"]["poster"], timeout=30)
    assert poster.status_code == 200
    assert poster.content[:3] == b"\xff\xd8\xff", "the poster is not a JPEG"
    assert poster.headers["x-amz-meta-timelapse-id"] == tid


def test_small_put_upload_becomes_a_timelapse(alice: Api, clip_5s: Path, tmp_path: Path) -> None:
    # Given a 5-second clip, when a front end creates a record and PUTs the bytes to storage
    created = alice.create(clip_5s.stat().st_size, targetSeconds=2, filename="desk.mp4")
    record = created["timelapse"]
    upload = created["upload"]
    assert record["status"] == "pending"
    assert record["stage"] == "awaiting_upload"
    assert record["videoKey"] == record["originalVideoKey"] == f"videos/{record['id']}.mp4"
    assert upload["method"] == "PUT"
    assert upload["headers"] == {"Content-Type": "video/mp4"}
    assert "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost" in upload["url"]
    alice.upload_put(created, clip_5s.read_bytes())

    # Then polling reaches complete with a 2-second, 30 fps timelapse and a poster
    done = alice.wait_for(record["id"])
    _check_timelapse(done, tmp_path, expected_seconds=2)
    assert done["source"]["width"] == 640
    assert done["source"]["height"] == 360
    assert done["source"]["codec"] == "h264"
    assert done["source"]["sizeBytes"] == clip_5s.stat().st_size
    assert done["output"]["speedup"] == pytest.approx(2.5, rel=0.1)
    assert done["attempts"] == 1
    assert done["startedAt"] is not None
    assert done["completedAt"] is not None
    assert requests.get(done["urls"]["original"], timeout=30).content == clip_5s.read_bytes()


def test_large_upload_goes_multipart_and_resumes(
    alice: Api, clip_150mb: Path, tmp_path: Path
) -> None:
    size = clip_150mb.stat().st_size
    # Given a file above the 100 MiB threshold, the API answers with the multipart form
    created = alice.create(size, targetSeconds=3)
    tid = created["timelapse"]["id"]
    upload = created["upload"]
    assert upload["method"] == "multipart"
    part_size, part_count = upload["partSize"], upload["partCount"]
    assert part_size == 10 * 1024 * 1024
    assert part_count == -(-size // part_size)
    assert [p["partNumber"] for p in upload["parts"]] == list(range(1, part_count + 1))

    # When the client uploads all parts but the last, then "reloads" and asks what storage holds
    with clip_150mb.open("rb") as source:
        chunks = [source.read(part_size) for _ in range(part_count)]
    etags = {}
    for part in upload["parts"][:-1]:
        answer = requests.put(part["url"], data=chunks[part["partNumber"] - 1], timeout=60)
        assert answer.status_code == 200, answer.text
        etags[part["partNumber"]] = answer.headers["ETag"]
    held = alice.request("GET", f"/timelapses/{tid}/upload")
    assert held.status_code == 200
    assert held.json()["uploadId"] == upload["uploadId"]
    assert {p["partNumber"]: p["etag"] for p in held.json()["parts"]} == etags
    assert all(p["size"] == part_size for p in held.json()["parts"])

    # Then it re-signs the missing part, uploads it, and completes
    fresh = alice.request(
        "POST", f"/timelapses/{tid}/upload/parts", json={"partNumbers": [part_count]}
    )
    assert fresh.status_code == 200
    [last] = fresh.json()["parts"]
    assert last["partNumber"] == part_count
    answer = requests.put(last["url"], data=chunks[-1], timeout=60)
    assert answer.status_code == 200
    etags[part_count] = answer.headers["ETag"]
    parts = [{"partNumber": n, "etag": e} for n, e in sorted(etags.items())]
    completed = alice.request("POST", f"/timelapses/{tid}/upload/complete", json={"parts": parts})
    assert completed.status_code == 202, completed.text

    done = alice.wait_for(tid, timeout=240)
    _check_timelapse(done, tmp_path, expected_seconds=3)
    original = requests.head(done["urls"]["original"], timeout=30)
    assert int(original.headers["Content-Length"]) == size


def test_process_false_waits_for_an_explicit_process_call(
    alice: Api, clip_5s: Path, tmp_path: Path
) -> None:
    # Given an upload created with process=false
    created = alice.submit(clip_5s, process=False, targetSeconds=1)
    tid = created["timelapse"]["id"]
    # Then it is stored but not processed
    idle = alice.wait_for(tid, lambda r: r["stage"] is None)
    assert idle["status"] == "pending"
    assert idle["videoKey"] == idle["originalVideoKey"]
    # When the owner asks for processing, it is rendered
    answer = alice.request("POST", f"/timelapses/{tid}/process")
    assert answer.status_code == 202, answer.text
    assert answer.json()["timelapse"]["stage"] == "queued"
    _check_timelapse(alice.wait_for(tid), tmp_path, expected_seconds=1)
    # And processing a complete one again is refused
    assert alice.request("POST", f"/timelapses/{tid}/process").status_code == 409


def test_list_by_project_is_paginated_newest_first(alice: Api, bob: Api) -> None:
    project = "p-list"
    ids = [alice.create(1000, projectId=project)["timelapse"]["id"] for _ in range(5)]
    bob.create(1000, projectId=project)  # another user's record never shows up

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        answer = alice.request("GET", f"/projects/{project}/timelapses", params=query)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["nextCursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    assert pages >= 3

    pending = alice.request("GET", f"/projects/{project}/timelapses", params={"status": "pending"})
    assert len(pending.json()["items"]) == 5
    done = alice.request("GET", f"/projects/{project}/timelapses", params={"status": "complete"})
    assert done.json() == {"items": [], "nextCursor": None}


def test_delete_removes_the_record_and_every_object(
    alice: Api, clip_5s: Path, stack: object
) -> None:
    created = alice.submit(clip_5s, targetSeconds=1)
    tid = created["timelapse"]["id"]
    done = alice.wait_for(tid)
    assert done["status"] == "complete"
    urls = done["urls"]

    assert alice.request("DELETE", f"/timelapses/{tid}").status_code == 204
    assert alice.request("GET", f"/timelapses/{tid}").status_code == 404
    for name in ("video", "original", "poster"):
        assert requests.get(urls[name], timeout=30).status_code == 404, name


def test_health_and_openapi_need_no_token(stack: object, alice: Api) -> None:
    health = requests.get(alice.url("/health"), timeout=10)
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    document = requests.get(alice.url("/openapi.json"), timeout=10)
    assert document.status_code == 200
    assert document.json()["openapi"].startswith("3.")
    assert any(path.startswith("/timelapses/{") for path in document.json()["paths"])
