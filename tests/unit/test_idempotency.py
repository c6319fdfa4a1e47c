"""`Idempotency-Key` on create (API.md): a retried create answers the first answer again."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain.idempotency import HOLD_SECONDS, fingerprint, idempotency_key
from chalicelib.domain.limits import Limits, MiB
from chalicelib.domain.timelapse import Status, utcnow
from chalicelib.errors import ConflictError, IdempotencyKeyReused, ValidationError
from chalicelib.inputs import create_command
from chalicelib.services.timelapses import Created, MultipartUpload, TimelapseService
from tests.fakes import (
    FakeIdempotencyKeys,
    FakeQueue,
    FakeRecords,
    FakeStorage,
    RecordingNotifier,
)

BODY = {"projectId": "p", "contentType": "video/mp4", "sizeBytes": 200 * MiB}


def service() -> TimelapseService:
    return TimelapseService(
        records=FakeRecords(),
        storage=FakeStorage(),
        queue=FakeQueue(),
        limits=Limits(),
        notifier=RecordingNotifier(),
        idempotency=FakeIdempotencyKeys(),
    )


def create(timelapses: TimelapseService, owner: str, body: Any, key: str | None) -> Created:
    return timelapses.create(
        owner, create_command(body, timelapses.limits, timelapses.callbacks), idempotency_key=key
    )


def test_a_repeat_answers_the_same_timelapse_with_its_upload_again() -> None:
    timelapses = service()
    first = create(timelapses, "alice", BODY, "k-1")
    again = create(timelapses, "alice", dict(reversed(BODY.items())), "k-1")
    assert again.timelapse == first.timelapse
    assert isinstance(again.upload, MultipartUpload)
    assert isinstance(first.upload, MultipartUpload)
    assert again.upload.upload_id == first.upload.upload_id
    assert len(timelapses.records.items) == 1  # type: ignore[attr-defined]
    assert len(timelapses.storage.uploads) == 1  # type: ignore[attr-defined]


def test_keys_are_per_user_and_absent_keys_change_nothing() -> None:
    timelapses = service()
    alice = create(timelapses, "alice", BODY, "k-1")
    bob = create(timelapses, "bob", BODY, "k-1")
    plain = [create(timelapses, "alice", BODY, None).timelapse.id for _ in range(2)]
    assert len({alice.timelapse.id, bob.timelapse.id, *plain}) == 4


def test_the_same_key_with_another_body_is_refused() -> None:
    timelapses = service()
    create(timelapses, "alice", BODY, "k-1")
    with pytest.raises(IdempotencyKeyReused):
        create(timelapses, "alice", {**BODY, "sizeBytes": 1000}, "k-1")


def test_while_the_first_is_being_handled_a_repeat_is_a_conflict() -> None:
    timelapses = service()
    keys = timelapses.idempotency
    assert keys is not None
    print_ = fingerprint(
        dataclasses.asdict(create_command(BODY, timelapses.limits, timelapses.callbacks))
    )
    keys.claim("alice", "k-1", print_, utcnow())  # a first request, in flight
    with pytest.raises(ConflictError, match="still being handled"):
        create(timelapses, "alice", BODY, "k-1")


def test_a_first_request_that_died_frees_its_key_after_a_while() -> None:
    timelapses = service()
    keys = timelapses.idempotency
    assert keys is not None
    print_ = fingerprint(
        dataclasses.asdict(create_command(BODY, timelapses.limits, timelapses.callbacks))
    )
    keys.claim("alice", "k-1", print_, utcnow() - timedelta(seconds=HOLD_SECONDS + 1))
    assert create(timelapses, "alice", BODY, "k-1").timelapse.status is Status.PENDING


def test_a_refused_first_request_leaves_the_key_free() -> None:
    timelapses = service()
    with pytest.raises(ValidationError):
        create(timelapses, "alice", {**BODY, "projectId": ""}, "k-1")
    assert create(timelapses, "alice", BODY, "k-1").timelapse.project_id == "p"


class FailingRecords(FakeRecords):
    def create(self, timelapse: Any) -> None:
        raise RuntimeError("the table is down")


def test_a_first_request_that_fails_releases_its_key() -> None:
    timelapses = service()
    timelapses.records = FailingRecords()
    with pytest.raises(RuntimeError):
        create(timelapses, "alice", BODY, "k-1")
    timelapses.records = FakeRecords()
    assert create(timelapses, "alice", BODY, "k-1").timelapse.id


@pytest.mark.parametrize("raw", ["", "x" * 256, "caf\u00e9", "a\nb", "tab\there"])
def test_malformed_keys_are_refused(raw: str) -> None:
    with pytest.raises(ValidationError, match="Idempotency-Key"):
        idempotency_key(raw)


def test_fingerprints_ignore_key_order_and_spacing_only() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 1.5})
    assert fingerprint({"a": 1}) != fingerprint({"a": "1"})
