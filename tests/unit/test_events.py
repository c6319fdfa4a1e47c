"""Queue messages → units of work: S3 event notifications and lapse's own process messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.adapters.queue import process_message
from chalicelib.events import Work, work_in_message

ID_A = "0193f0c2-1234-4abc-8def-0123456789ab"
ID_B = "0193f0c2-5678-4abc-8def-0123456789cd"


def s3_record(key: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """One record as S3 sends it to SQS (keys URL-encoded, spaces as '+')."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2024-05-01T12:00:00.000Z",
        "eventName": event_name,
        "s3": {
            "s3SchemaVersion": "1.0",
            "bucket": {"name": "lapse-local", "arn": "arn:aws:s3:::lapse-local"},
            "object": {"key": key, "size": 1024, "eTag": "abc", "sequencer": "0A1B"},
        },
    }


def message(*records: dict[str, Any]) -> str:
    return json.dumps({"Records": list(records)})


def work(body: str) -> list[Work]:
    return list(work_in_message(body))


def test_one_created_original_is_one_unit_of_work() -> None:
    assert work(message(s3_record(f"videos/{ID_A}.mp4"))) == [
        Work("object_created", ID_A, f"videos/{ID_A}.mp4")
    ]


def test_several_records_in_one_message_are_all_worked() -> None:
    # Given one message with two uploads, completed by a multipart upload and a copy
    body = message(
        s3_record(f"videos/{ID_A}.mp4", "ObjectCreated:CompleteMultipartUpload"),
        s3_record(f"videos/{ID_B}.webm", "ObjectCreated:Copy"),
    )
    # Then both become work, in order
    assert work(body) == [
        Work("object_created", ID_A, f"videos/{ID_A}.mp4"),
        Work("object_created", ID_B, f"videos/{ID_B}.webm"),
    ]


def test_url_encoded_keys_are_decoded() -> None:
    body = message(s3_record(f"videos%2F{ID_A}%2Emov"))
    # The work carries the key as stored, which the record's key is compared with
    assert work(body) == [Work("object_created", ID_A, f"videos/{ID_A}.mov")]


def test_s3_test_event_is_skipped() -> None:
    # S3 sends this once when the notification is configured
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2024-05-01T12:00:00.000Z",
        "Bucket": "lapse-local",
        "RequestId": "R",
        "HostId": "H",
    }
    assert work(json.dumps(test_event)) == []
    # even if it carried records, a test event is never work
    assert work(json.dumps({**test_event, "Records": [s3_record(f"videos/{ID_A}.mp4")]})) == []


@pytest.mark.parametrize(
    "event_name",
    ["ObjectRemoved:Delete", "ObjectRemoved:DeleteMarkerCreated", "ObjectRestore:Completed", ""],
)
def test_events_other_than_object_created_are_ignored(event_name: str) -> None:
    body = message(s3_record(f"videos/{ID_A}.mp4", event_name), s3_record(f"videos/{ID_B}.mp4"))
    assert work(body) == [Work("object_created", ID_B, f"videos/{ID_B}.mp4")]


@pytest.mark.parametrize(
    "key",
    [f"timelapses/{ID_A}.mp4", f"posters/{ID_A}.jpg", "videos/not-an-id.mp4", f"other/{ID_A}.mp4"],
)
def test_objects_that_are_not_originals_are_ignored(key: str) -> None:
    assert work(message(s3_record(key))) == []


def test_lapse_process_message() -> None:
    body = json.dumps({"type": "lapse.process", "timelapseId": ID_A})
    assert work(body) == [Work("process", ID_A)]


def test_process_message_matches_what_the_queue_sends() -> None:
    assert work(json.dumps(process_message(ID_B))) == [Work("process", ID_B)]


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "{",
        "null",
        "42",
        '"a string"',
        "[1, 2]",
        "{}",
        '{"Records": null}',
        '{"Records": []}',
        '{"type": "lapse.process"}',
        '{"type": "lapse.process", "timelapseId": 7}',
        '{"type": "other", "timelapseId": "x"}',
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}),
        json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "s3": {}}]}),
    ],
)
def test_junk_yields_nothing(body: str) -> None:
    assert work(body) == []


@pytest.mark.parametrize(
    "body",
    [
        '{"Records": ["junk"]}',
        '{"Records": "abc"}',
        '{"Records": [{"eventName": "ObjectCreated:Put", "s3": null}]}',
        '{"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": null}}]}',
    ],
)
def test_records_of_the_wrong_shape_yield_nothing(body: str) -> None:
    assert work(body) == []
