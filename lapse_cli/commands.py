"""The API subcommands: submit, status, list, cancel, process, delete, token.

Every one takes `--api-url` and `--token` (else LAPSE_API_URL, default http://127.0.0.1:8000, and
LAPSE_TOKEN) and `--json` (the API's answer on stdout, for scripts). Exit status: 0 done, 1 an
error of the user's side (no token, no such file, API unreachable), 2 bad usage, 3 the API refused
(its message and HTTP status on stderr), 4 the timelapse ended failed or cancelled (`--wait`),
130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import mimetypes
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from lapse_cli.client import (
    CONTENT_TYPES,
    DEFAULT_API_URL,
    ApiClient,
    ApiError,
    ClientError,
    MultipartUpload,
    Progress,
    describe,
    upload,
    wait_for_end,
)
from lapse_cli.options import add_option_flags, option_fields

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_FAILED = 4
EXIT_INTERRUPTED = 130
STATUSES = ("pending", "processing", "complete", "failed", "cancelled")

Handler = Callable[[argparse.Namespace], int]


def _client(args: argparse.Namespace) -> ApiClient:
    return ApiClient.from_env(args.api_url, args.token)


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2), flush=True)


def content_type_of(path: Path) -> str:
    known = CONTENT_TYPES.get(path.suffix.lower())
    guessed = known or mimetypes.guess_type(path.name)[0]
    if not guessed or not guessed.startswith("video/"):
        raise ClientError(f"cannot tell the video type of {path.name}; pass --content-type")
    return guessed


# --- submit -------------------------------------------------------------------------------------


def run_submit(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise ClientError(f"{path} is not a file")
    client = _client(args)
    if args.resume:
        return _resume(client, args, path)
    body: dict[str, Any] = {
        "projectId": args.project,
        "contentType": args.content_type or content_type_of(path),
        "sizeBytes": path.stat().st_size,
        "filename": path.name,
    }
    if args.target_seconds is not None:
        body["targetSeconds"] = args.target_seconds
    body.update(option_fields(args))
    if args.callback_url:
        body["callbackUrl"] = args.callback_url
    created = client.request("POST", "/timelapses", body)
    timelapse_id = created["timelapse"]["id"]
    if not args.json:
        print(timelapse_id, flush=True)
    multipart = created["upload"]["method"] == "multipart"
    try:
        upload(client, created, path, Progress(body["sizeBytes"]))
    except KeyboardInterrupt:
        return _interrupted(client, timelapse_id, path, resumable=multipart)
    except (ClientError, OSError, http.client.HTTPException):
        if _upload_arrived(client, timelapse_id):
            # The answer was lost, not the upload (a complete that outlived the connection)
            return _finish(client, args, timelapse_id)
        # Leave nothing half-uploaded behind: cancelling aborts a multipart upload.
        with contextlib.suppress(ClientError):
            client.cancel(timelapse_id)
        raise
    return _finish(client, args, timelapse_id)


def _upload_arrived(client: ApiClient, timelapse_id: str) -> bool:
    """Whether the record has its upload after all (it left `awaiting_upload`)."""
    try:
        record = client.get(timelapse_id)
    except (ClientError, OSError, http.client.HTTPException):
        return False
    return not (record["status"] == "pending" and record["stage"] == "awaiting_upload")


def _resume(client: ApiClient, args: argparse.Namespace, path: Path) -> int:
    """`submit FILE --resume ID`: send the parts storage lacks, then complete."""
    parts = MultipartUpload.resume(client, args.resume, path)
    print(
        f"resuming {args.resume}: {len(parts.stored)} of {parts.part_count} parts are stored",
        file=sys.stderr,
        flush=True,
    )
    progress = Progress(path.stat().st_size)
    progress.add(parts.stored_bytes())
    try:
        parts.send_all(progress)
    except KeyboardInterrupt:
        return _interrupted(client, args.resume, path, resumable=True)
    return _finish(client, args, args.resume)


def _interrupted(client: ApiClient, timelapse_id: str, path: Path, *, resumable: bool) -> int:
    if resumable:
        print(
            f"\nlapse: upload interrupted; the parts sent so far are kept in storage.\n"
            f"  resume it:  lapse submit {path} --resume {timelapse_id}\n"
            f"  or drop it: lapse cancel {timelapse_id}",
            file=sys.stderr,
        )
    else:
        # A single PUT cannot resume: cancel, so no record waits for an upload that won't come.
        with contextlib.suppress(ClientError):
            client.cancel(timelapse_id)
        print(f"\nlapse: upload interrupted; timelapse {timelapse_id} cancelled", file=sys.stderr)
    return EXIT_INTERRUPTED


def _finish(client: ApiClient, args: argparse.Namespace, timelapse_id: str) -> int:
    if not args.wait:
        if args.json:
            _print_json(client.get(timelapse_id))
        return 0
    record = wait_for_end(client, timelapse_id, timeout=args.timeout)
    if args.json:
        _print_json(record)
    elif record["status"] == "complete":
        print(record["urls"]["video"], flush=True)
    return 0 if record["status"] == "complete" else EXIT_FAILED


# --- one timelapse ------------------------------------------------------------------------------


def run_status(args: argparse.Namespace) -> int:
    record = _client(args).get(args.id)
    if args.json:
        _print_json(record)
        return 0
    print(describe(record))
    if record["status"] == "complete":
        print(record["urls"]["video"])
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    record = _client(args).cancel(args.id)
    if args.json:
        _print_json(record)
    else:
        print(describe(record))
    return 0


def run_process(args: argparse.Namespace) -> int:
    record = _client(args).request("POST", f"/timelapses/{args.id}/process")["timelapse"]
    if args.json:
        _print_json(record)
    else:
        print(describe(record))
    return 0


def run_delete(args: argparse.Namespace) -> int:
    _client(args).request("DELETE", f"/timelapses/{args.id}")
    if args.json:
        _print_json({"id": args.id, "deleted": True})
    else:
        print(f"{args.id} deleted")
    return 0


# --- a project's timelapses ---------------------------------------------------------------------


def run_list(args: argparse.Namespace) -> int:
    client = _client(args)
    items: list[dict[str, Any]] = []
    cursor: str | None = args.cursor
    while True:
        query = {"limit": args.limit, "status": args.status, "cursor": cursor}
        wanted = urlencode({k: v for k, v in query.items() if v is not None})
        page = client.request(
            "GET", f"/projects/{quote(args.project, safe='')}/timelapses?{wanted}"
        )
        items.extend(page["items"])
        cursor = page["nextCursor"]
        if not (args.all and cursor):
            break
    if args.json:
        _print_json({"items": items, "nextCursor": cursor})
        return 0
    for record in items:
        name = record.get("filename") or ""
        print(f"{describe(record)}\t{name}\t{record['createdAt']}")
    if cursor:
        print(f"more: lapse list --project {args.project} --cursor {cursor}", file=sys.stderr)
    return 0


# --- local tokens -------------------------------------------------------------------------------


def run_token(args: argparse.Namespace) -> int:
    from chalicelib.adapters.auth import make_local_token  # noqa: PLC0415 - needs PyJWT only here

    stage = os.environ.get("LAPSE_STAGE", "local")
    if stage != "local":
        raise ClientError(
            f"lapse token makes local HS256 tokens only (LAPSE_STAGE={stage}); "
            "deployed stages take tokens from their OIDC issuer"
        )
    secret = os.environ.get("LAPSE_JWT_SECRET") or "local-dev-secret"
    token = make_local_token(args.user, secret, ttl_seconds=args.ttl)
    if args.json:
        _print_json({"token": token, "userId": args.user})
    else:
        print(token)
    return 0


# --- the parser ---------------------------------------------------------------------------------


def guarded(handler: Handler) -> Handler:
    def run(args: argparse.Namespace) -> int:
        # On a terminal, end a progress bar's line first.
        lead = "\n" if sys.stderr.isatty() else ""
        try:
            return handler(args)
        except ApiError as exc:
            print(f"{lead}lapse: {exc}", file=sys.stderr)
            return EXIT_REFUSED
        except ClientError as exc:
            print(f"{lead}lapse: {exc}", file=sys.stderr)
            return EXIT_ERROR

    return run


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api-url", help=f"the API (default: LAPSE_API_URL, else {DEFAULT_API_URL})"
    )
    common.add_argument("--token", help="bearer token (default: LAPSE_TOKEN)")
    common.add_argument("--json", action="store_true", help="print the API's answer as JSON")
    return common


def add_client_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = [_common()]

    def command(name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=text, description=text, parents=common)
        parser.set_defaults(handler=guarded(handler))
        return parser

    submit = command("submit", run_submit, "upload a video and have it made into a timelapse")
    submit.add_argument("file", type=Path, help="the video to upload")
    submit.add_argument("--project", default="cli", help="projectId (default %(default)s)")
    submit.add_argument("--target-seconds", type=float, help="length of the timelapse")
    add_option_flags(submit)
    submit.add_argument("--content-type", help="video MIME type (default: from the extension)")
    submit.add_argument("--callback-url", help="webhook URL told of the end")
    submit.add_argument("--wait", action="store_true", help="wait for the end; print the URL")
    submit.add_argument("--timeout", type=float, help="with --wait: give up after this many s")
    submit.add_argument(
        "--resume", metavar="ID", help="continue the interrupted multipart upload of timelapse ID"
    )

    for name, handler, text in (
        ("status", run_status, "show a timelapse's status (and its video URL once complete)"),
        ("cancel", run_cancel, "cancel a pending or processing timelapse"),
        ("process", run_process, "process a timelapse again (failed, cancelled or process:false)"),
        ("delete", run_delete, "delete a timelapse and everything it stored"),
    ):
        command(name, handler, text).add_argument("id", help="the timelapse id")

    listing = command("list", run_list, "list a project's timelapses, newest first")
    listing.add_argument("--project", default="cli", help="projectId (default %(default)s)")
    listing.add_argument("--status", choices=STATUSES, help="only timelapses in this status")
    listing.add_argument("--limit", type=int, default=50, help="per page, 1–100 (default 50)")
    listing.add_argument("--cursor", help="the page after this cursor (printed by the last page)")
    listing.add_argument("--all", action="store_true", help="follow every page")

    token = command("token", run_token, "print a local HS256 token (LAPSE_JWT_SECRET)")
    token.add_argument("--user", required=True, help="the token's sub (user id)")
    token.add_argument("--ttl", type=int, default=24 * 3600, help="lifetime in s (default 1 day)")
