"""A render too long for the function, fanned out through the local stack (issue 14): a stack whose
worker plays a function with a 30-second limit splits a 60-second all-decode clip into parts on
the processing queue, renders them on its two workers and joins them once. Checked frame by frame;
then a duplicate part message, and a cancel while parts run."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.adapters.queue import part_message
from tests.e2e.conftest import Api, RunningStack, running_stack
from tests.e2e.test_cancel import _processes_mentioning, _until
from tests.framecode import expected_indices, frame_indices, make_indexed_clip

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

FPS = 30
SECONDS = 60
TARGET = 10  # 300 frames, one per 0.2 s: keyframes 8.3 s apart cannot serve, every frame decoded


@pytest.fixture(scope="module")
def short_limit_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The stack as `make run` starts it, its worker playing functions with a 30-s limit and one
    core each: a render estimated past a sixth of that (~4.5 s on 2 vCPUs) is fanned out."""
    log = tmp_path_factory.mktemp("fanout-stack") / "stack.log"
    with running_stack(log, LAPSE_WORKER_TIMEOUT_SECONDS="30", LAPSE_RENDER_VCPUS="1") as running:
        yield running


@pytest.fixture(scope="module")
def numbered_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 s of 720p30, a keyframe every 250 frames (as OBS records), frames numbered."""
    folder = tmp_path_factory.mktemp("fanout-clip")
    return make_indexed_clip(
        folder / "numbered.mp4", seconds=SECONDS, fps=FPS, size="1280x720", gop=250
    )


def _item(stack: RunningStack, timelapse_id: str) -> dict[str, Any]:
    answer = stack.config.dynamodb().get_item(
        TableName=stack.config.table, Key={"id": {"S": timelapse_id}}, ConsistentRead=True
    )
    return dict(answer.get("Item", {}))


def _fanout_token(stack: RunningStack, timelapse_id: str) -> str | None:
    item = _item(stack, timelapse_id)
    fanout = item.get("fanout", {}).get("M")
    return str(fanout["token"]["S"]) if fanout else None


def _segments(stack: RunningStack, timelapse_id: str) -> list[str]:
    listed = stack.config.s3().list_objects_v2(
        Bucket=stack.config.bucket, Prefix=f"segments/{timelapse_id}/"
    )
    return [found["Key"] for found in listed.get("Contents", [])]


def _send_part(stack: RunningStack, timelapse_id: str, token: str, part: int) -> None:
    stack.config.sqs().send_message(
        QueueUrl=stack.config.queue_url,
        MessageBody=json.dumps(part_message(timelapse_id, token, part)),
    )


def test_a_long_render_is_fanned_out_joined_once_and_exact_frame_by_frame(
    short_limit_stack: RunningStack, numbered_clip: Path, tmp_path: Path
) -> None:
    api = short_limit_stack.api("fan")
    # Given an all-decode clip whose render would pass a third of the function's limit
    tid = api.submit(numbered_clip, targetSeconds=TARGET)["timelapse"]["id"]
    # When it is claimed, it is handed to parts on the queue
    assert _until(lambda: _fanout_token(short_limit_stack, tid) is not None, timeout=60)
    token = _fanout_token(short_limit_stack, tid)
    assert token is not None
    parts = _item(short_limit_stack, tid)["fanout"]["M"]["parts"]["L"]
    # (3-4 on an idle machine; the budget is a share of the time left when the split is made,
    # so a claim slowed by load leaves less and makes more, smaller parts: 5 seen at load ~12)
    assert 3 <= len(parts) <= 8
    # and a duplicate message for its first part arrives while the parts run
    _send_part(short_limit_stack, tid, token, 0)
    seen: set[int] = set()

    def ended(record: dict[str, Any]) -> bool:
        seen.add(record["progress"])
        return record["status"] != "processing"

    done = api.wait_for(tid, ended)
    # Then it completes once, at the asked length, with exactly the planned frames
    assert done["status"] == "complete", done
    # (the part count is kept on the record for operators, not in the contract's output)
    assert "parts" not in done["output"]
    assert _item(short_limit_stack, tid)["output"]["M"]["parts"]["N"] == str(len(parts))
    assert abs(done["output"]["durationSeconds"] - TARGET) < 0.05
    assert max(seen - {100}, default=0) < 100
    video = tmp_path / "timelapse.mp4"
    video.write_bytes(requests.get(done["urls"]["video"], timeout=60).content)
    shown = frame_indices(video)
    assert shown == expected_indices(TARGET * FPS, SECONDS / (TARGET * FPS), FPS, SECONDS * FPS)
    # and its segments are gone
    assert _until(lambda: not _segments(short_limit_stack, tid), timeout=10)
    # And a part message arriving after the end changes nothing
    _send_part(short_limit_stack, tid, token, len(parts) - 1)
    time.sleep(3)
    after = api.get(tid)
    assert after["updatedAt"] == done["updatedAt"]
    assert not _segments(short_limit_stack, tid)


def test_a_cancel_stops_every_part_and_removes_their_segments(
    short_limit_stack: RunningStack, numbered_clip: Path
) -> None:
    api: Api = short_limit_stack.api("fan-cancel")
    stack = short_limit_stack
    tid = api.submit(numbered_clip, targetSeconds=TARGET)["timelapse"]["id"]
    # Given parts rendering
    assert _until(lambda: _fanout_token(stack, tid) is not None, timeout=60)
    assert _until(lambda: bool(_processes_mentioning(tid[:8])), timeout=30)
    # When the owner cancels mid-way
    answer = api.request("POST", f"/timelapses/{tid}/cancel")
    assert answer.status_code == 202, answer.text
    # Then every part stops within seconds: no ffmpeg left, no segment, no multipart upload
    assert _until(lambda: not _processes_mentioning(tid[:8]), timeout=5)
    assert _until(lambda: not _segments(stack, tid), timeout=15)
    uploads = stack.config.s3().list_multipart_uploads(
        Bucket=stack.config.bucket, Prefix=f"segments/{tid}/"
    )
    assert not uploads.get("Uploads")
    # and the parts still queued do nothing when they come: the record stays as the cancel left it
    before = api.get(tid)
    assert before["status"] == "cancelled"
    time.sleep(4)
    after = api.get(tid)
    assert after["updatedAt"] == before["updatedAt"]
    assert not _processes_mentioning(tid[:8])
    assert not _segments(stack, tid)
