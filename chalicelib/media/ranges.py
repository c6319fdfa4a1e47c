"""Reading byte ranges of a source: a local file, or an http(s) URL (a presigned GET) with
``Range`` requests. Both count what they read, so a render can say how many bytes and requests
it cost.

The HTTP reader keeps one connection per thread (keep-alive), asks for closed ranges only (an
open-ended ``bytes=N-`` would make the server send the rest of the file), retries a failed read a
few times with a short back-off, and checks `stop` between chunks so a cancelled job lets go of
its threads within a chunk's time.
"""

from __future__ import annotations

import http.client
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from chalicelib.errors import RenderCancelled, RenderError

READ_TIMEOUT_SECONDS = 30.0
TRIES = 3
BACKOFF_SECONDS = (0.2, 0.8)
HEAD_BYTES = 64 * 1024  # what learning the size reads: the header's first box(es) too
_CHUNK = 64 * 1024  # a cancel is seen between chunks
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class RangeSource(Protocol):
    """Bytes of one object, read by range."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes:
        """Exactly `length` bytes from `offset` (fewer only at the end of the object)."""
        ...


@dataclass
class ReadStats:
    """Bytes and requests a source served (shared by threads)."""

    bytes_read: int = 0
    requests: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    def add(self, length: int) -> None:
        with self._lock:
            self.bytes_read += length
            self.requests += 1


class FileRangeSource:
    """A local file (the command line's `lapse render file.mp4`)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._size = os.path.getsize(path)
        self.stats = ReadStats()

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        with open(self._path, "rb") as file:
            file.seek(offset)
            data = file.read(max(0, length))
        self.stats.add(len(data))
        return data


class HttpRangeSource:
    """An http(s) URL read with closed ``Range`` requests; one keep-alive connection per thread."""

    def __init__(self, url: str, *, stop: Callable[[], bool] = lambda: False) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise RenderError("The source address is not an http(s) URL.")
        self._parts = parts
        self._target = parts.path + (f"?{parts.query}" if parts.query else "")
        self._stop = stop
        self._local = threading.local()
        self.stats = ReadStats()
        self._size: int | None = None
        self._head = b""

    @property
    def size(self) -> int:
        if self._size is None:
            # The answer's Content-Range states the total; the bytes serve the header's reads.
            self._head = self.read(0, HEAD_BYTES)
        assert self._size is not None
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if length <= 0:
            return b""
        if offset + length <= len(self._head):
            return self._head[offset : offset + length]
        failure: Exception | None = None
        for attempt in range(TRIES):
            if attempt:
                time.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS)) - 1])
            try:
                return self._read_once(offset, length)
            except (OSError, http.client.HTTPException) as exc:
                failure = exc
                self._drop_connection()
        raise RenderError(
            f"Bytes {offset}–{offset + length - 1} of the source could not be read after "
            f"{TRIES} tries: {failure}"
        ) from failure

    def close(self) -> None:
        """Close this thread's connection (other threads' close when they end)."""
        self._drop_connection()

    def _read_once(self, offset: int, length: int) -> bytes:
        connection = self._connection()
        headers = {"Range": f"bytes={offset}-{offset + length - 1}", "User-Agent": "lapse"}
        connection.request("GET", self._target, headers=headers)
        response = connection.getresponse()
        if response.status == 416:
            response.read()
            self._learn_size(response.getheader("Content-Range"))
            return b""
        if response.status >= 500:  # the storage's own trouble: worth another try
            response.read()
            raise http.client.HTTPException(f"HTTP {response.status}")
        if response.status not in (200, 206):
            response.read()
            raise RenderError(
                f"The source could not be read: the storage answered HTTP {response.status}."
            )
        if response.status == 206:
            self._learn_size(response.getheader("Content-Range"))
        elif self._size is None:
            self._size = int(response.getheader("Content-Length") or 0)
        data = self._body(response, offset if response.status == 200 else 0, length)
        self.stats.add(len(data))
        return data

    def _body(self, response: http.client.HTTPResponse, skip: int, length: int) -> bytes:
        """The wanted bytes of the response body, read in chunks, checking `stop` in between."""
        out = bytearray()
        if skip:  # a server that ignored Range: drop what precedes the range, stop after it
            while skip > 0:
                dropped = response.read(min(_CHUNK, skip))
                if not dropped:
                    break
                skip -= len(dropped)
        while len(out) < length:
            if self._stop():
                self._drop_connection()
                raise RenderCancelled("The render was stopped.")
            chunk = response.read(min(_CHUNK, length - len(out)))
            if not chunk:
                break
            out += chunk
        if response.status == 200 or (not response.isclosed() and len(out) < length):
            self._drop_connection()  # the rest of the body is unwanted: do not read it
        return bytes(out)

    def _learn_size(self, content_range: str | None) -> None:
        match = _CONTENT_RANGE.match(content_range or "")
        if match and match[3] != "*":
            self._size = int(match[3])
        elif content_range and content_range.startswith("bytes */"):
            self._size = int(content_range.removeprefix("bytes */"))

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            host, port = self._parts.hostname or "", self._parts.port
            if self._parts.scheme == "https":
                connection = http.client.HTTPSConnection(host, port, timeout=READ_TIMEOUT_SECONDS)
            else:
                connection = http.client.HTTPConnection(host, port, timeout=READ_TIMEOUT_SECONDS)
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None


def open_range_source(
    source: str, *, stop: Callable[[], bool] = lambda: False
) -> HttpRangeSource | FileRangeSource:
    """A range reader for `source`: an http(s) URL or a local path."""
    if source.startswith(("http://", "https://")):
        return HttpRangeSource(source, stop=stop)
    return FileRangeSource(source)
