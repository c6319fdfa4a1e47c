"""Storage without bucket events (Cloudflare R2): the API enqueues the work itself."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import RunningStack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


@pytest.fixture(scope="module")
def r2_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    log = tmp_path_factory.mktemp("r2") / "stack.log"
    with running_stack(log, LAPSE_STORAGE_EVENTS="false") as running:
        yield running


def test_put_upload_waits_for_process_then_renders(r2_stack: RunningStack, clip_5s: Path) -> None:
    api = r2_stack.api("carol")
    # Given a PUT upload to storage that sends no events
    tid = api.submit(clip_5s, targetSeconds=1)["timelapse"]["id"]
    time.sleep(1.5)
    # Then nothing happens on its own
    assert api.get(tid)["stage"] == "awaiting_upload"
    # When the front end reports the upload finished, the API checks the object and enqueues it
    answer = api.request("POST", f"/timelapses/{tid}/process")
    assert answer.status_code == 202, answer.text
    assert answer.json()["timelapse"]["stage"] == "queued"
    assert api.wait_for(tid)["status"] == "complete"


def test_process_before_the_upload_is_refused(r2_stack: RunningStack) -> None:
    api = r2_stack.api("carol")
    tid = api.create(1000)["timelapse"]["id"]
    answer = api.request("POST", f"/timelapses/{tid}/process")
    assert answer.status_code == 409
    assert "uploaded" in answer.json()["error"]["message"]


def test_multipart_complete_enqueues(r2_stack: RunningStack, clip_150mb: Path) -> None:
    api = r2_stack.api("carol")
    size = clip_150mb.stat().st_size
    created = api.create(size, targetSeconds=1)
    tid = created["timelapse"]["id"]
    upload = created["upload"]
    with clip_150mb.open("rb") as source:
        for part in upload["parts"]:
            data = source.read(upload["partSize"])
            assert requests.put(part["url"], data=data, timeout=60).status_code == 200
    # The server lists the parts itself when the body names none
    answer = api.request("POST", f"/timelapses/{tid}/upload/complete")
    assert answer.status_code == 202, answer.text
    assert answer.json()["timelapse"]["stage"] == "queued"
    assert api.wait_for(tid, timeout=240)["status"] == "complete"
