"""`Idempotency-Key` on create (API.md): a retried create answers the first answer again."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from chalicelib.domain.idempotency import HOLD_SECONDS, fingerprint, idempotency_key
from chalicelib.domain.limits import Limits, MiB
from chalicelib.domain.timelapse import utcnow
from chalicelib.errors import ConflictError, IdempotencyKeyReused, ValidationError
from chalicelib.services.timelapses import TimelapseService
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


def test_a_repeat_answers_the_same_timelapse_with_its_upload_again() -> None:
    timelapses = service()
    first = timelapses.create("alice", BODY, idempotency_key="k-1")
    again = timelapses.create("alice", dict(reversed(BODY.items())), idempotency_key="k-1")
    assert again["timelapse"] == first["timelapse"]
    assert again["upload"]["uploadId"] == first["upload"]["uploadId"]
    assert len(timelapses.records.items) == 1  # type: ignore[attr-defined]
    assert len(timelapses.storage.uploads) == 1  # type: ignore[attr-defined]


def test_keys_are_per_user_and_absent_keys_change_nothing() -> None:
    timelapses = service()
    alice = timelapses.create("alice", BODY, idempotency_key="k-1")
    bob = timelapses.create("bob", BODY, idempotency_key="k-1")
    plain = [timelapses.create("alice", BODY)["timelapse"]["id"] for _ in range(2)]
    assert len({alice["timelapse"]["id"], bob["timelapse"]["id"], *plain}) == 4


def test_the_same_key_with_another_body_is_refused() -> None:
    timelapses = service()
    timelapses.create("alice", BODY, idempotency_key="k-1")
    with pytest.raises(IdempotencyKeyReused):
        timelapses.create("alice", {**BODY, "sizeBytes": 1000}, idempotency_key="k-1")


def test_while_the_first_is_being_handled_a_repeat_is_a_conflict() -> None:
    timelapses = service()
    keys = timelapses.idempotency
    assert keys is not None
    keys.claim("alice", "k-1", fingerprint(BODY), utcnow())  # a first request, in flight
    with pytest.raises(ConflictError, match="still being handled"):
        timelapses.create("alice", BODY, idempotency_key="k-1")


def test_a_first_request_that_died_frees_its_key_after_a_while() -> None:
    timelapses = service()
    keys = timelapses.idempotency
    assert keys is not None
    keys.claim("alice", "k-1", fingerprint(BODY), utcnow() - timedelta(seconds=HOLD_SECONDS + 1))
    created = timelapses.create("alice", BODY, idempotency_key="k-1")
    assert created["timelapse"]["status"] == "pending"


def test_a_refused_first_request_leaves_the_key_free() -> None:
    timelapses = service()
    with pytest.raises(ValidationError):
        timelapses.create("alice", {**BODY, "projectId": ""}, idempotency_key="k-1")
    created = timelapses.create("alice", BODY, idempotency_key="k-1")
    assert created["timelapse"]["projectId"] == "p"


class FailingRecords(FakeRecords):
    def create(self, timelapse: Any) -> None:
        raise RuntimeError("the table is down")


def test_a_first_request_that_fails_releases_its_key() -> None:
    timelapses = service()
    timelapses.records = FailingRecords()
    with pytest.raises(RuntimeError):
        timelapses.create("alice", BODY, idempotency_key="k-1")
    timelapses.records = FakeRecords()
    assert timelapses.create("alice", BODY, idempotency_key="k-1")["timelapse"]["id"]


@pytest.mark.parametrize("raw", ["", "x" * 256, "caf\u00e9", "a\nb", "tab\there"])
def test_malformed_keys_are_refused(raw: str) -> None:
    with pytest.raises(ValidationError, match="Idempotency-Key"):
        idempotency_key(raw)


def test_fingerprints_ignore_key_order_and_spacing_only() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 1.5})
    assert fingerprint({"a": 1}) != fingerprint({"a": "1"})
