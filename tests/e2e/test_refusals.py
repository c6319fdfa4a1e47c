"""Bad input gets a clear 4xx with a reason and loses nothing; another user's ids are unknown."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
import requests

from tests.e2e.conftest import Api, RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

GiB = 1024**3
VALID = {"projectId": "p-refuse", "contentType": "video/mp4", "sizeBytes": 1000}


def _refused(answer: requests.Response, status: int, code: str) -> str:
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return str(error["message"])


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        "Bearer " + jwt.encode({"sub": "alice"}, "another-secret", "HS256"),
        "Bearer " + jwt.encode({"sub": "alice", "exp": int(time.time()) - 60}, "local-dev-secret"),
        "Bearer " + jwt.encode({"name": "no subject"}, "local-dev-secret", "HS256"),
    ],
    ids=["missing", "basic", "garbage", "wrong-secret", "expired", "no-sub"],
)
def test_requests_without_a_valid_token_get_401(
    stack: RunningStack, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    for method, path in [
        ("POST", "/timelapses"),
        ("GET", "/timelapses/00000000-0000-0000-0000-000000000000"),
        ("GET", "/projects/p/timelapses"),
    ]:
        answer = requests.request(
            method, f"{stack.config.api_url}{path}", json=VALID, headers=headers, timeout=10
        )
        _refused(answer, 401, "unauthorized")


@pytest.mark.parametrize(
    ("body", "status", "code", "reason"),
    [
        ({**VALID, "projectId": None}, 400, "invalid_request", "projectId"),
        ({k: v for k, v in VALID.items() if k != "sizeBytes"}, 400, "invalid_request", "sizeBytes"),
        ({**VALID, "sizeBytes": 0}, 400, "invalid_request", "sizeBytes"),
        ({**VALID, "sizeBytes": "1000"}, 400, "invalid_request", "sizeBytes"),
        ({**VALID, "targetSeconds": 0}, 400, "invalid_request", "targetSeconds"),
        ({**VALID, "targetSeconds": 601}, 400, "invalid_request", "targetSeconds"),
        ({**VALID, "process": "yes"}, 400, "invalid_request", "process"),
        ({**VALID, "callbackUrl": "ftp://example.com/x"}, 400, "invalid_request", "callbackUrl"),
        ({**VALID, "projectId": "a/b"}, 400, "invalid_request", "projectId"),
        ([1, 2], 400, "invalid_request", "object"),
        ({**VALID, "sizeBytes": 50 * GiB + 1}, 413, "too_large", "maximum"),
        ({**VALID, "contentType": "text/plain"}, 415, "unsupported_media_type", "not a video"),
        ({**VALID, "contentType": "image/png"}, 415, "unsupported_media_type", "not a video"),
        (
            {**VALID, "contentType": "application/json"},
            415,
            "unsupported_media_type",
            "not a video",
        ),
        ({**VALID, "contentType": ""}, 415, "unsupported_media_type", "filename ending"),
    ],
)
def test_create_refuses_bad_bodies_with_a_reason(
    alice: Api, body: object, status: int, code: str, reason: str
) -> None:
    message = _refused(alice.request("POST", "/timelapses", json=body), status, code)
    assert reason in message


def test_create_refuses_malformed_json(alice: Api) -> None:
    answer = alice.request(
        "POST", "/timelapses", data="{not json", headers={"Content-Type": "application/json"}
    )
    _refused(answer, 400, "invalid_request")


def test_another_users_timelapse_is_unknown(alice: Api, bob: Api) -> None:
    created = alice.create(200 * 1024 * 1024)  # multipart, so every upload route applies
    tid = created["timelapse"]["id"]
    for method, path, body in [
        ("GET", f"/timelapses/{tid}", None),
        ("DELETE", f"/timelapses/{tid}", None),
        ("POST", f"/timelapses/{tid}/cancel", None),
        ("POST", f"/timelapses/{tid}/process", None),
        ("GET", f"/timelapses/{tid}/upload", None),
        ("POST", f"/timelapses/{tid}/upload/parts", {"partNumbers": [1]}),
        ("POST", f"/timelapses/{tid}/upload/complete", None),
    ]:
        answer = bob.request(method, path, json=body)
        _refused(answer, 404, "not_found")
        missing = path.replace(tid, "00000000-0000-0000-0000-000000000000")
        unknown = bob.request(method, missing, json=body)
        assert unknown.status_code == 404
        assert (
            unknown.json()["error"]["message"].replace("00000000-0000-0000-0000-000000000000", tid)
            == answer.json()["error"]["message"]
        ), "another's id must look exactly like a missing one"
    listed = bob.request("GET", "/projects/p-e2e/timelapses").json()["items"]
    assert tid not in [item["id"] for item in listed]
    # And nothing happened to it
    assert alice.get(tid)["status"] == "pending"


def test_state_conflicts_answer_409(alice: Api) -> None:
    put_record = alice.create(1000)["timelapse"]["id"]
    # No original uploaded yet: nothing to process
    message = _refused(alice.request("POST", f"/timelapses/{put_record}/process"), 409, "conflict")
    assert "uploaded" in message
    # A PUT upload has no multipart routes
    for method, path in [
        ("GET", f"/timelapses/{put_record}/upload"),
        ("POST", f"/timelapses/{put_record}/upload/complete"),
    ]:
        _refused(alice.request(method, path), 409, "conflict")


def test_multipart_routes_check_their_input(alice: Api) -> None:
    created = alice.create(200 * 1024 * 1024)
    tid = created["timelapse"]["id"]
    count = created["upload"]["partCount"]
    for body in [{}, {"partNumbers": []}, {"partNumbers": [0]}, {"partNumbers": [count + 1]}]:
        _refused(alice.request("POST", f"/timelapses/{tid}/upload/parts", json=body), 400,
                 "invalid_request")  # fmt: skip
    # Completing with nothing uploaded says what is missing, and loses nothing
    message = _refused(alice.request("POST", f"/timelapses/{tid}/upload/complete"), 400,
                       "invalid_request")  # fmt: skip
    assert "incomplete" in message
    assert alice.get(tid)["stage"] == "awaiting_upload"


def test_list_refuses_bad_queries(alice: Api) -> None:
    for query in [{"limit": 0}, {"limit": 101}, {"limit": "x"}, {"status": "done"},
                  {"cursor": "not-a-cursor"}]:  # fmt: skip
        answer = alice.request("GET", "/projects/p-refuse/timelapses", params=query)
        _refused(answer, 400, "invalid_request")


def test_an_upload_of_another_size_than_declared_fails_with_a_reason(
    alice: Api, clip_5s: Path, stack: RunningStack
) -> None:
    # Given a record declaring one byte more than the file has (local storage does not enforce
    # the signed Content-Length, so the worker's own check must catch it)
    data = clip_5s.read_bytes()
    created = alice.create(len(data) + 1)
    tid = created["timelapse"]["id"]
    requests.put(created["upload"]["url"], data=data, headers=created["upload"]["headers"],
                 timeout=60)  # fmt: skip
    # Then it fails with a message a person understands, and the object is deleted
    failed = alice.wait_for(tid)
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "size_mismatch"
    assert "declared" in failed["error"]["message"]
    assert requests.get(failed["urls"]["original"], timeout=10).status_code == 404


@pytest.mark.parametrize(
    ("content_type", "filename", "extension"),
    [
        ("video/mp2t", "00001.MTS", "mts"),
        ("", "00002.m2ts", "m2ts"),
        ("application/octet-stream", "screen.webm", "webm"),
        ("video/x-flv", None, "bin"),
    ],
)
def test_create_takes_what_cameras_and_browsers_label_videos_with(
    alice: Api, content_type: str, filename: str | None, extension: str
) -> None:
    # contentType is advisory: the bytes decide after upload
    body = {**VALID, "contentType": content_type}
    if filename:
        body["filename"] = filename
    answer = alice.request("POST", "/timelapses", json=body)
    assert answer.status_code == 201, answer.text
    timelapse = answer.json()["timelapse"]
    assert timelapse["originalVideoKey"].endswith(f".{extension}")
    assert answer.json()["upload"]["headers"]["Content-Type"] == timelapse["contentType"]
