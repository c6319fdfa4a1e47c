"""The pure rules of the state machine (DESIGN.md): statuses, stages, and what may follow what."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from chalicelib import wire
from chalicelib.domain.timelapse import (
    ErrorInfo,
    Guard,
    Stage,
    Status,
    Timelapse,
    Transition,
    UploadInfo,
    UploadMethod,
    allows,
    iso,
    utcnow,
)
from tests.factories import a_timelapse

CREATED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
ID = "0193f0c2-0000-4000-8000-000000000001"


def make(status: Status = Status.PENDING, stage: Stage | None = Stage.AWAITING_UPLOAD) -> Timelapse:
    return a_timelapse(status=status, stage=stage)


# --- statuses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "terminal"),
    [
        (Status.PENDING, False),
        (Status.PROCESSING, False),
        (Status.COMPLETE, True),
        (Status.FAILED, True),
        (Status.CANCELLED, True),
    ],
)
def test_only_complete_failed_and_cancelled_are_terminal(status: Status, terminal: bool) -> None:
    assert status.is_terminal is terminal


def test_status_and_stage_values_are_the_contract_strings() -> None:
    assert [s.value for s in Status] == ["pending", "processing", "complete", "failed", "cancelled"]
    assert [s.value for s in Stage] == [
        "awaiting_upload",
        "queued",
        "probing",
        "rendering",
        "uploading",
    ]


@pytest.mark.parametrize(
    ("status", "allowed"),
    [
        (Status.PENDING, True),
        (Status.PROCESSING, True),
        (Status.COMPLETE, False),
        (Status.FAILED, False),
        (Status.CANCELLED, False),
    ],
)
def test_only_pending_or_processing_can_be_cancelled(status: Status, allowed: bool) -> None:
    assert allows(Transition.CANCEL, make(status, None)) is allowed


# --- requeue (POST /process) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "stage", "allowed"),
    [
        (Status.FAILED, None, True),
        (Status.CANCELLED, None, True),
        # Uploaded with "process": false: pending and no stage.
        (Status.PENDING, None, True),
        (Status.PENDING, Stage.AWAITING_UPLOAD, False),
        (Status.PENDING, Stage.QUEUED, False),
        (Status.PROCESSING, Stage.PROBING, False),
        (Status.PROCESSING, Stage.RENDERING, False),
        (Status.COMPLETE, None, False),
    ],
)
def test_requeue_only_from_failed_cancelled_or_idle(
    status: Status, stage: Stage | None, allowed: bool
) -> None:
    # Given a record in some state
    timelapse = make(status, stage)
    # Then only failed, cancelled and uploaded-idle ones may be queued again
    assert allows(Transition.REQUEUE, timelapse) is allowed


# --- the worker's lease -----------------------------------------------------------------------

NOW = CREATED + timedelta(hours=1)


def held(*, expires_in: float, attempts: int = 1) -> Timelapse:
    """A record a worker holds with token "w-1", its lease running out `expires_in` s from NOW."""
    return replace(
        make(Status.PROCESSING, Stage.RENDERING),
        lease_owner="w-1",
        lease_expires_at=NOW + timedelta(seconds=expires_in),
        attempts=attempts,
    )


def test_only_the_lease_owner_may_heartbeat_complete_or_fail() -> None:
    record = held(expires_in=30)
    for transition in (Transition.HEARTBEAT, Transition.COMPLETE, Transition.FAIL):
        assert allows(transition, record, Guard(token="w-1"))
        assert not allows(transition, record, Guard(token="w-2"))


def test_a_claim_takes_a_queued_record_or_an_abandoned_one_with_attempts_left() -> None:
    guard = Guard(now=NOW, max_attempts=3)
    assert allows(Transition.CLAIM, make(Status.PENDING, Stage.QUEUED), guard)
    assert not allows(Transition.CLAIM, make(Status.PENDING, Stage.AWAITING_UPLOAD), guard)
    assert allows(Transition.CLAIM, held(expires_in=-1, attempts=2), guard)
    assert not allows(Transition.CLAIM, held(expires_in=-1, attempts=3), guard)
    assert not allows(Transition.CLAIM, held(expires_in=30, attempts=1), guard)


def test_the_watchdog_expires_only_a_lease_that_ran_out_under_the_same_owner() -> None:
    assert allows(Transition.EXPIRE_LEASE, held(expires_in=-1), Guard(token="w-1", now=NOW))
    assert not allows(Transition.EXPIRE_LEASE, held(expires_in=5), Guard(token="w-1", now=NOW))
    assert not allows(Transition.EXPIRE_LEASE, held(expires_in=-1), Guard(token="w-2", now=NOW))


def test_a_dead_letter_fails_pending_or_abandoned_records_only() -> None:
    guard = Guard(now=NOW)
    assert allows(Transition.FAIL_ABANDONED, make(Status.PENDING, Stage.QUEUED), guard)
    assert allows(Transition.FAIL_ABANDONED, held(expires_in=-1), guard)
    assert not allows(Transition.FAIL_ABANDONED, held(expires_in=30), guard)
    assert not allows(Transition.FAIL_ABANDONED, make(Status.COMPLETE, None), guard)


def test_a_condition_that_needs_a_token_refuses_to_guess_one() -> None:
    with pytest.raises(TypeError, match="token"):
        allows(Transition.HEARTBEAT, held(expires_in=30))


# --- what the API shows -----------------------------------------------------------------------


def test_video_key_is_the_original_until_complete() -> None:
    # Given a processing record that already knows its output key
    processing = replace(
        make(Status.PROCESSING, Stage.UPLOADING), processed_video_key=f"timelapses/{ID}.mp4"
    )
    # Then it still plays the original
    assert processing.video_key == f"videos/{ID}.mp4"
    # When it completes, the timelapse plays
    complete = replace(processing, status=Status.COMPLETE, stage=None)
    assert complete.video_key == f"timelapses/{ID}.mp4"


def test_the_wire_form_of_a_new_record() -> None:
    body = wire.timelapse(make())
    assert body["id"] == ID
    assert body["projectId"] == "p-42"
    assert body["status"] == "pending"
    assert body["stage"] == "awaiting_upload"
    assert body["progress"] == 0
    assert body["videoKey"] == body["originalVideoKey"] == f"videos/{ID}.mp4"
    assert body["processedVideoKey"] is None
    assert body["posterKey"] is None
    assert body["targetSeconds"] == 30.0
    assert body["error"] is None
    assert body["attempts"] == 0
    assert body["createdAt"] == "2024-05-01T12:00:00.123Z"
    assert body["startedAt"] is None
    assert body["completedAt"] is None
    # The owner and the lease stay internal
    assert not {"ownerId", "owner_id", "leaseOwner", "leaseExpiresAt"} & set(body)


def test_the_wire_form_of_a_failed_record_carries_the_error() -> None:
    failed = replace(
        make(Status.FAILED, None), error=ErrorInfo("invalid_media", "Not a video."), attempts=2
    )
    body = wire.timelapse(failed)
    assert body["status"] == "failed"
    assert body["stage"] is None
    assert body["error"] == {"code": "invalid_media", "message": "Not a video."}
    assert body["attempts"] == 2


def test_iso_is_utc_with_milliseconds_and_z() -> None:
    paris = timezone(timedelta(hours=2))
    assert iso(datetime(2024, 5, 1, 14, 0, 0, 999999, tzinfo=paris)) == "2024-05-01T12:00:00.999Z"
    assert iso(None) is None


def test_utcnow_is_aware_utc() -> None:
    assert utcnow().utcoffset() == timedelta(0)


def test_is_multipart_follows_the_upload_method() -> None:
    assert make().is_multipart is False
    multipart = replace(make(), upload=UploadInfo(UploadMethod.MULTIPART, "u-1", 10, 3))
    assert multipart.is_multipart is True
