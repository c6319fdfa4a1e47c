"""Completing a multipart upload in the local storage copies the parts in chunks, as S3 would.

moto joins the parts in memory, several times over (the joined bytes, a second copy for the
full-object checksum, then `bytes()` of each): completing a 7 GB upload asks for ~28 GB of RAM.
`install()` replaces the join with a streaming one that writes the parts, chunk by chunk, into
the new key's own spooled file and computes the same ETag (MD5 of the parts' MD5s, `-N`) and the
same checksum. Full-object checksums are CRC32 when awscrt is absent (moto's own fallback for
CRC64NVME); any other full-object algorithm keeps moto's join.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

from moto.core.compat import HAS_CRT
from moto.s3.exceptions import EntityTooSmall, InvalidPart, MalformedXML, NoSuchUpload
from moto.s3.models import FakeKey, FakeMultipart, MultipartChecksumBuilder, S3Backend
from moto.s3.utils import compute_checksum
from moto.settings import S3_UPLOAD_PART_MIN_SIZE, get_s3_default_key_buffer_size

CHUNK_BYTES = 1024 * 1024
_completing: dict[str, threading.Lock] = {}
_completing_guard = threading.Lock()
Checksum = tuple[str, str, int] | None


class JoinedValue:
    """The parts of a completed upload, already in a file the new key adopts as its buffer."""

    def __init__(self, buffer: Any, size: int) -> None:
        self.buffer = buffer
        self.size = size


def _crc32_is_the_full_checksum(builder: MultipartChecksumBuilder) -> bool:
    algorithm = builder.checksum_algorithm
    return algorithm == "CRC32" or (algorithm == "CRC64NVME" and not HAS_CRT)


def _copy_part(part: Any, into: Any, crc: int) -> tuple[int, int]:
    """Appends the part's bytes to `into`; returns (bytes copied, running CRC32)."""
    copied = 0
    with part.lock:
        part._value_buffer.seek(0)
        while chunk := part._value_buffer.read(CHUNK_BYTES):
            into.write(chunk)
            crc = binascii.crc32(chunk, crc)
            copied += len(chunk)
    return copied, crc


def streaming_complete(
    multipart: Any, body: Iterator[tuple[int, str]]
) -> tuple[JoinedValue, str, Checksum]:
    builder = MultipartChecksumBuilder(
        multipart.metadata.get("x-amz-checksum-algorithm"),
        multipart.metadata.get("x-amz-checksum-type"),
    )
    full_object = builder.checksum_type != "COMPOSITE"
    buffer = tempfile.SpooledTemporaryFile(get_s3_default_key_buffer_size())  # noqa: SIM115 - the key keeps it
    md5s, size, crc, last = bytearray(), 0, 0, None
    try:
        for number, etag in body:
            part = multipart.parts.get(number)
            if part is None or part.etag.replace('"', "") != etag.replace('"', ""):
                raise InvalidPart()
            if last is not None and last.contentsize < S3_UPLOAD_PART_MIN_SIZE:
                raise EntityTooSmall()
            md5s.extend(bytes.fromhex(part.etag.replace('"', "")))
            copied, crc = _copy_part(part, buffer, crc)
            size += copied
            if not full_object:
                builder.checksum.extend(
                    compute_checksum(part.value, builder.checksum_algorithm, encode_base64=False)
                )
            builder.part_count += 1
            last = part
        if builder.part_count == 0:
            raise MalformedXML()
    except Exception:
        buffer.close()
        raise
    etag = f"{hashlib.md5(md5s, usedforsecurity=False).hexdigest()}-{builder.part_count}"
    if full_object:
        checksum = base64.b64encode(crc.to_bytes(4, "big")).decode()
        return JoinedValue(buffer, size), etag, (builder.checksum_type, checksum, 1)
    return JoinedValue(buffer, size), etag, builder.build()


def install() -> None:
    """Makes this process's moto S3 complete multipart uploads in bounded memory (idempotent)."""
    if getattr(FakeMultipart.complete, "streams", False):
        return
    moto_complete = FakeMultipart.complete
    moto_value: property = FakeKey.__dict__["value"]
    moto_set_value = moto_value.fset
    assert moto_set_value is not None

    def complete(self: Any, body: Iterator[tuple[int, str]]) -> Any:
        builder = MultipartChecksumBuilder(
            self.metadata.get("x-amz-checksum-algorithm"),
            self.metadata.get("x-amz-checksum-type"),
        )
        if builder.checksum_type != "COMPOSITE" and not _crc32_is_the_full_checksum(builder):
            return moto_complete(self, body)
        return streaming_complete(self, body)

    def set_value(self: Any, new_value: Any) -> None:
        if not isinstance(new_value, JoinedValue):
            moto_set_value(self, new_value)
            return
        self._value_buffer.close()
        self._value_buffer = new_value.buffer
        self.contentsize = new_value.size

    complete.streams = True  # type: ignore[attr-defined]
    FakeMultipart.complete = complete  # type: ignore[method-assign]
    FakeKey.value = moto_value.setter(set_value)  # type: ignore[assignment]
    S3Backend.complete_multipart_upload = _one_completion_at_a_time(  # type: ignore[method-assign]
        S3Backend.complete_multipart_upload
    )


def _one_completion_at_a_time(moto_complete_upload: Any) -> Any:
    """As S3 answers them: a completion retried while the first is still joining the parts (a
    client that timed out on gigabytes) waits for it and gets the same object; an upload that is
    unknown or was aborted is NoSuchUpload (404), not moto's KeyError (500)."""

    def complete_multipart_upload(
        self: Any, bucket_name: str, multipart_id: str, body: Iterator[tuple[int, str]]
    ) -> Any:
        with _completing_guard:
            lock = _completing.setdefault(multipart_id, threading.Lock())
        with lock:
            bucket = self.get_bucket(bucket_name)
            if multipart_id in bucket.multiparts:
                return moto_complete_upload(self, bucket_name, multipart_id, body)
            for key in bucket.keys.values():
                if getattr(getattr(key, "multipart", None), "id", None) == multipart_id:
                    return key  # completed by the attempt this one waited for
            raise NoSuchUpload(multipart_id)

    return complete_multipart_upload
