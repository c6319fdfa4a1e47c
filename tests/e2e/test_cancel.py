"""Cancel in every state the contract names; a cancelled render leaves nothing behind."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import Api, RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

MiB = 1024 * 1024


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in args and "pytest" not in args:
            found.append(args[:200])
    return found


def _until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def test_cancel_during_render_stops_it_and_leaves_nothing(
    alice: Api, clip_slow: Path, stack: RunningStack
) -> None:
    # Given a render in progress
    tid = alice.submit(clip_slow, targetSeconds=25)["timelapse"]["id"]
    rendering = alice.wait_for(
        tid, lambda r: r["stage"] == "rendering" and r["progress"] > 0, timeout=60
    )
    assert rendering["status"] == "processing"
    assert _processes_mentioning(tid), "expected ffmpeg to be running for this timelapse"

    # When the owner cancels
    answer = alice.request("POST", f"/timelapses/{tid}/cancel")
    assert answer.status_code == 202, answer.text
    assert answer.json()["timelapse"]["status"] == "cancelled"
    cancelled_at = time.monotonic()

    # Then ffmpeg is gone and the temporary folder removed within seconds
    assert _until(lambda: not _processes_mentioning(tid), timeout=5), _processes_mentioning(tid)
    workdirs = Path(tempfile.gettempdir()).glob(f"lapse-{tid[:8]}-*")
    assert _until(lambda: not list(workdirs), timeout=5)
    print(f"render stopped {time.monotonic() - cancelled_at:.1f} s after the cancel")

    # And nothing is written afterwards: the record stays as the cancel left it, no output object
    before = alice.get(tid)
    time.sleep(3)
    after = alice.get(tid)
    assert after["status"] == "cancelled"
    assert after["updatedAt"] == before["updatedAt"]
    assert after["processedVideoKey"] is None
    assert after["error"]["code"] == "cancelled"
    s3 = stack.config.s3()
    listed = s3.list_objects_v2(Bucket=stack.config.bucket, Prefix=f"timelapses/{tid}")
    assert listed.get("KeyCount", 0) == 0
    assert not s3.list_multipart_uploads(Bucket=stack.config.bucket).get("Uploads")

    # And cancelling again is a no-op 202
    assert alice.request("POST", f"/timelapses/{tid}/cancel").status_code == 202


def test_cancel_during_a_multipart_upload_aborts_it(alice: Api, stack: RunningStack) -> None:
    # Given a multipart upload with one part stored
    created = alice.create(120 * MiB)
    tid = created["timelapse"]["id"]
    parts = created["upload"]["parts"]
    assert requests.put(parts[0]["url"], data=b"\0" * (10 * MiB), timeout=60).status_code == 200

    # When the owner cancels
    assert alice.request("POST", f"/timelapses/{tid}/cancel").status_code == 202

    # Then storage no longer holds the upload, and the API refuses to go on with it
    s3 = stack.config.s3()
    uploads = s3.list_multipart_uploads(Bucket=stack.config.bucket).get("Uploads", [])
    assert created["upload"]["uploadId"] not in [u["UploadId"] for u in uploads]
    # (S3 answers 404 NoSuchUpload; moto answers 500. Either way the part is refused.)
    late_part = requests.put(parts[1]["url"], data=b"\0" * (10 * MiB), timeout=60)
    assert late_part.status_code >= 400
    complete = alice.request("POST", f"/timelapses/{tid}/upload/complete")
    assert complete.status_code == 409
    assert alice.get(tid)["status"] == "cancelled"


def test_cancelled_before_upload_can_be_processed_later(alice: Api, clip_5s: Path) -> None:
    # Given a record cancelled while awaiting its upload, whose bytes arrive afterwards
    data = clip_5s.read_bytes()
    created = alice.create(len(data), targetSeconds=1)
    tid = created["timelapse"]["id"]
    assert alice.request("POST", f"/timelapses/{tid}/cancel").status_code == 202
    alice.upload_put(created, data)
    time.sleep(2)
    # Then the late upload event changes nothing
    assert alice.get(tid)["status"] == "cancelled"
    # When the owner asks to process it, it is re-queued and rendered
    answer = alice.request("POST", f"/timelapses/{tid}/process")
    assert answer.status_code == 202, answer.text
    done = alice.wait_for(tid)
    assert done["status"] == "complete"
    assert done["error"] is None
    # And a complete timelapse can no longer be cancelled
    refused = alice.request("POST", f"/timelapses/{tid}/cancel")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "conflict"
