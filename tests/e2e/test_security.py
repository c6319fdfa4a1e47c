"""The fault suite (issue 13), end to end over real HTTP: tries per category, each one refused
in lapse's `{"error": {code, message}}` shape (or fail the record with a reason), leaving nothing
open behind it.

Categories: malformed requests, filenames, path parameters.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import requests

from tests.e2e.conftest import Api, RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

VALID = {"projectId": "p-security", "contentType": "video/mp4", "sizeBytes": 1000}
MULTIPART = {**VALID, "sizeBytes": 200 * 1024 * 1024}


def refused(answer: requests.Response, status: int) -> dict[str, str]:
    assert answer.status_code == status, (answer.status_code, answer.text[:300])
    assert answer.headers["Content-Type"].startswith("application/json"), answer.headers
    error = answer.json()["error"]
    assert isinstance(error["code"], str)
    assert isinstance(error["message"], str)
    assert error["code"]
    assert error["message"]
    return dict(error)


def open_uploads(stack: RunningStack) -> list[str]:
    answer = stack.config.s3().list_multipart_uploads(Bucket=stack.config.bucket)
    return [upload["UploadId"] for upload in answer.get("Uploads", [])]


# --- malformed requests ---------------------------------------------------------------------


def multipart_with(field: str, raw_value: str) -> str:
    """A valid multipart create body plus one field written as raw JSON text."""
    return json.dumps(MULTIPART)[:-1] + f', "{field}": {raw_value}}}'


BAD_BODIES: list[tuple[str, str, int]] = [
    ("durationMinutes 1e300", multipart_with("durationMinutes", "1e300"), 400),
    ("durationMinutes 400 digits", multipart_with("durationMinutes", "1" + "0" * 400), 400),
    ("targetSeconds Infinity", multipart_with("targetSeconds", "Infinity"), 400),
    ("durationMinutes NaN", multipart_with("durationMinutes", "NaN"), 400),
    ("sizeBytes 5000 digits", multipart_with("sizeBytes", "1" + "0" * 5000), 400),
    ("100k-deep array", "[" * 100_000 + "]" * 100_000, 400),
    ("100k-deep object", '{"a":' * 100_000 + "1" + "}" * 100_000, 400),
    ("deep inside a valid body", multipart_with("x", "[" * 50_000 + "]" * 50_000), 400),
    ("not JSON", "{projectId: p}", 400),
    ("invalid UTF-8", b'{"projectId": "\xff"}'.decode("latin-1"), 400),
]


@pytest.mark.parametrize(("name", "body", "status"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
def test_malformed_bodies_are_refused_and_open_nothing(
    stack: RunningStack, alice: Api, name: str, body: str, status: int
) -> None:
    before = set(open_uploads(stack))
    answer = alice.request(
        "POST",
        "/timelapses",
        data=body.encode("latin-1" if name == "invalid UTF-8" else "utf-8"),
        headers={"Content-Type": "application/json"},
    )
    assert refused(answer, status)["code"] == "invalid_request"
    assert set(open_uploads(stack)) <= before, "a refused create left a multipart upload open"


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("POST", "/timelapses", {"Content-Type": "application/xml"}, 415),
        ("POST", "/uploads/sign", {"Content-Type": "text/plain"}, 415),
        ("PATCH", "/timelapses/00000000-0000-0000-0000-000000000000", {}, 405),
        ("GET", "/no/such/route", {}, 403),
        ("GET", "/health", {"X-Big": "x" * 70_000}, 431),
        ("GET", "/health", {f"X-H{i}": "1" for i in range(120)}, 431),
    ],
    ids=["xml-body", "text-to-uppy", "patch", "unknown-route", "huge-header", "many-headers"],
)
def test_refusals_before_the_app_are_in_lapses_shape(
    stack: RunningStack, alice: Api, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    answer = alice.request(method, path, data="{}", headers=headers)
    refused(answer, status)


# --- filenames --------------------------------------------------------------------------------

BAD_FILENAMES = [
    "a.mp4\r\nSet-Cookie: session=stolen",
    "a.mp4\nX-Injected: 1",
    "nul\x00.mp4",
    "bell\x07.mp4",
    "tab\t.mp4",
    "esc\x1b[31m.mp4",
    "rtl\u202egnp.mp4",
    "../../etc/passwd",
    "C:\\Windows\\x.mp4",
    "dir/name.mp4",
    "x" * 256,
    "..",
]


@pytest.mark.parametrize("filename", BAD_FILENAMES, ids=range(len(BAD_FILENAMES)))
def test_unsafe_filenames_are_refused(alice: Api, filename: str) -> None:
    answer = alice.request("POST", "/timelapses", json={**VALID, "filename": filename})
    assert "filename" in refused(answer, 400)["message"]


@pytest.mark.parametrize(
    "filename", ['desk "session" 1.mp4', "Büro 08:00 – Tag 2.mov", "日本語.mp4", "100% done.mp4"]
)
def test_download_names_are_encoded_per_rfc_6266(alice: Api, filename: str) -> None:
    created = alice.create(4, filename=filename)
    alice.upload_put(created, b"abcd")
    original = alice.get(created["timelapse"]["id"])["urls"]["original"]
    answer = requests.get(original, timeout=10)
    assert answer.status_code == 200
    disposition = answer.headers["Content-Disposition"]
    assert disposition.startswith('inline; filename="')
    assert f"filename*=UTF-8''{quote(filename, safe='')}" in disposition
    assert "\r" not in disposition
    assert "\n" not in disposition


# --- path parameters ------------------------------------------------------------------------


@pytest.mark.parametrize("project", ["my project", "Büro", "日本", "100% sure", "a+b"])
def test_any_stored_project_id_can_be_listed(alice: Api, project: str) -> None:
    created = alice.create(1000, projectId=project)
    answer = alice.request("GET", f"/projects/{quote(project, safe='')}/timelapses")
    assert answer.status_code == 200, answer.text
    assert [item["id"] for item in answer.json()["items"]] == [created["timelapse"]["id"]]
    assert answer.json()["items"][0]["projectId"] == project


# --- webhook targets --------------------------------------------------------------------------

BAD_CALLBACKS = [
    "https://[fec0::1]/hook",
    "https://[fec0:1:2:3::42]:8443/hook",
    "https://[feff::1]/hook",
    "https://[fd00::1]/hook",
    "https://[fe80::1]/hook",
    "https://[2001:db8::1]/hook",
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://[::ffff:169.254.169.254]/latest/meta-data",
    "https://[64:ff9b::a9fe:a9fe]/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://100.64.0.1/hook",
    "https://192.0.0.8/hook",
    "https://198.18.0.1/hook",
    "https://10.0.0.1/hook",
    "https://0.0.0.0/hook",
    "https://224.0.0.1/hook",
    "http://example.com/hook",
]


@pytest.mark.parametrize("url", BAD_CALLBACKS)
def test_callbacks_to_non_public_addresses_are_refused(alice: Api, url: str) -> None:
    answer = alice.request("POST", "/timelapses", json={**VALID, "callbackUrl": url})
    assert "callbackUrl" in refused(answer, 400)["message"]
