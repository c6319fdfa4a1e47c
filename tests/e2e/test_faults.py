"""Faults end to end, on a stack of this module's own: workers killed mid-render, leases that run
out, the watchdog's retries and its last word, duplicate and double deliveries, a message that
fails every time, and a multipart upload larger than declared.

The stack runs no queue worker of its own (only the watchdog, every second, and the dead-letter
poller); each test starts the `python -m local.worker` processes it needs and kills or stops them.
Uploads above 1 MiB go multipart here, so the S3 events are the multipart completion's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import Api
from tests.stress.harness import OwnStack, Worker, own_stack, until
from tests.support import make_clip

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("faults")]

MiB = 1024 * 1024
MAX_ATTEMPTS = 2
SHORT_LEASE = {"LAPSE_LEASE_SECONDS": "5"}


@pytest.fixture(scope="module")
def faults(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    directory = tmp_path_factory.mktemp("faults")
    with own_stack(
        directory,
        LAPSE_MAX_ATTEMPTS=str(MAX_ATTEMPTS),
        LAPSE_MULTIPART_THRESHOLD_BYTES=str(MiB),
    ) as stack:
        yield stack


@pytest.fixture
def stack(faults: OwnStack) -> Iterator[OwnStack]:
    """The module's stack, with every worker a test started stopped after it (logs on failure)."""
    yield faults
    faults.stop_workers()


@pytest.fixture(scope="module")
def render_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """540p, 20 s, one keyframe: every frame is decoded, so a render lasts a few seconds."""
    path = tmp_path_factory.mktemp("faults-media") / "render.mp4"
    return make_clip(path, seconds=20, size="960x540", gop=600)


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("faults-small") / "small.mp4", seconds=2)


def upload(api: Api, path: Path, **fields: Any) -> str:
    """Create a record and upload `path` the way the API says (PUT, or multipart + complete)."""
    data = path.read_bytes()
    created = api.create(len(data), **fields)
    plan = created["upload"]
    if plan["method"] == "PUT":
        api.upload_put(created, data)
        return str(created["timelapse"]["id"])
    tid = created["timelapse"]["id"]
    size = plan["partSize"]
    parts = []
    for part in plan["parts"]:
        number = part["partNumber"]
        chunk = data[(number - 1) * size : number * size]
        answer = requests.put(part["url"], data=chunk, timeout=60)
        assert answer.status_code == 200, answer.text
        parts.append({"partNumber": number, "etag": answer.headers["ETag"]})
    done = api.request("POST", f"/timelapses/{tid}/upload/complete", json={"parts": parts})
    assert done.status_code == 202, done.text
    return str(tid)


def ffmpeg_of(worker: Worker, timelapse_id: str) -> bool:
    """Whether an ffmpeg of `worker` is working on `timelapse_id`."""
    return any(
        b"ffmpeg" in command and timelapse_id[:8].encode() in command
        for command in worker.child_commands()
    )


def kill_mid_render(stack: OwnStack, api: Api, tid: str, attempt: int) -> Worker:
    """Start a worker with a 5 s lease, let it claim `tid` and start ffmpeg, then SIGKILL it."""
    worker = stack.start_worker(f"doomed-{tid[:8]}-{attempt}", **SHORT_LEASE)
    api.wait_for(tid, lambda r: r["attempts"] == attempt and r["stage"] == "rendering", timeout=60)
    assert until(lambda: ffmpeg_of(worker, tid), timeout=20), stack.log_tail()
    worker.kill()
    return worker


def test_a_worker_killed_mid_render_is_replaced_once_its_lease_runs_out(
    stack: OwnStack, render_clip: Path
) -> None:
    api = stack.api("faults")
    # Given a render under way in a worker holding a 5-second lease
    tid = upload(api, render_clip, targetSeconds=10)
    # When that worker dies (SIGKILL: no cleanup, no last write), and another one is started
    doomed = kill_mid_render(stack, api, tid, attempt=1)
    assert api.get(tid)["status"] == "processing"
    survivor = stack.start_worker("survivor")
    # Then the watchdog re-queues it once the lease has run out (the only way from processing
    # back to the queue), and the other worker completes it as a second attempt
    done = api.wait_for(tid, timeout=90)
    assert done["status"] == "complete", (done, stack.log_tail())
    assert done["attempts"] == 2
    assert done["error"] is None
    assert stack.objects(f"timelapses/{tid}") == [f"timelapses/{tid}.mp4"]
    assert stack.objects(f"posters/{tid}") == [f"posters/{tid}.jpg"]
    # And the survivor left no temporary folder (the dead one's sandbox goes with it)
    assert until(lambda: not survivor.work_dirs(), timeout=5), survivor.work_dirs()
    assert doomed.work_dirs(), "expected the killed worker's folder as evidence it died mid-job"


def test_a_record_whose_workers_keep_dying_fails_at_max_attempts(
    stack: OwnStack, render_clip: Path
) -> None:
    api = stack.api("faults")
    # Given a record whose every worker dies mid-render
    tid = upload(api, render_clip, targetSeconds=10)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        kill_mid_render(stack, api, tid, attempt)
    # Then after the last allowed attempt the watchdog fails it, saying so in words
    failed = api.wait_for(tid, timeout=30)
    assert failed["status"] == "failed", failed
    assert failed["attempts"] == MAX_ATTEMPTS
    assert failed["error"]["code"] == "worker_lost"
    assert f"{MAX_ATTEMPTS} times" in failed["error"]["message"]
    assert failed["stage"] is None
    assert stack.objects(f"timelapses/{tid}") == []
    # And the watchdog, sweeping every second, leaves it failed
    assert not until(lambda: api.get(tid)["status"] != "failed", timeout=2)


def _take_messages(stack: OwnStack, timelapse_id: str, *, expect: int) -> list[dict[str, Any]]:
    """Receive (and delete) the queue's messages about `timelapse_id`: no worker is running."""
    sqs = stack.config.sqs()
    found: list[dict[str, Any]] = []

    def poll() -> bool:
        answer = sqs.receive_message(
            QueueUrl=stack.config.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for message in answer.get("Messages", []):
            sqs.delete_message(
                QueueUrl=stack.config.queue_url, ReceiptHandle=message["ReceiptHandle"]
            )
            if timelapse_id in message["Body"]:
                found.append(json.loads(message["Body"]))
        return len(found) >= expect

    until(poll, timeout=15, interval=0)
    return found


def test_duplicate_deliveries_render_once(stack: OwnStack, small_clip: Path) -> None:
    api = stack.api("faults")
    # Given an upload whose storage event is in the queue, delivered three times over
    tid = upload(api, small_clip, targetSeconds=1)
    [event, *_] = _take_messages(stack, tid, expect=1)
    assert event["Records"][0]["eventName"].startswith("ObjectCreated")
    sqs = stack.config.sqs()
    for _ in range(3):
        sqs.send_message(QueueUrl=stack.config.queue_url, MessageBody=json.dumps(event))
    # When three workers race for them
    workers = [stack.start_worker(f"racer-{n}") for n in range(3)]
    # Then exactly one renders it: one attempt, one output, and every message is consumed
    done = api.wait_for(tid, timeout=60)
    assert done["status"] == "complete", (done, stack.log_tail())
    assert done["attempts"] == 1
    assert stack.objects(f"timelapses/{tid}") == [f"timelapses/{tid}.mp4"]
    assert until(lambda: stack.queue_depth() == 0, timeout=15)
    assert api.get(tid)["updatedAt"] == done["updatedAt"], "a late duplicate wrote to the record"
    for worker in workers:
        assert until(partial(_idle, worker), timeout=5)


def _idle(worker: Worker) -> bool:
    return not worker.work_dirs()


def test_the_multipart_double_notification_renders_once(stack: OwnStack, small_clip: Path) -> None:
    api = stack.api("faults")
    # Given two workers, and a multipart upload (the local storage sends two events, Put and
    # CompleteMultipartUpload, for one completion)
    workers = [stack.start_worker("double-a"), stack.start_worker("double-b")]
    data = small_clip.read_bytes()
    padded = small_clip.parent / "small-padded.mp4"
    if not padded.exists():
        # Above the 1 MiB threshold; trailing bytes after the last box are ignored by readers.
        padded.write_bytes(data + b"\0" * (MiB + 1))
    # When it completes
    tid = upload(api, padded, targetSeconds=1)
    # Then both events are handled, and it is rendered once
    done = api.wait_for(tid, timeout=60)
    assert done["status"] == "complete", (done, stack.log_tail())
    assert done["attempts"] == 1
    assert stack.objects(f"timelapses/{tid}") == [f"timelapses/{tid}.mp4"]

    def deliveries() -> int:
        lines = [
            line
            for worker in workers
            for line in worker.log.read_text(errors="replace").splitlines()
            if f"timelapse_id={tid}" in line
        ]
        return len(
            {line.split("request_id=")[1].split()[0] for line in lines if "request_id=" in line}
        )

    assert until(lambda: deliveries() >= 2, timeout=15), stack.log_tail()


def test_multipart_parts_past_the_declared_size_are_aborted(stack: OwnStack) -> None:
    api = stack.api("faults")
    # Given a multipart record declaring 2 MiB whose one part holds 3 MiB
    created = api.create(2 * MiB)
    tid = created["timelapse"]["id"]
    plan = created["upload"]
    assert plan["method"] == "multipart"
    assert plan["partCount"] == 1
    answer = requests.put(plan["parts"][0]["url"], data=os.urandom(3 * MiB), timeout=60)
    assert answer.status_code == 200
    # When the client completes it
    completed = api.request("POST", f"/timelapses/{tid}/upload/complete")
    # Then it is refused with a reason, the upload aborted (not completed), the record failed
    assert completed.status_code == 400, completed.text
    assert "declared" in completed.json()["error"]["message"]
    uploads = stack.config.s3().list_multipart_uploads(Bucket=stack.config.bucket)
    assert plan["uploadId"] not in [u["UploadId"] for u in uploads.get("Uploads", [])]
    assert stack.objects(f"videos/{tid}") == []
    record = api.get(tid)
    assert record["status"] == "failed"
    assert record["error"]["code"] == "size_mismatch"


def test_a_message_that_fails_every_time_ends_in_the_dead_letter_queue(
    stack: OwnStack, small_clip: Path
) -> None:
    api = stack.api("faults")
    sqs = stack.config.sqs()
    queue = stack.config.queue_url
    # Given a worker whose handler raises on every message (its table does not exist), and
    # messages that come back after 1 s instead of 900 s
    sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "1"})
    sqs.set_queue_attributes(QueueUrl=stack.config.dlq_url, Attributes={"VisibilityTimeout": "1"})
    try:
        broken = stack.start_worker("broken", LAPSE_TABLE="no-such-table")
        # When an upload's event reaches it
        tid = upload(api, small_clip, targetSeconds=1)
        # Then after three failed receives the message moves to the dead-letter queue, and the
        # stack's dead-letter handler fails the record instead of losing it
        try:
            failed = api.wait_for(tid, timeout=60)
        except AssertionError as error:
            raise AssertionError(f"{error}\n{stack.log_tail()}") from None
        assert failed["status"] == "failed", (failed, stack.log_tail())
        assert failed["error"]["code"] == "processing_failed"
        assert "repeatedly" in failed["error"]["message"]
        assert failed["attempts"] == 0
        assert until(lambda: stack.queue_depth() == 0, timeout=10)
        assert until(lambda: stack.queue_depth(stack.config.dlq_url) == 0, timeout=10)
        assert "handler failed" in broken.log.read_text()
    finally:
        sqs.set_queue_attributes(QueueUrl=queue, Attributes={"VisibilityTimeout": "900"})
        sqs.set_queue_attributes(
            QueueUrl=stack.config.dlq_url, Attributes={"VisibilityTimeout": "30"}
        )


def test_the_fault_stack_serves_a_normal_job(stack: OwnStack, small_clip: Path) -> None:
    # Given everything above, when one more ordinary video arrives, then it is rendered once
    api = stack.api("faults")
    worker = stack.start_worker("normal")
    tid = upload(api, small_clip, targetSeconds=1)
    done = api.wait_for(tid, timeout=60)
    assert done["status"] == "complete", (done, stack.log_tail())
    assert done["attempts"] == 1
    assert until(lambda: not worker.work_dirs(), timeout=5)
