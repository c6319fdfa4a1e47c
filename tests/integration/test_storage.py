"""S3Storage against the local S3: multipart uploads as a browser makes them (presigned part
URLs), heads, deletes, and the worker's uploads with metadata and cancellation."""

from __future__ import annotations

import os
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from chalicelib.adapters.storage import S3Storage
from chalicelib.domain.parts import MULTIPART_THRESHOLD
from chalicelib.errors import NotFoundError
from chalicelib.services.ports import StoredPart
from local.config import LocalStack

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

MiB = 1024 * 1024
PART = 10 * MiB
METADATA = {"timelapse-id": "t-1", "upload-method": "multipart", "file-size": str(PART + 3)}


@pytest.fixture
def s3(local_stack: LocalStack) -> S3Client:
    """A plain client for looking at the bucket behind the adapter's back."""
    return local_stack.s3()


@pytest.fixture
def prefix(storage: S3Storage, s3: S3Client) -> Iterator[str]:
    """A key prefix of this test's own (outside videos/, so no processing events); emptied after."""
    scratch = f"scratch/{uuid.uuid4().hex}/"
    yield scratch
    for key, upload_id in storage.list_multipart_uploads(scratch):
        storage.abort_multipart(key, upload_id)
    listed = s3.list_objects_v2(Bucket=storage.bucket, Prefix=scratch)
    storage.delete(*(item["Key"] for item in listed.get("Contents", [])))


def put_through_url(url: str, body: bytes) -> str:
    """PUT bytes to a presigned URL as a browser does; the ETag storage answers."""
    # urllib would label the body as a form; a browser sends the file's type
    headers = {"Content-Type": "application/octet-stream"}
    request = urllib.request.Request(url, data=body, method="PUT", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
        return str(answer.headers["ETag"])


def wait_for(condition: object, *, timeout: float = 10.0) -> None:
    """Poll `condition()` until true (s3transfer cleans up on its own threads)."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# --- multipart: create, list, complete, abort --------------------------------------------------


def test_multipart_upload_through_presigned_part_urls(
    storage: S3Storage, s3: S3Client, prefix: str
) -> None:
    # Given a multipart upload of a 10 MiB part and a 3-byte last part
    key = f"{prefix}video.mp4"
    upload_id = storage.create_multipart(key, content_type="video/mp4", metadata=METADATA)
    assert (key, upload_id) in storage.list_multipart_uploads(prefix)
    first, last = os.urandom(PART), b"end"
    # When the client PUTs each part to its presigned URL
    etags = {
        1: put_through_url(storage.presign_part(key, upload_id, 1, 60).url, first),
        2: put_through_url(storage.presign_part(key, upload_id, 2, 60).url, last),
    }
    # Then storage lists what it holds
    assert storage.list_parts(key, upload_id) == [
        StoredPart(1, etags[1], PART),
        StoredPart(2, etags[2], 3),
    ]
    # When the upload is completed (parts given in any order)
    storage.complete_multipart(key, upload_id, [(2, etags[2]), (1, etags[1])])
    # Then the object is whole, with the upload's type and metadata, and the upload is gone
    found = storage.head(key)
    assert found is not None
    assert found.size == PART + 3
    assert found.content_type == "video/mp4"
    assert found.metadata == METADATA
    assert storage.list_multipart_uploads(prefix) == []
    body = s3.get_object(Bucket=storage.bucket, Key=key)["Body"].read()
    assert body == first + last


def test_completions_are_answered_as_s3_answers_them(storage: S3Storage, prefix: str) -> None:
    # Given an upload completed once
    key = f"{prefix}retried.mp4"
    upload_id = storage.create_multipart(key, content_type="video/mp4", metadata=METADATA)
    etag = put_through_url(storage.presign_part(key, upload_id, 1, 60).url, b"whole")
    storage.complete_multipart(key, upload_id, [(1, etag)])
    # When the completion is sent again (its first answer lost), then it is done again
    storage.complete_multipart(key, upload_id, [(1, etag)])
    # And completing an aborted upload is "gone" (NoSuchUpload, 404), not a server error
    aborted = storage.create_multipart(key, content_type="video/mp4", metadata=METADATA)
    other = put_through_url(storage.presign_part(key, aborted, 1, 60).url, b"other")
    storage.abort_multipart(key, aborted)
    with pytest.raises(NotFoundError):
        storage.complete_multipart(key, aborted, [(1, other)])
    assert storage.head(key) is not None


def test_a_completion_retried_while_the_first_joins_gets_the_same_object(
    storage: S3Storage, local_stack: LocalStack, prefix: str
) -> None:
    # Given an upload of several parts, completed 4 times at the same moment by clients that do
    # not retry (a client that timed out while storage joined gigabytes, and tried again)
    key = f"{prefix}raced.mp4"
    upload_id = storage.create_multipart(key, content_type="video/mp4", metadata=METADATA)
    chunks = [os.urandom(PART) for _ in range(4)] + [b"end"]
    parts: list[CompletedPartTypeDef] = [
        {
            "PartNumber": n,
            "ETag": put_through_url(storage.presign_part(key, upload_id, n, 60).url, c),
        }
        for n, c in enumerate(chunks, start=1)
    ]
    once = boto3.client(
        "s3",
        endpoint_url=local_stack.endpoint,
        region_name=local_stack.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}),
    )

    def complete() -> str:
        return once.complete_multipart_upload(
            Bucket=storage.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
        )["ETag"]

    with ThreadPoolExecutor(4) as pool:
        etags = [done.result() for done in [pool.submit(complete) for _ in range(4)]]
    # Then every attempt got the same object, whole
    assert len(set(etags)) == 1
    body = once.get_object(Bucket=storage.bucket, Key=key)["Body"].read()
    assert body == b"".join(chunks)


def test_abort_removes_the_upload_and_its_parts(storage: S3Storage, prefix: str) -> None:
    # Given an upload with one part stored
    key = f"{prefix}video.mp4"
    upload_id = storage.create_multipart(key, content_type="video/mp4", metadata=METADATA)
    put_through_url(storage.presign_part(key, upload_id, 1, 60).url, os.urandom(PART))
    assert [p.part_number for p in storage.list_parts(key, upload_id)] == [1]
    # When it is aborted
    storage.abort_multipart(key, upload_id)
    # Then nothing is left, and what comes after says so as NotFoundError
    assert storage.list_multipart_uploads(prefix) == []
    assert storage.head(key) is None
    with pytest.raises(NotFoundError):
        storage.list_parts(key, upload_id)
    # (completing it would be NoSuchUpload → NotFoundError on S3; moto 5.2 answers a 500 there)
    # and aborting again is harmless (a cancel racing the lifecycle rule)
    storage.abort_multipart(key, upload_id)


def test_list_parts_of_an_unknown_upload_is_not_found(storage: S3Storage, prefix: str) -> None:
    with pytest.raises(NotFoundError):
        storage.list_parts(f"{prefix}video.mp4", "no-such-upload")


def test_list_parts_pages_through_many_parts(storage: S3Storage, s3: S3Client, prefix: str) -> None:
    # Given an upload with more parts than one listing page holds (1,000)
    key = f"{prefix}many.bin"
    upload_id = storage.create_multipart(key, content_type="video/mp4", metadata={})

    def upload(number: int) -> None:
        s3.upload_part(
            Bucket=storage.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=b"x"
        )

    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(upload, range(1, 1003)))
    # Then every part is listed once, in order
    parts = storage.list_parts(key, upload_id)
    assert [p.part_number for p in parts] == list(range(1, 1003))


# --- objects ------------------------------------------------------------------------------------


def test_head_of_a_missing_key_is_none(storage: S3Storage, prefix: str) -> None:
    assert storage.head(f"{prefix}missing.mp4") is None


def test_delete_removes_every_key_given(storage: S3Storage, s3: S3Client, prefix: str) -> None:
    # Given two objects and one that does not exist
    keys = [f"{prefix}a.mp4", f"{prefix}b.jpg"]
    for key in keys:
        s3.put_object(Bucket=storage.bucket, Key=key, Body=b"x")
    kept = f"{prefix}kept.mp4"
    s3.put_object(Bucket=storage.bucket, Key=kept, Body=b"y")
    # When they are deleted together with a missing and an empty key
    storage.delete(*keys, f"{prefix}never.mp4", "")
    # Then they are gone and nothing else is
    assert [storage.head(key) for key in keys] == [None, None]
    kept_info = storage.head(kept)
    assert kept_info is not None
    assert kept_info.size == 1
    # and deleting nothing is a no-op
    storage.delete()
    storage.delete("")


@pytest.mark.parametrize(
    ("size", "method"), [(1234, "simple"), (MULTIPART_THRESHOLD + 5 * MiB, "multipart")]
)
def test_upload_file_stores_type_and_metadata(
    storage: S3Storage, prefix: str, tmp_path: Path, size: int, method: str
) -> None:
    # Given a finished file
    path = tmp_path / "timelapse.mp4"
    path.write_bytes(os.urandom(size))
    metadata = {"timelapse-id": "t-9", "upload-method": method, "file-size": str(size)}
    sent: list[int] = []
    # When it is uploaded
    key = f"{prefix}timelapse.mp4"
    storage.upload_file(
        path, key, content_type="video/mp4", metadata=metadata, on_bytes=sent.append
    )
    # Then head shows the size, type and metadata, and progress saw every byte
    found = storage.head(key)
    assert found is not None
    assert found.size == size
    assert found.content_type == "video/mp4"
    assert found.metadata == metadata
    assert sum(sent) == size
    assert storage.list_multipart_uploads(prefix) == []


class Cancelled(Exception):
    pass


def test_upload_file_stopped_by_on_bytes_leaves_no_upload_behind(
    storage: S3Storage, prefix: str, tmp_path: Path
) -> None:
    # Given a file big enough to go up as a multipart upload
    path = tmp_path / "timelapse.mp4"
    path.write_bytes(os.urandom(MULTIPART_THRESHOLD + 8 * MiB))
    calls: list[int] = []

    def stop(sent: int) -> None:
        calls.append(sent)
        raise Cancelled("the timelapse was cancelled")

    # When the progress callback raises (the worker saw a cancel)
    key = f"{prefix}timelapse.mp4"
    with pytest.raises(Cancelled, match="cancelled"):
        storage.upload_file(path, key, content_type="video/mp4", metadata={}, on_bytes=stop)
    # Then the exception came from our callback, and storage keeps no object and no upload
    assert calls
    wait_for(lambda: storage.list_multipart_uploads(prefix) == [])
    assert storage.head(key) is None
