"""The local storage (local/moto_server.py) serves a range at the cost of the range, as S3 does.

Against the server the stack runs, over a real socket, through presigned URLs (what ffmpeg reads):
the bytes and headers of every kind of range, and what a read costs the server — bytes it reads
(/proc/<pid>/io) and CPU time — on a large object beside a small one, and when the reader
hangs up.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

from local.config import LocalStack
from local.provision import provision
from tests.integration.conftest import wait_until_answering
from tests.support import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

MB = 1024 * 1024
PART_BYTES = 5 * MB  # S3's smallest non-final multipart part
LARGE_PARTS = 16  # 80 MB
SOURCE_BYTES = PART_BYTES + LARGE_PARTS * 4096
SMALL_BYTES = 2 * MB


@dataclass(frozen=True)
class Server:
    stack: LocalStack
    pid: int
    s3: S3Client
    log: Path

    def logged_gets(self, key: str) -> list[str]:
        """The server's access lines for object GETs of `key` (local/s3_streaming.py)."""
        prefix = f"storage GET {self.stack.bucket}/{key} "
        return [line for line in self.log.read_text().splitlines() if line.startswith(prefix)]

    def peak_memory(self) -> int:
        """The server process's peak resident memory so far (VmHWM), in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def bytes_read(self) -> int:
        """Bytes the server process has read through read() and recv() so far."""
        for line in Path(f"/proc/{self.pid}/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
        raise AssertionError("no rchar in /proc/<pid>/io")

    def settled_bytes_read(self) -> int:
        """bytes_read once the server has stopped reading (its sending threads have finished)."""
        previous, deadline = -1, time.monotonic() + 5
        while time.monotonic() < deadline:
            current = self.bytes_read()
            if current == previous:
                return current
            previous = current
            time.sleep(0.2)
        return self.bytes_read()

    def url(self, key: str, method: str = "get_object") -> str:
        params = {"Bucket": self.stack.bucket, "Key": key}
        return self.s3.generate_presigned_url(method, Params=params, ExpiresIn=600)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A local storage of its own, so that what it reads is what these tests asked for."""
    stack = LocalStack(moto_port=free_port(), api_port=free_port())
    log = tmp_path_factory.mktemp("ranges-moto") / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.moto_server", "-p", str(stack.moto_port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_answering(f"{stack.endpoint}/moto-api/", process, log)
        provision(stack)
        yield Server(stack, process.pid, stack.s3(), log)
    finally:
        process.terminate()
        process.wait(timeout=10)


def patterned(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


@pytest.fixture(scope="module")
def small(server: Server) -> bytes:
    data = patterned(SMALL_BYTES, seed=1)
    server.s3.put_object(Bucket=server.stack.bucket, Key="ranges/small", Body=data)
    return data


@dataclass(frozen=True)
class Large:
    data: bytes
    etag: str
    completion_memory: int  # how much the server's peak memory grew while completing


@pytest.fixture(scope="module")
def large_upload(server: Server) -> Large:
    """80 MB made by the server from one 5 MB upload: part i copies the source from byte
    4096·i, so every part differs and a slip across a part boundary shows in the bytes."""
    s3, bucket = server.s3, server.stack.bucket
    source = patterned(SOURCE_BYTES, seed=2)
    s3.put_object(Bucket=bucket, Key="ranges/source", Body=source)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="ranges/large")
    parts: list[Any] = []
    for index in range(LARGE_PARTS):
        offset = index * 4096
        copied = s3.upload_part_copy(
            Bucket=bucket,
            Key="ranges/large",
            UploadId=upload["UploadId"],
            PartNumber=index + 1,
            CopySource={"Bucket": bucket, "Key": "ranges/source"},
            CopySourceRange=f"bytes={offset}-{offset + PART_BYTES - 1}",
        )
        parts.append({"PartNumber": index + 1, "ETag": copied["CopyPartResult"]["ETag"]})
    peak_before = server.peak_memory()
    completed = s3.complete_multipart_upload(
        Bucket=bucket,
        Key="ranges/large",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": parts},
    )
    data = b"".join(source[i * 4096 : i * 4096 + PART_BYTES] for i in range(LARGE_PARTS))
    return Large(data, completed["ETag"], server.peak_memory() - peak_before)


@pytest.fixture(scope="module")
def large(large_upload: Large) -> bytes:
    return large_upload.data


def test_a_multipart_upload_completes_in_bounded_memory_with_the_etag_of_s3(
    server: Server, large_upload: Large
) -> None:
    part_md5s = b"".join(
        hashlib.md5(large_upload.data[i * PART_BYTES : (i + 1) * PART_BYTES]).digest()
        for i in range(LARGE_PARTS)
    )
    stored = server.s3.head_object(Bucket=server.stack.bucket, Key="ranges/large")

    assert large_upload.etag == f'"{hashlib.md5(part_md5s).hexdigest()}-{LARGE_PARTS}"'
    assert stored["ContentLength"] == len(large_upload.data) == LARGE_PARTS * PART_BYTES
    assert large_upload.completion_memory < len(large_upload.data) // 4, (
        f"completing took {large_upload.completion_memory / MB:.0f} MB more memory"
    )


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def request(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> Answer:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        connection.request(method, f"{parts.path}?{parts.query}", headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        found = {name.lower(): value for name, value in response.getheaders()}
        return Answer(response.status, found, body)
    finally:
        connection.close()


def get_range(server: Server, key: str, spec: str, method: str = "GET") -> Answer:
    return request(server.url(key), method, {"Range": spec})


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [
        ("bytes=1000-1999", 1000, 1999),
        ("bytes=0-0", 0, 0),
        ("bytes=1500000-", 1500000, SMALL_BYTES - 1),
        ("bytes=-4096", SMALL_BYTES - 4096, SMALL_BYTES - 1),
        ("bytes=2000000-99999999", 2000000, SMALL_BYTES - 1),
        ("bytes=-99999999", 0, SMALL_BYTES - 1),
    ],
)
def test_a_range_answers_its_bytes_with_the_headers_of_s3(
    server: Server, small: bytes, spec: str, first: int, last: int
) -> None:
    answer = get_range(server, "ranges/small", spec)

    assert answer.status == 206
    assert answer.body == small[first : last + 1]
    assert answer.headers["content-range"] == f"bytes {first}-{last}/{SMALL_BYTES}"
    assert answer.headers["content-length"] == str(last - first + 1)
    assert answer.headers["accept-ranges"] == "bytes"
    assert answer.headers["etag"] == f'"{hashlib.md5(small).hexdigest()}"'


# Headers of the connection and the server, not of the object.
_TRANSPORT_HEADERS = {
    "date",
    "server",
    "connection",
    "x-amzn-requestid",
    "access-control-allow-origin",
}


@pytest.mark.parametrize(
    ("spec", "first", "last"),
    [("bytes=10-19", 10, 19), ("bytes=0-0", 0, 0), (f"bytes=1000-{SMALL_BYTES + 5}", 1000, None)],
)
def test_a_plain_closed_range_is_answered_as_moto_answers_it(
    server: Server, spec: str, first: int, last: int | None
) -> None:
    # Given an object with a content type, metadata and a name to be encoded
    data = patterned(SMALL_BYTES, seed=3)
    key = "ranges/named ü/clip.mp4"
    server.s3.put_object(
        Bucket=server.stack.bucket,
        Key=key,
        Body=data,
        ContentType="video/mp4",
        Metadata={"timelapse-id": "t-1"},
    )
    url = server.url(key)
    # When a closed range is read plainly (served from the key's buffer, local/s3_streaming.py)
    plain = request(url, headers={"Range": spec})
    # and with a condition that holds, which moto answers itself
    etag = plain.headers["etag"]
    conditional = request(url, headers={"Range": spec, "If-Match": etag})
    # Then both answers are the same: status, bytes and the object's headers
    assert plain.status == conditional.status == 206
    assert plain.body == conditional.body == data[first : None if last is None else last + 1]

    def object_headers(answer: Answer) -> dict[str, str]:
        return {k: v for k, v in answer.headers.items() if k not in _TRANSPORT_HEADERS}

    assert object_headers(plain) == object_headers(conditional)
    assert plain.headers["x-amz-meta-timelapse-id"] == "t-1"


def test_a_head_with_a_range_answers_the_range_length(server: Server, small: bytes) -> None:
    answer = get_range(server, "ranges/small", "bytes=10-19", method="HEAD")

    assert answer.status == 206
    assert answer.headers["content-range"] == f"bytes 10-19/{SMALL_BYTES}"
    assert answer.headers["content-length"] == "10"
    assert answer.body == b""


def test_a_range_past_the_end_is_416_invalid_range(server: Server, small: bytes) -> None:
    answer = get_range(server, "ranges/small", f"bytes={SMALL_BYTES}-")

    assert answer.status == 416
    assert b"<Code>InvalidRange</Code>" in answer.body


def test_a_whole_object_get_answers_every_byte(server: Server, small: bytes) -> None:
    answer = request(server.url("ranges/small"), headers={"Origin": "http://localhost:8001"})

    assert answer.status == 200
    assert answer.body == small
    assert answer.headers["content-length"] == str(SMALL_BYTES)
    assert answer.headers["access-control-allow-origin"] == "http://localhost:8001"


def test_an_empty_object_reads_as_empty(server: Server) -> None:
    server.s3.put_object(Bucket=server.stack.bucket, Key="ranges/empty", Body=b"")

    answer = request(server.url("ranges/empty"))

    assert (answer.status, answer.body, answer.headers["content-length"]) == (200, b"", "0")


def test_errors_stay_s3_errors(server: Server, small: bytes) -> None:
    missing = get_range(server, "ranges/missing", "bytes=0-9")

    assert missing.status == 404
    assert b"<Code>NoSuchKey</Code>" in missing.body


def test_ranges_of_a_large_object_are_its_bytes(server: Server, large: bytes) -> None:
    boundary = 7 * PART_BYTES
    for spec, first, last in [
        (f"bytes={boundary - 100}-{boundary + 99}", boundary - 100, boundary + 99),
        ("bytes=-1000", len(large) - 1000, len(large) - 1),
    ]:
        answer = get_range(server, "ranges/large", spec)
        assert answer.status == 206
        assert answer.body == large[first : last + 1]
        assert answer.headers["content-range"] == f"bytes {first}-{last}/{len(large)}"


def read_cost(server: Server, key: str, spec: str, tries: int = 7) -> tuple[float, int]:
    """The server's CPU seconds and bytes read for `tries` reads of the range: what the reads cost
    it, not the wall time, which a busy machine stretches."""
    url = server.url(key)
    cpu, read = server.cpu_seconds(), server.settled_bytes_read()
    for _ in range(tries):
        assert request(url, headers={"Range": spec}).status == 206
    return server.cpu_seconds() - cpu, server.settled_bytes_read() - read


def test_a_range_costs_the_same_on_a_large_object_as_on_a_small_one(
    server: Server, small: bytes, large: bytes
) -> None:
    spec = "bytes=1048576-2097151"  # 1 MB, inside both objects
    large_cpu, large_read = read_cost(server, "ranges/large", spec)
    small_cpu, _ = read_cost(server, "ranges/small", spec)

    assert large_cpu < 2 * small_cpu + 0.05, (large_cpu, small_cpu)
    assert large_read < 7 * (2 * MB), "seven 1 MB ranges read more than twice their bytes"


def read_then_hang_up(url: str, spec: str, wanted: int) -> bytes:
    """The first `wanted` bytes of the body, then the connection closed mid-body (as ffmpeg's
    HTTP reader does when it seeks)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Range: {spec}\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received or len(received.partition(b"\r\n\r\n")[2]) < wanted:
            chunk = sock.recv(64 * 1024)
            assert chunk, "the server closed first"
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 206"), head
    return body[:wanted]


def test_a_reader_that_hangs_up_stops_the_reading(server: Server, large: bytes) -> None:
    before = server.settled_bytes_read()
    body = read_then_hang_up(server.url("ranges/large"), "bytes=0-", 200 * 1024)
    read = server.settled_bytes_read() - before

    assert body == large[: 200 * 1024]
    assert read < len(large) // 10, f"the server read {read / MB:.1f} MB for a 200 KB reader"
    logged = server.logged_gets("ranges/large")[-1]
    assert logged.startswith(f"storage GET lapse-local/ranges/large bytes=0-{len(large) - 1} sent=")
    assert int(logged.rpartition("sent=")[2]) < len(large) // 10
    assert request(server.url("ranges/small")).status == 200  # and it still serves
