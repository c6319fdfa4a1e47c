"""Data survives a restart of the local stack (LAPSE_DATA_DIR, as `make run` sets it): records,
originals, timelapses and posters are there after Ctrl-C and a new start, and a render that was
in flight resumes (its lease runs out; the watchdog requeues it) and completes."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import running_stack
from tests.support import make_clip

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("restart")]


def fetch(url: str) -> bytes:
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.content


def test_records_and_objects_survive_a_restart_and_work_in_flight_resumes(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    env = {"LAPSE_DATA_DIR": str(data), "LAPSE_LEASE_SECONDS": "5"}
    small = make_clip(tmp_path / "small.mp4", seconds=3)
    slow = make_clip(tmp_path / "slow.mp4", seconds=20, size="960x540", gop=600)

    with running_stack(tmp_path / "first.log", **env) as first:
        api = first.api("frank")
        done_id = api.submit(small, targetSeconds=1)["timelapse"]["id"]
        done = api.wait_for(done_id)
        assert done["status"] == "complete", done
        timelapse = fetch(done["urls"]["video"])
        poster = fetch(done["urls"]["poster"])
        flying_id = api.submit(slow, targetSeconds=2)["timelapse"]["id"]
        api.wait_for(flying_id, lambda r: r["stage"] == "rendering", timeout=60)
    # Ctrl-C mid-render: the stack stopped; the storage saved its objects, the stack the records

    # (running_stack fails if the restarted stack is not healthy within its startup limit; the
    # restart time with GB stored is a README figure, not a test assertion)
    with running_stack(tmp_path / "second.log", **env) as second:
        api = second.api("frank")
        again = api.get(done_id)
        assert again["status"] == "complete"
        assert fetch(again["urls"]["original"]) == small.read_bytes()
        assert fetch(again["urls"]["video"]) == timelapse
        assert fetch(again["urls"]["poster"]) == poster
        listed = api.request("GET", "/projects/p-e2e/timelapses").json()["items"]
        assert {item["id"] for item in listed} >= {done_id, flying_id}

        resumed = api.wait_for(flying_id, timeout=120)
        assert resumed["status"] == "complete", resumed
        assert resumed["attempts"] == 2
        assert fetch(resumed["urls"]["original"]) == slow.read_bytes()


def test_work_queued_at_ctrl_c_is_picked_up_after_the_restart(tmp_path: Path) -> None:
    # Given a stack whose worker takes no processing messages, so they wait in the queue: one
    # upload whose storage event is queued, and one timelapse queued by POST /process.
    data = tmp_path / "data"
    clip = make_clip(tmp_path / "clip.mp4", seconds=3)
    idle = {"LAPSE_DATA_DIR": str(data), "LAPSE_WORKER_CONCURRENCY": "0"}
    with running_stack(tmp_path / "first.log", **idle) as first:
        api = first.api("grace")
        uploaded_id = api.submit(clip, targetSeconds=1)["timelapse"]["id"]
        held_id = api.submit(clip, targetSeconds=1, process=False)["timelapse"]["id"]
        assert api.request("POST", f"/timelapses/{held_id}/process").status_code == 202
        assert api.get(uploaded_id)["stage"] == "awaiting_upload"
        assert api.get(held_id)["stage"] == "queued"
    # When the stack stops (Ctrl-C) with both messages unread, and starts again with a worker
    saved = (data / "queues.jsonl").read_text()
    assert uploaded_id in saved
    assert held_id in saved

    with running_stack(tmp_path / "second.log", LAPSE_DATA_DIR=str(data)) as second:
        # Then both complete from their saved messages, long before the watchdog would look for
        # them (10 and 15 minutes), and the saved messages are not sent a second time.
        assert not (data / "queues.jsonl").exists()
        api = second.api("grace")
        for timelapse_id in (uploaded_id, held_id):
            done = api.wait_for(timelapse_id, timeout=120)
            assert done["status"] == "complete", done
            assert done["attempts"] == 1
