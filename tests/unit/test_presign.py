"""Presigned URLs, generated offline with boto3 and checked here because moto does not enforce them.

The local storage accepts any signature, any expiry and any body; real S3 and R2 do not. So these
tests take the URLs lapse hands out apart, and recompute their SigV4 signatures: a URL is only
valid for exactly the key, content type and length it was made for.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pytest
from pytest_socket import SocketBlockedError

from chalicelib import wire
from chalicelib.adapters.storage import S3Storage, content_disposition
from chalicelib.domain.limits import Limits, MiB
from chalicelib.domain.timelapse import Timelapse
from chalicelib.inputs import create_command, part_numbers
from chalicelib.services.ports import NoNotifier
from chalicelib.services.timelapses import TimelapseService
from chalicelib.settings import Settings
from chalicelib.wiring import s3_client

ENDPOINT = "http://127.0.0.1:4566"
ACCESS_KEY = "AKIAFAKEFAKEFAKE"
SECRET_KEY = "fake/secret+key"
BUCKET = "lapse-local"
KEY = "videos/0193f0c2-1234-4abc-8def-0123456789ab.mp4"


def make_storage(
    region: str = "us-east-1", endpoint: str = ENDPOINT, kind: type[S3Storage] = S3Storage
) -> S3Storage:
    settings = Settings(
        bucket=BUCKET,
        s3_endpoint_url=endpoint,
        s3_region=region,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
    )
    return kind(s3_client(settings), BUCKET)


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def key_of(url: str) -> str:
    path = unquote(urlsplit(url).path)
    prefix = f"/{BUCKET}/"
    assert path.startswith(prefix)
    return path[len(prefix) :]


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_signature(url: str, method: str, headers: dict[str, str], *, secret: str) -> str:
    """The SigV4 query signature storage computes for `method url` sent with `headers`."""
    parts = urlsplit(url)
    params = query(url)
    signature_params = {k: v for k, v in params.items() if k != "X-Amz-Signature"}
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
        for k, v in sorted(signature_params.items())
    )
    signed = params["X-Amz-SignedHeaders"].split(";")
    all_headers = {"host": parts.netloc, **{k.lower(): v for k, v in headers.items()}}
    canonical_headers = "".join(f"{name}:{all_headers[name].strip()}\n" for name in signed)
    canonical_request = "\n".join(
        [
            method,
            parts.path,
            canonical_query,
            canonical_headers,
            ";".join(signed),
            "UNSIGNED-PAYLOAD",
        ]
    )
    _, date, region, service, terminator = params["X-Amz-Credential"].split("/")
    scope = f"{date}/{region}/{service}/{terminator}"
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            params["X-Amz-Date"],
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(f"AWS4{secret}".encode(), date)
    for part in (region, service, terminator):
        key = _hmac(key, part)
    return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


# --- the signing works offline ----------------------------------------------------------------


def test_unit_tests_cannot_open_sockets() -> None:
    # pytest-socket both warns and raises when a unit test reaches for the network
    with pytest.raises(SocketBlockedError), pytest.warns(UserWarning, match="socket"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(SocketBlockedError), pytest.warns(UserWarning, match="getaddrinfo"):
        socket.getaddrinfo("example.com", 443)


# --- single PUT ---------------------------------------------------------------------------------


def test_put_is_signed_for_key_content_type_and_length() -> None:
    # Given an upload URL for 123 bytes of video/mp4
    before = datetime.now(UTC)
    signed = make_storage().presign_put(KEY, content_type="video/mp4", size_bytes=123, seconds=3600)
    params = query(signed.url)
    # Then it points at exactly that key in the bucket, on the configured endpoint
    assert signed.url.startswith(f"{ENDPOINT}/{BUCKET}/")
    assert key_of(signed.url) == KEY
    # and length and type are part of the signature, not just of the request
    assert set(params["X-Amz-SignedHeaders"].split(";")) == {
        "content-length",
        "content-type",
        "host",
    }
    assert params["X-Amz-Expires"] == "3600"
    assert params["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert params["X-Amz-Credential"].startswith(f"{ACCESS_KEY}/")
    assert params["X-Amz-Credential"].endswith("/us-east-1/s3/aws4_request")
    assert "x-amz-security-token" not in {k.lower() for k in params}
    # and expiresAt is the signing time plus the lifetime
    assert before + timedelta(seconds=3599) <= signed.expires_at
    assert signed.expires_at <= datetime.now(UTC) + timedelta(seconds=3601)


def test_put_signature_holds_only_for_the_declared_body() -> None:
    # Given an upload URL for 123 bytes of video/mp4
    url = make_storage().presign_put(KEY, content_type="video/mp4", size_bytes=123, seconds=60).url
    given = query(url)["X-Amz-Signature"]
    right = {"Content-Length": "123", "Content-Type": "video/mp4"}
    # Then the declared request carries a valid signature (the check below can tell)
    assert sigv4_signature(url, "PUT", right, secret=SECRET_KEY) == given
    # and storage would refuse another length, another type, another method or another secret
    bigger = {**right, "Content-Length": "124"}
    assert sigv4_signature(url, "PUT", bigger, secret=SECRET_KEY) != given
    other_type = {**right, "Content-Type": "text/html"}
    assert sigv4_signature(url, "PUT", other_type, secret=SECRET_KEY) != given
    assert sigv4_signature(url, "POST", right, secret=SECRET_KEY) != given
    assert sigv4_signature(url, "PUT", right, secret="another") != given


def test_put_signature_does_not_cover_another_key() -> None:
    url = make_storage().presign_put(KEY, content_type="video/mp4", size_bytes=5, seconds=60).url
    given = query(url)["X-Amz-Signature"]
    elsewhere = url.replace("/videos/", "/timelapses/")
    headers = {"Content-Length": "5", "Content-Type": "video/mp4"}
    assert sigv4_signature(elsewhere, "PUT", headers, secret=SECRET_KEY) != given


# --- multipart part -----------------------------------------------------------------------------


def test_part_url_is_for_one_part_of_one_upload() -> None:
    signed = make_storage().presign_part(KEY, "upload/id+1=", 7, 900)
    params = query(signed.url)
    assert key_of(signed.url) == KEY
    assert params["uploadId"] == "upload/id+1="
    assert params["partNumber"] == "7"
    assert params["X-Amz-Expires"] == "900"
    # Part numbers and the upload id are in the signed query: another part needs another URL
    given = params["X-Amz-Signature"]
    assert sigv4_signature(signed.url, "PUT", {}, secret=SECRET_KEY) == given
    other_part = signed.url.replace("partNumber=7", "partNumber=8")
    assert sigv4_signature(other_part, "PUT", {}, secret=SECRET_KEY) != given


# --- GET ----------------------------------------------------------------------------------------


def test_get_url_reads_the_key_for_the_download_lifetime() -> None:
    signed = make_storage().presign_get(KEY, 900)
    params = query(signed.url)
    assert key_of(signed.url) == KEY
    assert params["X-Amz-Expires"] == "900"
    assert params["X-Amz-SignedHeaders"] == "host"
    assert "response-content-disposition" not in params
    assert sigv4_signature(signed.url, "GET", {}, secret=SECRET_KEY) == params["X-Amz-Signature"]


def test_get_url_names_the_file_without_breaking_the_header() -> None:
    signed = make_storage().presign_get(KEY, 60, filename='my "desk"\\session.mp4')
    disposition = query(signed.url)["response-content-disposition"]
    assert disposition == (
        "inline; filename=\"my _desk__session.mp4\"; filename*=UTF-8''my%20%22desk%22%5Csession.mp4"
    )


@pytest.mark.parametrize(
    ("name", "fallback", "encoded"),
    [
        ("Büro 08:00.mov", "B_ro 08:00.mov", "B%C3%BCro%2008%3A00.mov"),
        ("a\r\nSet-Cookie: x=1", "a__Set-Cookie: x=1", "a%0D%0ASet-Cookie%3A%20x%3D1"),
        ("100%.mp4", "100_.mp4", "100%25.mp4"),
        ("日本.mp4", "__.mp4", "%E6%97%A5%E6%9C%AC.mp4"),
    ],
)
def test_content_disposition_follows_rfc_6266(name: str, fallback: str, encoded: str) -> None:
    # Any stored name (even one from before names were checked) stays inside one header value
    value = content_disposition(name)
    assert value == f"inline; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
    assert all(c.isprintable() and c.isascii() for c in value)


def test_r2_storage_signs_for_its_own_endpoint_and_region() -> None:
    # Given storage on Cloudflare R2 (region "auto")
    storage = make_storage(region="auto", endpoint="https://acct.r2.cloudflarestorage.com")
    url = storage.presign_get(KEY, 60).url
    # Then the URL goes to R2, path-style, with R2's region in the credential scope
    assert url.startswith(f"https://acct.r2.cloudflarestorage.com/{BUCKET}/{KEY}?")
    assert query(url)["X-Amz-Credential"].endswith("/auto/s3/aws4_request")


# --- what the API hands out: the record's key, the configured lifetime ---------------------------


class MemoryRecords:
    """Just enough of the repository for create and sign_parts."""

    def __init__(self) -> None:
        self.items: dict[str, Timelapse] = {}

    def create(self, timelapse: Timelapse) -> None:
        self.items[timelapse.id] = timelapse

    def get_owned(self, timelapse_id: str, owner_id: str) -> Timelapse:
        found = self.items[timelapse_id]
        assert found.owner_id == owner_id
        return found


class OfflineMultipartStorage(S3Storage):
    """Real presigning; starting a multipart upload (a network call) is answered locally."""

    def create_multipart(self, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        self.started = (key, content_type, metadata)
        return "upload-1"


class NoQueue:
    def send_process(self, timelapse_id: str) -> None:
        raise AssertionError("create must not queue anything")


def service(storage: S3Storage, records: MemoryRecords, limits: Limits) -> TimelapseService:
    return TimelapseService(
        records=records,  # type: ignore[arg-type]
        storage=storage,
        queue=NoQueue(),
        limits=limits,
        notifier=NoNotifier(),
    )


def test_create_hands_out_a_put_for_the_records_key_with_the_configured_lifetime() -> None:
    # Given a deployment whose upload URLs live 1234 seconds
    records = MemoryRecords()
    limits = Limits(upload_url_seconds=1234)
    body = {"projectId": "p-42", "contentType": "video/webm", "sizeBytes": 4321}
    # When a small upload is created
    use_cases = service(make_storage(), records, limits)
    answer = wire.created(
        use_cases.create("user-1", create_command(body, use_cases.limits, use_cases.callbacks))
    )
    # Then the URL is for exactly the stored record's key, type and length
    (record,) = records.items.values()
    upload: dict[str, Any] = answer["upload"]
    assert upload["method"] == "PUT"
    assert upload["headers"] == {"Content-Type": "video/webm"}
    assert key_of(upload["url"]) == record.original_video_key == f"videos/{record.id}.webm"
    params = query(upload["url"])
    assert params["X-Amz-Expires"] == "1234"
    headers = {"Content-Length": "4321", "Content-Type": "video/webm"}
    assert (
        sigv4_signature(upload["url"], "PUT", headers, secret=SECRET_KEY)
        == (params["X-Amz-Signature"])
    )


def test_create_hands_out_part_urls_for_the_records_upload() -> None:
    # Given a 250 MiB upload (multipart above 100 MiB) and 600-second URLs
    storage = make_storage(kind=OfflineMultipartStorage)
    assert isinstance(storage, OfflineMultipartStorage)
    records = MemoryRecords()
    use_cases = service(storage, records, Limits(upload_url_seconds=600))
    body = {"projectId": "p-42", "contentType": "video/mp4", "sizeBytes": 250 * MiB}
    # When it is created
    answer = wire.created(
        use_cases.create("user-1", create_command(body, use_cases.limits, use_cases.callbacks))
    )
    (record,) = records.items.values()
    upload = answer["upload"]
    # Then every part URL is for the record's key and upload, numbered 1..partCount
    assert (upload["method"], upload["uploadId"]) == ("multipart", "upload-1")
    assert (upload["partSize"], upload["partCount"]) == (10 * MiB, 25)
    assert [p["partNumber"] for p in upload["parts"]] == list(range(1, 26))
    for part in upload["parts"]:
        params = query(part["url"])
        assert key_of(part["url"]) == record.original_video_key
        assert params["uploadId"] == "upload-1"
        assert params["partNumber"] == str(part["partNumber"])
        assert params["X-Amz-Expires"] == "600"
    assert storage.started == (
        record.original_video_key,
        "video/mp4",
        {"timelapse-id": record.id, "upload-method": "multipart", "file-size": str(250 * MiB)},
    )
    # and fresh part URLs later are for the same upload and lifetime
    uploading = use_cases.awaiting_multipart("user-1", record.id)
    numbers = part_numbers({"partNumbers": [25, 3]}, part_count=25)
    fresh = wire.part_urls(use_cases.sign_parts(uploading, numbers))
    assert [p["partNumber"] for p in fresh["parts"]] == [3, 25]
    assert all(query(p["url"])["X-Amz-Expires"] == "600" for p in fresh["parts"])
