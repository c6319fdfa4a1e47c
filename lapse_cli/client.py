"""`lapse submit | status | cancel | token`: the public HTTP API from a terminal, used exactly as a
front end uses it (create → PUT or multipart parts straight to storage → complete → poll).

Reads LAPSE_API_URL (default http://127.0.0.1:8000) and LAPSE_TOKEN. Standard library only: the
API answers small JSON (urllib.request), uploads stream from the file (http.client).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import mimetypes
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
    def from_env(cls) -> ApiClient:
        base = os.environ.get("LAPSE_API_URL") or DEFAULT_API_URL
        return cls(base.rstrip("/"), os.environ.get("LAPSE_TOKEN") or None)

    def request(self, method: str, path: str, body: Any = None) -> Any:
        if not self.token:
            raise ClientError(
                "LAPSE_TOKEN is not set (locally: export LAPSE_TOKEN=$(lapse token --user you))"
            )
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - the URL is the user's own API
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
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


def upload(client: ApiClient, created: dict[str, Any], path: Path, progress: Progress) -> None:
    plan = created["upload"]
    size = path.stat().st_size
    if plan["method"] == "PUT":
        put_file_range(
            plan["url"], path, 0, size, headers=plan.get("headers") or {}, on_bytes=progress.add
        )
    else:
        upload_multipart(client, created["timelapse"]["id"], plan, path, progress)


def upload_multipart(
    client: ApiClient, timelapse_id: str, plan: dict[str, Any], path: Path, progress: Progress
) -> None:
    size = path.stat().st_size
    part_size, count = int(plan["partSize"]), int(plan["partCount"])
    urls = {int(p["partNumber"]): str(p["url"]) for p in plan["parts"]}
    lock = threading.Lock()

    def url_for(number: int, *, fresh: bool = False) -> str:
        with lock:
            if fresh or number not in urls:
                # The first answer carries at most 100 part URLs; ask for the next ones in batches.
                wanted = [number] if fresh else list(range(number, min(number + 100, count + 1)))
                signed = client.request(
                    "POST", f"/timelapses/{timelapse_id}/upload/parts", {"partNumbers": wanted}
                )
                urls.update({int(p["partNumber"]): str(p["url"]) for p in signed["parts"]})
            return urls[number]

    def send(number: int) -> tuple[int, str]:
        offset = (number - 1) * part_size
        length = min(part_size, size - offset)
        for attempt in range(1, PART_TRIES + 1):
            sent = 0

            def count_bytes(n: int) -> None:
                nonlocal sent
                sent += n
                progress.add(n)

            try:
                url = url_for(number, fresh=attempt > 1)
                return number, put_file_range(
                    url, path, offset, length, headers={}, on_bytes=count_bytes
                )
            except (ClientError, OSError, http.client.HTTPException):
                progress.add(-sent)
                if attempt == PART_TRIES:
                    raise
                time.sleep(attempt)
        raise AssertionError("unreachable")

    with ThreadPoolExecutor(max_workers=PARALLEL_PARTS) as pool:
        etags = sorted(pool.map(send, range(1, count + 1)))
    client.request(
        "POST",
        f"/timelapses/{timelapse_id}/upload/complete",
        {"parts": [{"partNumber": n, "etag": etag} for n, etag in etags]},
    )


def wait_for_end(
    client: ApiClient, timelapse_id: str, *, interval: float = 1.0, timeout: float | None = None
) -> dict[str, Any]:
    """Polls GET /timelapses/{id} until a terminal status, showing status and progress."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last = ""
    while True:
        record = client.get(timelapse_id)
        line = _describe(record)
        if line != last:
            print(line, file=sys.stderr, flush=True)
            last = line
        if record["status"] in TERMINAL:
            return record
        if deadline is not None and time.monotonic() > deadline:
            raise ClientError(f"gave up waiting after {timeout:g} s; last: {line}")
        time.sleep(interval)


def _describe(record: dict[str, Any]) -> str:
    stage = f"/{record['stage']}" if record.get("stage") else ""
    text = f"{record['id']} {record['status']}{stage}"
    if record["status"] == "processing":
        text += f" {record.get('progress', 0)}%"
    if record.get("error"):
        text += f": {record['error']['message']}"
    return text


# --- subcommands ----------------------------------------------------------------------------------


def content_type_of(path: Path) -> str:
    known = CONTENT_TYPES.get(path.suffix.lower())
    guessed = known or mimetypes.guess_type(path.name)[0]
    if not guessed or not guessed.startswith("video/"):
        raise ClientError(f"cannot tell the video type of {path.name}; pass --content-type")
    return guessed


def run_submit(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise ClientError(f"{path} is not a file")
    client = ApiClient.from_env()
    body: dict[str, Any] = {
        "projectId": args.project,
        "contentType": args.content_type or content_type_of(path),
        "sizeBytes": path.stat().st_size,
        "filename": path.name,
    }
    if args.target_seconds is not None:
        body["targetSeconds"] = args.target_seconds
    if args.callback_url:
        body["callbackUrl"] = args.callback_url
    created = client.request("POST", "/timelapses", body)
    timelapse_id = created["timelapse"]["id"]
    print(timelapse_id, flush=True)
    try:
        upload(client, created, path, Progress(body["sizeBytes"]))
    except (ClientError, OSError, http.client.HTTPException, KeyboardInterrupt):
        # Leave nothing half-uploaded behind: cancelling aborts a multipart upload.
        with contextlib.suppress(ClientError):
            client.cancel(timelapse_id)
        raise
    if not args.wait:
        return 0
    record = wait_for_end(client, timelapse_id, timeout=args.timeout)
    if record["status"] != "complete":
        return 1
    print(record["urls"]["video"], flush=True)
    return 0


def run_status(args: argparse.Namespace) -> int:
    record = ApiClient.from_env().get(args.id)
    if args.json:
        print(json.dumps(record, indent=2))
        return 0
    print(_describe(record))
    if record["status"] == "complete":
        print(record["urls"]["video"])
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    print(_describe(ApiClient.from_env().cancel(args.id)))
    return 0


def run_token(args: argparse.Namespace) -> int:
    from chalicelib.adapters.auth import make_local_token  # noqa: PLC0415 - needs PyJWT only here

    stage = os.environ.get("LAPSE_STAGE", "local")
    if stage != "local":
        raise ClientError(
            f"lapse token makes local HS256 tokens only (LAPSE_STAGE={stage}); "
            "deployed stages take tokens from their OIDC issuer"
        )
    secret = os.environ.get("LAPSE_JWT_SECRET") or "local-dev-secret"
    print(make_local_token(args.user, secret, ttl_seconds=args.ttl))
    return 0


def _guarded(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except ClientError as exc:
            # On a terminal, end a progress bar's line first.
            lead = "\n" if sys.stderr.isatty() else ""
            print(f"{lead}lapse: {exc}", file=sys.stderr)
            return 1

    return run


def add_client_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    env = "Uses LAPSE_API_URL (default %s) and LAPSE_TOKEN." % DEFAULT_API_URL  # noqa: UP031
    submit = subparsers.add_parser(
        "submit",
        help="upload a video through the API and have it made into a timelapse",
        epilog=env,
    )
    submit.add_argument("file", type=Path, help="the video to upload")
    submit.add_argument("--project", default="cli", help="projectId (default %(default)s)")
    submit.add_argument("--target-seconds", type=float, help="length of the timelapse")
    submit.add_argument("--content-type", help="video MIME type (default: from the extension)")
    submit.add_argument("--callback-url", help="webhook URL told of the end")
    submit.add_argument("--wait", action="store_true", help="wait for the end; print the URL")
    submit.add_argument("--timeout", type=float, help="with --wait: give up after this many s")
    submit.set_defaults(handler=_guarded(run_submit))

    status = subparsers.add_parser("status", help="show a timelapse's status", epilog=env)
    status.add_argument("id")
    status.add_argument("--json", action="store_true", help="print the whole resource")
    status.set_defaults(handler=_guarded(run_status))

    cancel = subparsers.add_parser("cancel", help="cancel a pending or processing timelapse")
    cancel.add_argument("id")
    cancel.set_defaults(handler=_guarded(run_cancel))

    token = subparsers.add_parser(
        "token",
        help="print a local HS256 token (LAPSE_JWT_SECRET, default local-dev-secret)",
    )
    token.add_argument("--user", required=True, help="the token's sub (user id)")
    token.add_argument("--ttl", type=int, default=24 * 3600, help="lifetime in s (default 1 day)")
    token.set_defaults(handler=_guarded(run_token))
