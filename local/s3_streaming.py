"""Object GETs from the local storage cost what they send, as on S3.

moto answers a GET by copying the whole object out of its key's buffer (`FakeKey.value`), then
slicing the copy when a Range was asked: 1 MB of a 1.2 GB object took 0.7 s, and every
open-ended range (`bytes=N-`, what ffmpeg asks for on each seek) read the rest of the file before
sending a byte. `install()` hands moto's own GET handler a key whose value is a lazy view of the
buffer (`KeySlice`): moto still does the auth (presigned URLs), conditions, headers, CORS, range
parsing, 206/416 and errors; slicing the view narrows it without reading, and the response body
is read in chunks while it is sent, so a reader that hangs up stops the reading.

Each object GET ends with one line on the `lapse.storage` logger: the object, the bytes asked for
and the bytes sent (`make bench` counts what the worker read from it).

`RangedGet` answers the plainest GET — a closed byte range of an object, by path, with no
condition, override, version or Origin — straight from the key's buffer, with the headers moto
gives it. moto's dispatch (Flask, request parsing, backend lookup) costs ~2 ms of CPU a request:
0.6 s for the ~300 keyframe reads of a 10-minute source, taken from the same two cores as the
render's ffmpeg. S3's own work is on S3's machines; this keeps the local storage from charging the
render for it. moto does not check signatures or expiry of presigned URLs (nor does this); every
other request goes to moto as before.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol
from urllib.parse import parse_qsl

from moto.s3.models import FakeKey, s3_backends
from moto.s3.responses import S3Response

from local.config import ACCOUNT_ID

CHUNK_BYTES = 256 * 1024
log = logging.getLogger("lapse.storage")


class Buffer(Protocol):
    def seek(self, offset: int, /) -> int: ...
    def read(self, size: int, /) -> bytes: ...


class KeySlice:
    """Bytes [start, stop) of a moto key's buffer, read only when iterated."""

    def __init__(
        self, buffer: Buffer, lock: threading.Lock, start: int, stop: int, name: str = ""
    ) -> None:
        self._buffer = buffer
        self._lock = lock
        self.start = start
        self.stop = max(start, stop)
        self.name = name

    def __len__(self) -> int:
        return self.stop - self.start

    def _own_descriptor(self) -> int | None:
        """A descriptor of its own on the buffer's file once it is on disk (a large object), or
        None while it is in memory. Reads by position through it need neither the lock nor the
        shared file position, so concurrent ranges wait for the disk side by side, not one after
        another (16 keyframe reads of a 6.8 GB object no longer in the page cache: ~50 ms each in
        turn). Duplicated, it stays open if the key is deleted or replaced meanwhile."""
        with self._lock:
            if not getattr(self._buffer, "_rolled", False):
                return None
            getattr(self._buffer, "flush")()  # noqa: B009 - bytes still in its write buffer
            return os.dup(getattr(self._buffer, "fileno")())  # noqa: B009 - not in Buffer

    def __bool__(self) -> bool:
        return self.stop > self.start

    def __getitem__(self, part: slice) -> KeySlice:
        if not isinstance(part, slice) or part.step not in (None, 1):
            raise TypeError("KeySlice takes contiguous slices only")
        begin, end, _ = part.indices(len(self))
        return KeySlice(self._buffer, self._lock, self.start + begin, self.start + end, self.name)

    def __iter__(self) -> Iterator[bytes]:
        position = self.start
        own = self._own_descriptor()
        try:
            while position < self.stop:
                size = min(CHUNK_BYTES, self.stop - position)
                if own is not None:
                    chunk = os.pread(own, size, position)
                else:
                    with self._lock:  # the buffer's file position is shared with other readers
                        self._buffer.seek(position)
                        chunk = self._buffer.read(size)
                if not chunk:
                    raise OSError(f"object shorter than its size: ended at byte {position}")
                position += len(chunk)
                yield chunk
        finally:  # also when the reader hangs up: the generator is closed mid-body
            if own is not None:
                os.close(own)
            log.info(
                "GET %s bytes=%d-%d sent=%d",
                self.name,
                self.start,
                self.stop - 1,
                position - self.start,
            )


class StreamingKey:
    """A moto FakeKey whose `value` is a KeySlice; everything else is the key's own."""

    def __init__(self, key: Any) -> None:
        self._key = key

    def __getattr__(self, name: str) -> Any:
        return getattr(self._key, name)

    @property
    def value(self) -> KeySlice:
        key = self._key
        name = f"{key.bucket_name}/{key.name}"
        return KeySlice(key._value_buffer, key.lock, 0, int(key.size), name)


def install() -> None:
    """Makes this process's moto S3 stream object bodies (idempotent), and logs each GET."""
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("storage %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    if getattr(S3Response.get_object, "streams", False):
        return
    moto_get_object = S3Response.get_object

    def get_object(self: Any) -> Any:
        moto_get_key = self._get_key

        def get_key(*args: Any, **kwargs: Any) -> tuple[Any, bool]:
            key, not_modified = moto_get_key(*args, **kwargs)
            return StreamingKey(key), not_modified

        self._get_key = get_key  # this response object serves one request
        return moto_get_object(self)

    get_object.streams = True  # type: ignore[attr-defined]
    S3Response.get_object = get_object  # type: ignore[method-assign]


StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
_CLOSED_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")
# A presigned GET's own parameters (SigV4 and SigV2); any other (versionId, response-*,
# partNumber…) changes the answer: moto's.
_SIGNING_PARAMS = frozenset(
    {
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
        "AWSAccessKeyId",
        "Signature",
        "Expires",
    }
)
# Request headers that change the answer (conditions, customer keys, checksums, CORS): moto's.
_MOTO_HEADERS = ("HTTP_IF_", "HTTP_ORIGIN", "HTTP_X_AMZ_SERVER_SIDE", "HTTP_X_AMZ_CHECKSUM")


class RangedGet:
    """WSGI middleware: a closed byte range of an object, served from the key's buffer."""

    def __init__(self, app: App) -> None:
        self._app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        found = plain_ranged_get(environ)
        if found is None:
            return self._app(environ, start_response)
        key, first, last = found
        body = KeySlice(
            key._value_buffer, key.lock, first, last + 1, f"{key.bucket_name}/{key.name}"
        )
        headers = {
            **key.metadata,
            **key.response_dict,
            "Accept-Ranges": "bytes",
            "content-length": str(len(body)),
            "content-range": f"bytes {first}-{last}/{key.size}",
        }
        start_response("206 Partial Content", [(k, str(v)) for k, v in headers.items()])
        return body


def plain_ranged_get(environ: dict[str, Any]) -> tuple[Any, int, int] | None:
    """(key, first, last byte) when the request is a plain closed-range GET of a stored object."""
    if environ.get("REQUEST_METHOD") != "GET" or any(
        name.startswith(_MOTO_HEADERS) for name in environ
    ):
        return None
    wanted = _CLOSED_RANGE.match(str(environ.get("HTTP_RANGE", "")))
    query = parse_qsl(str(environ.get("QUERY_STRING", "")), keep_blank_values=True)
    if wanted is None or any(name not in _SIGNING_PARAMS for name, _ in query):
        return None
    # PATH_INFO is the decoded path's UTF-8 bytes read as Latin-1 (PEP 3333).
    path = str(environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8", "replace")
    bucket_name, _, key_name = path.lstrip("/").partition("/")
    if not key_name:
        return None
    bucket = s3_backends[ACCOUNT_ID]["aws"].buckets.get(bucket_name)
    key = bucket.keys.get(key_name) if bucket is not None else None
    first, last = int(wanted[1]), int(wanted[2])
    if not isinstance(key, FakeKey) or first > last or first >= key.size:
        return None  # moto answers: 404, 416, a delete marker
    return key, first, min(last, key.size - 1)
