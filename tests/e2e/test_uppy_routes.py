"""Uppy's routes over HTTP, as @uppy/aws-s3 drives them: Uppy 6's signRequest and the Companion S3
routes of Uppy 4–5. Each signed request is then sent to storage exactly as Uppy sends it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.e2e.conftest import Api, RunningStack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

KEY = re.compile(r"^videos/[0-9a-f-]{36}\.mp4$")


def _sign(api: Api, **body: Any) -> requests.Response:
    return api.request("POST", "/uploads/sign", json=body)


def _signed(api: Api, **body: Any) -> dict[str, Any]:
    answer = _sign(api, **body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _xml_value(xml: str, tag: str) -> str:
    match = re.search(rf"<{tag}>([^<]+)</{tag}>", xml)
    assert match, xml
    return match.group(1)


def _uppy6_multipart(api: Api, data: bytes, **fields: Any) -> tuple[str, str, str]:
    """What Uppy 6 does for a multipart upload, up to (and without) completing it."""
    created = _signed(
        api,
        method="POST",
        key="0c6e-desk.mp4",
        projectId="p-uppy",
        contentType="video/mp4",
        sizeBytes=len(data),
        **fields,
    )
    key = created["key"]
    # CreateMultipartUpload is the browser's own signed POST ?uploads.
    opened = requests.post(created["url"], headers={"Content-Type": "video/mp4"}, timeout=30)
    assert opened.status_code == 200, opened.text
    upload_id = _xml_value(opened.text, "UploadId")
    part = _signed(api, method="PUT", key=key, uploadId=upload_id, partNumber=1)
    sent = requests.put(part["url"], data=data, timeout=60)
    assert sent.status_code == 200, sent.text
    return created["timelapseId"], key, upload_id


# --- Uppy 6: signRequest ----------------------------------------------------------------------


def test_uppy6_simple_put_creates_the_timelapse_under_the_servers_key(
    alice: Api, clip_5s: Path
) -> None:
    data = clip_5s.read_bytes()
    # Given Uppy's request to sign a PutObject of its own key, with the front end's fields
    signed = _signed(
        alice,
        method="PUT",
        key="3f1c-desk.mp4",
        contentType="video/mp4",
        projectId="p-uppy",
        targetSeconds=2,
        sizeBytes=len(data),
        filename="desk.mp4",
    )
    # Then the server created the timelapse and answers its own key, which Uppy adopts
    assert KEY.match(signed["key"]), signed
    assert signed["key"] == f"videos/{signed['timelapseId']}.mp4"
    assert signed["headers"] == {"Content-Type": "video/mp4"}
    record = alice.get(signed["timelapseId"])
    assert record["status"] == "pending"
    assert record["projectId"] == "p-uppy"
    assert record["filename"] == "desk.mp4"
    # When the browser PUTs the file to the signed URL, it is processed as any upload
    sent = requests.put(signed["url"], data=data, headers=signed["headers"], timeout=60)
    assert sent.status_code == 200, sent.text
    done = alice.wait_for(signed["timelapseId"])
    assert done["status"] == "complete", done
    assert done["targetSeconds"] == 2


def test_uppy6_put_is_signed_for_the_declared_type_and_length(alice: Api) -> None:
    signed = _signed(
        alice, method="PUT", key="k.mp4", projectId="p-uppy", contentType="video/mp4", sizeBytes=10
    )
    # S3 refuses a body of another size (moto does not check signatures; the URL says it all)
    assert "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost" in signed["url"]


def test_uppy6_multipart_create_parts_list_complete(alice: Api, clip_5s: Path) -> None:
    data = clip_5s.read_bytes()
    # Given a multipart upload opened by the browser and one part sent
    timelapse_id, key, upload_id = _uppy6_multipart(alice, data, targetSeconds=2)
    assert key == f"videos/{timelapse_id}.mp4"
    # When Uppy lists the parts (resume) through a signed GET
    listed = _signed(alice, method="GET", key=key, uploadId=upload_id)
    parts = requests.get(listed["url"], timeout=30)
    assert parts.status_code == 200, parts.text
    etag = _xml_value(parts.text, "ETag")
    assert _xml_value(parts.text, "Size") == str(len(data))
    # And completes it through a signed POST with the XML body
    completing = _signed(alice, method="POST", key=key, uploadId=upload_id)
    xml = (
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
        f"<ETag>{etag}</ETag></Part></CompleteMultipartUpload>"
    )
    done = requests.post(
        completing["url"], data=xml, headers={"Content-Type": "application/xml"}, timeout=60
    )
    assert done.status_code == 200, done.text
    # Then the timelapse is processed
    record = alice.wait_for(timelapse_id)
    assert record["status"] == "complete", record


def test_uppy6_abort_cancels_the_timelapse(alice: Api, clip_5s: Path, stack: RunningStack) -> None:
    timelapse_id, key, upload_id = _uppy6_multipart(alice, clip_5s.read_bytes())
    # When Uppy aborts the upload
    signed = _signed(alice, method="DELETE", key=key, uploadId=upload_id)
    assert signed["timelapseId"] == timelapse_id
    # Then the timelapse is cancelled and storage holds no part of it, even before the
    # browser's own DELETE (which then finds nothing left to abort)
    record = alice.get(timelapse_id)
    assert record["status"] == "cancelled"
    uploads = stack.config.s3().list_multipart_uploads(Bucket=stack.config.bucket, Prefix=key)
    assert not uploads.get("Uploads")
    assert requests.delete(signed["url"], timeout=30).status_code in {204, 404}
    # And the upload cannot go on
    again = _sign(alice, method="PUT", key=key, uploadId=upload_id, partNumber=2)
    assert again.status_code == 409


def test_uppy6_a_cancel_through_the_api_aborts_the_browsers_upload(
    alice: Api, clip_5s: Path, stack: RunningStack
) -> None:
    timelapse_id, key, upload_id = _uppy6_multipart(alice, clip_5s.read_bytes())
    assert alice.request("POST", f"/timelapses/{timelapse_id}/cancel").status_code == 202
    # lapse never stored the browser's uploadId: its next request aborts the upload
    assert _sign(alice, method="PUT", key=key, uploadId=upload_id, partNumber=2).status_code == 409
    uploads = stack.config.s3().list_multipart_uploads(Bucket=stack.config.bucket, Prefix=key)
    assert not uploads.get("Uploads")


def test_uppy6_another_users_or_a_malformed_key_is_404(alice: Api, bob: Api, clip_5s: Path) -> None:
    _, key, upload_id = _uppy6_multipart(alice, clip_5s.read_bytes())
    for method, extra in (
        ("PUT", {"partNumber": 2}),
        ("GET", {}),
        ("POST", {}),
        ("DELETE", {}),
    ):
        answer = _sign(bob, method=method, key=key, uploadId=upload_id, **extra)
        assert answer.status_code == 404, (method, answer.text)
        assert answer.json()["error"]["code"] == "not_found"
    for bad in ("timelapses/x.mp4", "videos/../secret.mp4", key.replace(".mp4", ".mov"), "k"):
        assert _sign(alice, method="GET", key=bad, uploadId=upload_id).status_code == 404
    # Alice's upload is untouched by Bob's DELETE
    assert _sign(alice, method="GET", key=key, uploadId=upload_id).status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"method": "POST", "key": "k.mp4", "contentType": "video/mp4", "sizeBytes": 9}, 400),
        ({"method": "PUT", "key": "k.txt", "projectId": "p", "contentType": "text/plain"}, 415),
        ({"method": "PUT", "key": "notes.txt", "projectId": "p"}, 415),
        ({"method": "PUT", "key": "k.mp4", "projectId": "p", "sizeBytes": 0}, 400),
        (
            {
                "method": "PUT",
                "key": "k",
                "projectId": "p",
                "contentType": "text/x",
                "sizeBytes": 9,
            },
            415,
        ),
        ({"method": "PATCH", "key": "k.mp4"}, 400),
        ({"method": "GET", "key": "k.mp4"}, 400),
        ({"method": "DELETE", "key": "k.mp4"}, 400),
        ({"method": "PUT", "key": "k.mp4", "uploadId": "u"}, 404),
        ({"key": "k.mp4"}, 400),
    ],
)
def test_uppy6_refusals(alice: Api, body: dict[str, Any], status: int) -> None:
    answer = _sign(alice, **body)
    assert answer.status_code == status, answer.text


def test_uppy_routes_need_a_token(stack: RunningStack) -> None:
    url = stack.config.api_url
    assert requests.post(f"{url}/uploads/sign", json={}, timeout=10).status_code == 401
    assert requests.post(f"{url}/s3/multipart", json={}, timeout=10).status_code == 401
    assert requests.get(f"{url}/s3/params?filename=a.mp4", timeout=10).status_code == 401


# --- Uppy 4–5: Companion S3 routes ------------------------------------------------------------


def _companion_create(api: Api, data: bytes | None, **metadata: Any) -> dict[str, Any]:
    """Uppy's POST /s3/multipart; `data` None: as Uppy sends it, with no size in the metadata."""
    size = {} if data is None else {"sizeBytes": str(len(data))}  # meta values are strings
    body = {
        "filename": "desk.mp4",
        "type": "video/mp4",
        "metadata": {"projectId": "p-uppy", **size, **metadata},
    }
    answer = api.request("POST", "/s3/multipart", json=body)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_companion_multipart_upload(alice: Api, clip_5s: Path) -> None:
    data = clip_5s.read_bytes()
    created = _companion_create(alice, data, targetSeconds="2", name="desk.mp4")
    key, upload_id = created["key"], created["uploadId"]
    assert key == f"videos/{created['timelapseId']}.mp4"
    assert created["bucket"]
    query = {"key": key}
    # Sign a part (Uppy URL-encodes the uploadId and the key)
    path = f"/s3/multipart/{quote(upload_id, safe='')}"
    signed = alice.request("GET", f"{path}/1", params=query)
    assert signed.status_code == 200, signed.text
    assert signed.json()["expires"] > 0
    sent = requests.put(signed.json()["url"], data=data, timeout=60)
    assert sent.status_code == 200, sent.text
    # List the parts
    listed = alice.request("GET", path, params=query)
    assert listed.status_code == 200, listed.text
    assert listed.json() == [{"PartNumber": 1, "ETag": sent.headers["ETag"], "Size": len(data)}]
    # Complete
    done = alice.request(
        "POST",
        f"{path}/complete",
        params=query,
        json={"parts": [{"PartNumber": 1, "ETag": sent.headers["ETag"]}]},
    )
    assert done.status_code == 200, done.text
    assert done.json()["key"] == key
    assert done.json()["location"].startswith("http")
    record = alice.wait_for(created["timelapseId"])
    assert record["status"] == "complete", record
    assert record["targetSeconds"] == 2


def test_companion_params_for_a_single_put(alice: Api, clip_5s: Path) -> None:
    data = clip_5s.read_bytes()
    query = {
        "filename": "desk.mp4",
        "type": "video/mp4",
        "metadata[projectId]": "p-uppy",
        "metadata[sizeBytes]": str(len(data)),
        "metadata[name]": "desk.mp4",
    }
    answer = alice.request("GET", "/s3/params", params=query)
    assert answer.status_code == 200, answer.text
    params = answer.json()
    assert params["method"] == "PUT"
    assert params["headers"] == {"Content-Type": "video/mp4"}
    sent = requests.put(params["url"], data=data, headers=params["headers"], timeout=60)
    assert sent.status_code == 200, sent.text
    assert alice.wait_for(params["timelapseId"])["status"] == "complete"


def test_companion_abort_cancels_and_others_keys_are_404(
    alice: Api, bob: Api, clip_5s: Path, stack: RunningStack
) -> None:
    created = _companion_create(alice, clip_5s.read_bytes())
    key, upload_id = created["key"], created["uploadId"]
    path = f"/s3/multipart/{quote(upload_id, safe='')}"
    # Bob can do nothing with Alice's key
    for method, suffix in (("GET", "/1"), ("GET", ""), ("POST", "/complete"), ("DELETE", "")):
        answer = bob.request(method, f"{path}{suffix}", params={"key": key}, json={})
        assert answer.status_code == 404, (method, suffix, answer.text)
    assert alice.request("GET", path, params={"key": "videos/nope.mp4"}).status_code == 404
    assert alice.request("GET", path).status_code == 400  # no key at all
    # Alice aborts: {} and the timelapse is cancelled, the upload gone
    aborted = alice.request("DELETE", path, params={"key": key})
    assert aborted.status_code == 200, aborted.text
    assert aborted.json() == {}
    assert alice.get(created["timelapseId"])["status"] == "cancelled"
    uploads = stack.config.s3().list_multipart_uploads(Bucket=stack.config.bucket, Prefix=key)
    assert not uploads.get("Uploads")


def test_companion_needs_a_project(alice: Api) -> None:
    no_project = {"filename": "a.mp4", "type": "video/mp4", "metadata": {"sizeBytes": "9"}}
    assert alice.request("POST", "/s3/multipart", json=no_project).status_code == 400
    assert alice.request("GET", "/s3/params", params={"filename": "a.mp4"}).status_code == 400


# --- no size: as Uppy sends it (the contract's sizeBytes is optional on these routes) ---------


def _uppy6_put_as_uppy_asks(api: Api, path: Path) -> dict[str, Any]:
    """Uppy 6's PutObject request, its own key, plus the front end's projectId: nothing else."""
    signed = _signed(api, method="PUT", key=f"{uuid.uuid4()}-{path.name}", projectId="p-nosize")
    data = path.read_bytes()
    sent = requests.put(signed["url"], data=data, headers=signed["headers"], timeout=60)
    assert sent.status_code == 200, sent.text
    return signed


def _companion_multipart_upload(api: Api, data: bytes) -> dict[str, Any]:
    created = _companion_create(api, None)
    key, upload_id = created["key"], created["uploadId"]
    path, query = f"/s3/multipart/{quote(upload_id, safe='')}", {"key": key}
    signed = api.request("GET", f"{path}/1", params=query)
    assert signed.status_code == 200, signed.text
    sent = requests.put(signed.json()["url"], data=data, timeout=60)
    assert sent.status_code == 200, sent.text
    parts = [{"PartNumber": 1, "ETag": sent.headers["ETag"]}]
    done = api.request("POST", f"{path}/complete", params=query, json={"parts": parts})
    assert done.status_code == 200, done.text
    return created


def test_uppy6_without_size_or_type_learns_both_from_what_storage_holds(
    alice: Api, clip_5s: Path
) -> None:
    signed = _uppy6_put_as_uppy_asks(alice, clip_5s)
    assert signed["headers"] == {"Content-Type": "video/mp4"}  # from the name in Uppy's key
    done = alice.wait_for(signed["timelapseId"])
    assert done["status"] == "complete", done
    assert done["sizeBytes"] == clip_5s.stat().st_size
    assert (done["filename"], done["contentType"]) == (clip_5s.name, "video/mp4")


def test_companion_without_size_completes_with_the_stored_size(alice: Api, clip_5s: Path) -> None:
    created = _companion_multipart_upload(alice, clip_5s.read_bytes())
    done = alice.wait_for(created["timelapseId"])
    assert done["status"] == "complete", done
    assert done["sizeBytes"] == clip_5s.stat().st_size


def test_companion_params_without_size(alice: Api, clip_5s: Path) -> None:
    query = {"filename": clip_5s.name, "type": "video/mp4", "metadata[projectId]": "p-nosize"}
    answer = alice.request("GET", "/s3/params", params=query)
    assert answer.status_code == 200, answer.text
    params = answer.json()
    sent = requests.put(
        params["url"], data=clip_5s.read_bytes(), headers=params["headers"], timeout=60
    )
    assert sent.status_code == 200, sent.text
    done = alice.wait_for(params["timelapseId"])
    assert done["status"] == "complete", done
    assert done["sizeBytes"] == clip_5s.stat().st_size


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory: pytest.TempPathFactory, clip_5s: Path) -> Iterator[RunningStack]:
    """A stack whose upload limit is one byte below the test clip."""
    log = tmp_path_factory.mktemp("small") / "stack.log"
    limit = str(clip_5s.stat().st_size - 1)
    with running_stack(log, LAPSE_MAX_UPLOAD_BYTES=limit) as running:
        yield running


def _refused_as_too_large(stack: RunningStack, api: Api, timelapse_id: str) -> None:
    failed = api.wait_for(timelapse_id, timeout=60)
    assert failed["status"] == "failed", failed
    assert failed["error"]["code"] == "too_large"
    assert "over the limit" in failed["error"]["message"]
    s3 = stack.config.s3()
    listed = s3.list_objects_v2(Bucket=stack.config.bucket, Prefix=failed["originalVideoKey"])
    assert listed.get("KeyCount", 0) == 0, "the oversized original is deleted"


def test_an_oversized_upload_without_a_size_fails_with_a_reason_and_is_deleted(
    small_stack: RunningStack, clip_5s: Path
) -> None:
    api = small_stack.api("dave")
    # Uppy 6, simple PUT
    signed = _uppy6_put_as_uppy_asks(api, clip_5s)
    _refused_as_too_large(small_stack, api, signed["timelapseId"])
    # Companion multipart
    created = _companion_multipart_upload(api, clip_5s.read_bytes())
    _refused_as_too_large(small_stack, api, created["timelapseId"])


# --- local dev token ----------------------------------------------------------------------------


def test_dev_token_is_served_locally(stack: RunningStack) -> None:
    url = stack.config.api_url
    answer = requests.post(f"{url}/dev/token", json={"user": "carol"}, timeout=10)
    assert answer.status_code == 200, answer.text
    token = answer.json()["token"]
    listed = requests.get(
        f"{url}/projects/p-1/timelapses",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert listed.status_code == 200, listed.text
    assert requests.post(f"{url}/dev/token", json={}, timeout=10).status_code == 400


def test_the_timelapse_options_ride_along_on_both_uppy_paths(alice: Api, clip_5s: Path) -> None:
    # Uppy 6: the front end's fields, as JSON
    signed = _signed(
        alice, method="PUT", key="3f1c-desk.mp4", contentType="video/mp4", projectId="p-uppy",
        speed=5, fps=60, resolution="720p", skipIdle=True,
    )  # fmt: skip
    record = alice.get(signed["timelapseId"])
    assert (record["speed"], record["options"]["fps"], record["options"]["skipIdle"]) == (
        5,
        60,
        True,
    )
    # Uppy 4–5: metadata as text in the query
    query = {
        "filename": "desk.mp4", "type": "video/mp4", "metadata[projectId]": "p-uppy",
        "metadata[fps]": "24", "metadata[resolution]": "720p", "metadata[timestamp]": "true",
        "metadata[deflicker]": "false",
    }  # fmt: skip
    answer = alice.request("GET", "/s3/params", params=query)
    assert answer.status_code == 200, answer.text
    options = alice.get(answer.json()["timelapseId"])["options"]
    assert options == {
        "fps": 24, "resolution": "720p", "skipIdle": False, "timestamp": True, "deflicker": False,
    }  # fmt: skip
    refused = alice.request("GET", "/s3/params", params={**query, "metadata[fps]": "29.97"})
    assert refused.status_code == 400
    assert "fps must be one of" in refused.text
