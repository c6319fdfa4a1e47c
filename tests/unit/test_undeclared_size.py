"""Sizes not declared (Uppy): what is checked once storage holds the upload, and what a create
learns from Uppy's own key."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.keys import type_for_extension
from chalicelib.domain.limits import Limits
from chalicelib.domain.timelapse import Stage, Status
from chalicelib.domain.webhooks import CallbackPolicy
from chalicelib.errors import ConflictError, ValidationError
from chalicelib.inputs import companion_create_fields, fields_from_uppy_key
from chalicelib.inputs import create_command as parse_create
from chalicelib.services.ports import ObjectInfo
from chalicelib.services.timelapses import TimelapseService
from chalicelib.services.uploads import original_refusal
from tests.factories import a_timelapse
from tests.fakes import FakeQueue, FakeRecords, FakeStorage, RecordingNotifier

LIMITS = Limits(max_upload_bytes=1000)
POLICY = CallbackPolicy()
UPPY_KEY = "0d9a3c1e-5b7f-4c2a-9e8d-1f2a3b4c5d6e-desk walk.mov"


@pytest.mark.parametrize(
    ("stored", "code"),
    [(1, None), (1000, None), (1001, "too_large"), (0, "empty_upload")],
)
def test_without_a_declared_size_the_limits_apply_to_the_stored_object(
    stored: int, code: str | None
) -> None:
    found = ObjectInfo("videos/x.mp4", stored, "video/mp4", {}, '"e1"')
    refusal = original_refusal(a_timelapse(size_bytes=None), found, LIMITS)
    assert (refusal.code if refusal else None) == code


def test_a_create_body_may_leave_the_size_out_only_where_asked() -> None:
    body = {"projectId": "p", "contentType": "video/mp4"}
    with pytest.raises(ValidationError, match="sizeBytes is required"):
        parse_create(body, LIMITS, POLICY)
    assert parse_create(body, LIMITS, POLICY, size_required=False).size_bytes is None
    with pytest.raises(ValidationError, match="sizeBytes must be an integer"):
        parse_create({**body, "sizeBytes": None}, LIMITS, POLICY, size_required=False)


def test_companion_metadata_needs_no_size() -> None:
    fields = companion_create_fields("a.mp4", "video/mp4", {"projectId": "p"})
    assert "sizeBytes" not in fields
    assert parse_create(fields, LIMITS, POLICY, size_required=False).size_bytes is None


@pytest.mark.parametrize(
    ("extension", "kind"),
    [("mp4", "video/mp4"), ("mov", "video/quicktime"), ("qt", "video/quicktime"),
     ("mkv", "video/x-matroska"), ("webm", "video/webm"), ("mts", "video/vnd.dlna.mpeg-tts"),
     ("txt", None), (None, None)],
)  # fmt: skip
def test_the_type_browsers_give_an_extension(extension: str | None, kind: str | None) -> None:
    assert type_for_extension(extension) == kind


@pytest.mark.parametrize(
    ("key", "fields", "expected"),
    [
        # Uppy 6's own key, nothing else passed: the file's name and its type
        (UPPY_KEY, {}, {"filename": "desk walk.mov", "contentType": "video/quicktime"}),
        # what the front end passed wins
        (
            UPPY_KEY,
            {"filename": "x.mp4", "contentType": "video/mp4"},
            {"filename": "x.mp4", "contentType": "video/mp4"},
        ),
        # a key of the front end's own making is the name as it is
        ("clip.webm", {}, {"filename": "clip.webm", "contentType": "video/webm"}),
        # no video extension: no type (the create then says why, 415)
        ("notes.txt", {}, {"filename": "notes.txt", "contentType": ""}),
        # a name that cannot be one is left out
        ("a" * 300 + ".mp4", {"contentType": "video/mp4"}, {"contentType": "video/mp4"}),
    ],
)
def test_what_uppys_key_tells_of_the_file(
    key: str, fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert fields_from_uppy_key(key, fields) == expected


# --- where storage sends no events (R2): POST /timelapses/{id}/process checks the same ----------


def _service(max_upload_bytes: int) -> tuple[TimelapseService, FakeRecords, FakeStorage]:
    records, storage = FakeRecords(), FakeStorage()
    service = TimelapseService(
        records=records,
        storage=storage,
        queue=FakeQueue(),
        limits=Limits(max_upload_bytes=max_upload_bytes),
        notifier=RecordingNotifier(),
        storage_events=False,
    )
    return service, records, storage


def test_process_accepts_an_undeclared_size_within_the_limit_and_records_it() -> None:
    service, records, storage = _service(1000)
    made = a_timelapse(size_bytes=None)
    records.create(made)
    storage.put(made.original_video_key, b"x" * 1000)
    queued = service.process(made.owner_id, made.id)
    assert (queued.stage, queued.size_bytes) == (Stage.QUEUED, 1000)


def test_process_refuses_an_oversized_undeclared_upload_for_good() -> None:
    service, records, storage = _service(999)
    made = a_timelapse(size_bytes=None)
    records.create(made)
    storage.put(made.original_video_key, b"x" * 1000)
    with pytest.raises(ConflictError, match="over the limit of 999"):
        service.process(made.owner_id, made.id)
    failed = records.get(made.id)
    assert failed is not None
    assert (failed.status, failed.error.code if failed.error else None) == (
        Status.FAILED,
        "too_large",
    )
    assert storage.head(made.original_video_key) is None
