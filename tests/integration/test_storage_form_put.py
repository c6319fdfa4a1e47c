"""A form-encoded PUT (what `curl --data-binary` sends) to the local storage is answered as S3
answers it: stored as sent, or 403 when the presigned URL signed another content type or has
expired. Before local/s3_form_put.py a binary body hung the request."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import boto3
import pytest
import requests
from botocore.config import Config

from local.config import LocalStack

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

FORM = "application/x-www-form-urlencoded"
BODY = b"\x00\x9f\xff not text = &x " * 5000  # not UTF-8, and looks like a form


@pytest.fixture(params=["s3v4", "s3"])  # SigV4, as lapse signs; the legacy SigV2
def signature_version(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def s3(local_stack: LocalStack, signature_version: str) -> S3Client:
    return boto3.client(
        "s3",
        endpoint_url=local_stack.endpoint,
        region_name=local_stack.region,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(signature_version=signature_version, s3={"addressing_style": "path"}),
    )


def presigned_put(
    s3: S3Client, bucket: str, key: str, content_type: str | None, expires: int = 600
) -> str:
    params = {"Bucket": bucket, "Key": key}
    if content_type:
        params["ContentType"] = content_type
    return s3.generate_presigned_url("put_object", Params=params, ExpiresIn=expires)


def put_form(url: str) -> requests.Response:
    return requests.put(url, data=BODY, headers={"Content-Type": FORM}, timeout=15)


def stored(s3: S3Client, bucket: str, key: str) -> tuple[bytes, str] | None:
    try:
        found = s3.get_object(Bucket=bucket, Key=key)
    except s3.exceptions.NoSuchKey:
        return None
    return found["Body"].read(), found["ContentType"]


def test_a_url_that_signs_no_content_type_stores_the_bytes_as_sent(
    s3: S3Client, local_stack: LocalStack, signature_version: str
) -> None:
    bucket, key = local_stack.bucket, "form-put/unsigned-type.bin"

    answer = put_form(presigned_put(s3, bucket, key, None))

    if signature_version == "s3":
        # SigV2 always signs Content-Type (empty here): S3 refuses any other
        assert answer.status_code == 403
        assert "<Code>SignatureDoesNotMatch</Code>" in answer.text
        return
    assert answer.status_code == 200, answer.text
    assert stored(s3, bucket, key) == (BODY, FORM)


def test_a_url_that_signed_this_content_type_stores_the_bytes(
    s3: S3Client, local_stack: LocalStack
) -> None:
    bucket, key = local_stack.bucket, "form-put/signed-form.bin"

    answer = put_form(presigned_put(s3, bucket, key, FORM))

    assert answer.status_code == 200, answer.text
    assert stored(s3, bucket, key) == (BODY, FORM)


def test_a_url_that_signed_another_content_type_is_a_403(
    s3: S3Client, local_stack: LocalStack
) -> None:
    bucket, key = local_stack.bucket, "form-put/signed-video.mp4"

    answer = put_form(presigned_put(s3, bucket, key, "video/mp4"))

    assert answer.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in answer.text
    assert FORM in answer.text
    assert stored(s3, bucket, key) is None


def test_a_tampered_or_expired_url_is_a_403(s3: S3Client, local_stack: LocalStack) -> None:
    bucket = local_stack.bucket
    good = presigned_put(s3, bucket, "form-put/tampered.bin", None)
    assert "form-put/tampered.bin" in good
    tampered = good.replace("form-put/tampered.bin", "form-put/elsewhere.bin")
    expiring = presigned_put(s3, bucket, "form-put/expired.bin", None, expires=1)
    time.sleep(2)

    assert put_form(tampered).status_code == 403
    expired = put_form(expiring)
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code>" in expired.text
    assert stored(s3, bucket, "form-put/elsewhere.bin") is None
    assert stored(s3, bucket, "form-put/expired.bin") is None
