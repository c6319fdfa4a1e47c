"""The public HTTP API from a terminal, used exactly as a front end uses it (create → PUT or
multipart parts straight to storage → complete → poll); the subcommands are in commands.py.

Standard library only: the API answers small JSON (urllib.request), uploads stream from the file
(http.client).
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

DEFAULT_API_URL = "http://127.0.0.1:8000"
TERMINAL = {"complete", "failed", "cancelled"}
# Storage assembles the parts while the complete call waits: a minute for 4 GB on the local stack.
COMPLETE_TIMEOUT_SECONDS = 900.0
CHUNK = 1024 * 1024
PARALLEL_PARTS = 4
PART_TRIES = 3
# Extensions mimetypes may not know; the API accepts these video types.
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".m4v": "video/mp4",
    ".mov": "video/quicktime",
    ".webm": "video/webm",
    ".mkv": "video/x-matroska",
    ".avi": "video/x-msvideo",
    ".mts": "video/mp2t",
    ".m2ts": "video/mp2t",
    ".ts": "video/mp2t",
}


class ClientError(Exception):
    """Something the user should read; the command exits with status 1."""


class ApiError(ClientError):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{message} (HTTP {status} {code})")
        self.status = status
        self.code = code


# --- the API --------------------------------------------------------------------------------------


@dataclass
class ApiClient:
    base_url: str
    token: str | None
    timeout: float = 30.0

    @classmethod
    def from_env(cls, api_url: str | None = None, token: str | None = None) -> ApiClient:
        """Flags first, then LAPSE_API_URL and LAPSE_TOKEN."""
        base = api_url or os.environ.get("LAPSE_API_URL") or DEFAULT_API_URL
        return cls(base.rstrip("/"), token or os.environ.get("LAPSE_TOKEN") or None)

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> Any:
        if not self.token:
            raise ClientError(
                "no token: pass --token or set LAPSE_TOKEN "
                "(locally: export LAPSE_TOKEN=$(lapse token --user you))"
            )
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the user's own API
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as answer:  # noqa: S310
                raw = answer.read()
        except urllib.error.HTTPError as exc:
            raise _api_error(exc) from None
        except OSError as exc:
            raise ClientError(f"cannot reach the API at {self.base_url}: {exc}") from exc
        return json.loads(raw) if raw else None

    def get(self, timelapse_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/timelapses/{timelapse_id}"))

    def cancel(self, timelapse_id: str) -> dict[str, Any]:
        return dict(self.request("POST", f"/timelapses/{timelapse_id}/cancel")["timelapse"])


def _api_error(exc: urllib.error.HTTPError) -> ApiError:
    try:
        error = json.loads(exc.read())["error"]
        return ApiError(exc.code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return ApiError(exc.code, "http_error", exc.reason or "request failed")


# --- progress on stderr ---------------------------------------------------------------------------


@dataclass
class Progress:
    """A plain-text bar: redrawn in place on a terminal, a line per 10 % otherwise."""

    total: int
    label: str = "uploading"
    stream: IO[str] = field(default_factory=lambda: sys.stderr)
    done: int = 0
    _started: float = field(default_factory=time.monotonic)
    _drawn_at: float = 0.0
    _drawn_tenth: int = -1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, count: int) -> None:
        with self._lock:
            self.done += count
            self._show()

    def _show(self) -> None:
        fraction = min(1.0, self.done / self.total) if self.total else 1.0
        tty = self.stream.isatty()
        now = time.monotonic()
        if tty:
            if now - self._drawn_at < 0.1 and fraction < 1:
                return
            self._drawn_at = now
        else:
            if int(fraction * 10) == self._drawn_tenth:
                return
            self._drawn_tenth = int(fraction * 10)
        rate = self.done / max(now - self._started, 1e-6) / 1e6
        bar = "#" * int(fraction * 30)
        text = (
            f"{self.label} {fraction * 100:5.1f}% [{bar:<30}] "
            f"{self.done / 1e6:.1f}/{self.total / 1e6:.1f} MB {rate:.1f} MB/s"
        )
        end = "" if tty and fraction < 1 else "\n"
        print(("\r" if tty else "") + text, end=end, file=self.stream, flush=True)


# --- uploads straight to storage ------------------------------------------------------------------


def put_file_range(
    url: str,
    path: Path,
    offset: int,
    length: int,
    *,
    headers: dict[str, str],
    on_bytes: Callable[[int], None],
    timeout: float = 120.0,
) -> str:
    """PUTs `length` bytes of the file from `offset` to a presigned URL, streamed in chunks.
    Returns the ETag storage answered (multipart completion needs it)."""
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.netloc, timeout=timeout)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        connection.putrequest("PUT", target, skip_accept_encoding=True)
        for name, value in {**headers, "Content-Length": str(length)}.items():
            connection.putheader(name, value)
        connection.endheaders()
        with path.open("rb") as source:
            source.seek(offset)
            left = length
            while left > 0:
                chunk = source.read(min(CHUNK, left))
                if not chunk:
                    raise ClientError(f"{path} shrank while it was being uploaded")
                connection.send(chunk)
                left -= len(chunk)
                on_bytes(len(chunk))
        answer = connection.getresponse()
        text = answer.read(2000).decode("utf-8", "replace")
        if not 200 <= answer.status < 300:
            raise ClientError(f"storage refused the upload: HTTP {answer.status} {text[:300]}")
        return answer.getheader("ETag") or ""
    finally:
        connection.close()


class Interrupted(Exception):
    """The upload stopped on the user's request (Ctrl-C); what storage holds stays there."""


def upload(client: ApiClient, created: dict[str, Any], path: Path, progress: Progress) -> None:
    plan = created["upload"]
    size = path.stat().st_size
    if plan["method"] == "PUT":
        put_file_range(
            plan["url"], path, 0, size, headers=plan.get("headers") or {}, on_bytes=progress.add
        )
        return
    first = {int(p["partNumber"]): str(p["url"]) for p in plan["parts"]}
    parts = MultipartUpload(
        client, created["timelapse"]["id"], path, int(plan["partSize"]), int(plan["partCount"])
    )
    parts.send_all(progress, urls=first)


@dataclass
class MultipartUpload:
    """The parts of one multipart upload: sent four at a time, each retried, and completed with
    their ETags. `stored` holds the parts storage already has (a resumed upload skips them)."""

    client: ApiClient
    timelapse_id: str
    path: Path
    part_size: int
    part_count: int
    stored: dict[int, str] = field(default_factory=dict)
    _urls: dict[int, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def resume(cls, client: ApiClient, timelapse_id: str, path: Path) -> MultipartUpload:
        """The upload of `timelapse_id` as storage holds it (GET /timelapses/{id}/upload)."""
        held = client.request("GET", f"/timelapses/{timelapse_id}/upload")
        declared = client.get(timelapse_id).get("sizeBytes")
        if declared != path.stat().st_size:
            raise ClientError(
                f"{path} has {path.stat().st_size} bytes but timelapse {timelapse_id} was made "
                f"for {declared}: resume with the same file"
            )
        stored = {int(p["partNumber"]): str(p["etag"]) for p in held["parts"]}
        return cls(
            client, timelapse_id, path, int(held["partSize"]), int(held["partCount"]), stored
        )

    def stored_bytes(self) -> int:
        return sum(self._length(n) for n in self.stored)

    def _length(self, number: int) -> int:
        return min(self.part_size, self.path.stat().st_size - (number - 1) * self.part_size)

    def _url_for(self, number: int, *, fresh: bool = False) -> str:
        with self._lock:
            if fresh or number not in self._urls:
                # The API signs at most 100 part URLs at a time; ask for the next ones in batches.
                wanted = [number] if fresh else [
                    n for n in range(number, self.part_count + 1) if n not in self.stored
                ][:100]  # fmt: skip
                signed = self.client.request(
                    "POST", f"/timelapses/{self.timelapse_id}/upload/parts", {"partNumbers": wanted}
                )
                self._urls.update({int(p["partNumber"]): str(p["url"]) for p in signed["parts"]})
            return self._urls[number]

    def _send(self, number: int, progress: Progress) -> None:
        offset, length = (number - 1) * self.part_size, self._length(number)
        for attempt in range(1, PART_TRIES + 1):
            sent = 0

            def count_bytes(n: int) -> None:
                nonlocal sent
                if self._stop.is_set():
                    raise Interrupted
                sent += n
                progress.add(n)

            try:
                url = self._url_for(number, fresh=attempt > 1)
                etag = put_file_range(
                    url, self.path, offset, length, headers={}, on_bytes=count_bytes
                )
            except (ClientError, OSError, http.client.HTTPException):
                progress.add(-sent)
                if attempt == PART_TRIES:
                    raise
                time.sleep(attempt)
            else:
                with self._lock:
                    self.stored[number] = etag
                return

    def send_all(self, progress: Progress, urls: dict[int, str] | None = None) -> None:
        """Sends the parts storage lacks, then completes. On Ctrl-C the parts in flight stop and
        nothing is cancelled: `lapse submit --resume` goes on from what storage holds."""
        self._urls.update(urls or {})
        missing = [n for n in range(1, self.part_count + 1) if n not in self.stored]
        pool = ThreadPoolExecutor(max_workers=PARALLEL_PARTS)
        try:
            for future in [pool.submit(self._send, n, progress) for n in missing]:
                future.result()
        except BaseException:
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        parts = [{"partNumber": n, "etag": etag} for n, etag in sorted(self.stored.items())]
        self.client.request(
            "POST",
            f"/timelapses/{self.timelapse_id}/upload/complete",
            {"parts": parts},
            timeout=COMPLETE_TIMEOUT_SECONDS,
        )


def wait_for_end(
    client: ApiClient, timelapse_id: str, *, interval: float = 1.0, timeout: float | None = None
) -> dict[str, Any]:
    """Polls GET /timelapses/{id} until a terminal status, showing status and progress."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    while True:
        record = client.get(timelapse_id)
        line = describe(record)
        if line != last:
            print(line, file=sys.stderr, flush=True)
            last = line
        if record["status"] in TERMINAL:
            return record
        if deadline is not None and time.monotonic() > deadline:
            raise ClientError(f"gave up waiting after {timeout:g} s; last: {line}")
        time.sleep(interval)


def describe(record: dict[str, Any]) -> str:
    stage = f"/{record['stage']}" if record.get("stage") else ""
    text = f"{record['id']} {record['status']}{stage}"
    if record["status"] == "processing":
        text += f" {record.get('progress', 0)}%"
    if record.get("error"):
        text += f": {record['error']['message']}"
    return text
