"""Uppy's two ways of uploading straight to storage, built on the timelapse use cases.

Uppy 6 (`signRequest`) asks for one presigned S3 request at a time and sends each itself, even
CreateMultipartUpload: a multipart upload made through Uppy 6 is opened by the browser, so its
uploadId reaches lapse only with the next request to sign. Uppy 4–5 (the Companion routes) asks
the server to open the multipart upload and to complete it.

Either way a timelapse is created by `TimelapseService.create`, with two differences: Uppy splits
the file itself, so the record is made for a single upload and lapse opens no multipart upload of
its own; and Uppy passes no size, so `sizeBytes` is optional here (the limits then apply to what
storage holds once the upload is complete: services/uploads.py).

A request about an upload in progress is authorised by its key: the key must be the original of
one of the caller's own timelapses, and the uploadId the one multipart upload bound to that
timelapse (at create for Companion, at its first request for Uppy 6): storage other than S3 may
not check that an uploadId belongs to the key it is sent with, so lapse checks it itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any

from chalicelib.domain import requests
from chalicelib.domain.keys import (
    filename_extension,
    timelapse_id_from_original_key,
    type_for_extension,
)
from chalicelib.domain.timelapse import Stage, Status, Timelapse, iso
from chalicelib.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.services.timelapses import PutUpload, TimelapseService

# S3's own bounds: part numbers 1–10,000 whatever size the client splits the file into.
MAX_PART_NUMBER = 10_000
# What Uppy 6 passes to `signRequest`; the rest of the body describes the timelapse to create.
SIGN_FIELDS = frozenset({"method", "key", "uploadId", "partNumber", "expiresIn"})
# Companion metadata that describes the timelapse (values arrive as strings).
NUMERIC_METADATA = ("sizeBytes", "targetSeconds", "durationMinutes", "speed", "fps")
TEXT_METADATA = ("projectId", "filename", "callbackUrl", "resolution")
# Timelapse options that are true or false: "true"/"false" as Companion metadata.
FLAG_METADATA = ("skipIdle", "timestamp", "deflicker")
METHODS = frozenset({"PUT", "POST", "GET", "DELETE"})
# Uppy 6's own object key for a file: `<random UUID>-<file name>`.
UPPY_KEY_PREFIX = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-")


@dataclass(frozen=True)
class S3Request:
    """One S3 request as Uppy 6 describes it to `signRequest`."""

    method: str
    key: str
    upload_id: str | None
    part_number: int | None
    expires_in: int | None


def parse_sign_request(body: Any) -> tuple[S3Request, dict[str, Any]]:
    """The request to sign, and the fields for creating a timelapse (used only by a create)."""
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    method = body.get("method")
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise ValidationError(f"method must be one of {', '.join(sorted(METHODS))}")
    key = body.get("key")
    if not isinstance(key, str) or not key:
        raise ValidationError("key must be a non-empty string")
    upload_id = body.get("uploadId")
    if upload_id is not None and (not isinstance(upload_id, str) or not upload_id):
        raise ValidationError("uploadId must be a non-empty string")
    part = body.get("partNumber")
    expires = body.get("expiresIn")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)):
        raise ValidationError("expiresIn must be an integer number of seconds")
    request = S3Request(
        method.upper(), key, upload_id, None if part is None else part_number(part), expires
    )
    # contentType stays: Uppy passes the file's type for a PUT, the front end may pass it always.
    fields = {name: value for name, value in body.items() if name not in SIGN_FIELDS}
    return request, fields


def fields_from_uppy_key(key: str, fields: dict[str, Any]) -> dict[str, Any]:
    """What Uppy's proposed key tells of the file when the front end passed nothing else: Uppy 6
    names a file's key `<uuid>-<file name>`, so the name, and from its extension the type a
    browser gives such a file (the presigned request is signed for that Content-Type)."""
    name = UPPY_KEY_PREFIX.sub("", key.rsplit("/", maxsplit=1)[-1])
    found = dict(fields)
    if "filename" not in found and _usable_name(name):
        found["filename"] = name
    if "contentType" not in found:
        found["contentType"] = type_for_extension(filename_extension(found.get("filename"))) or ""
    return found


def _usable_name(name: str) -> bool:
    try:
        return (
            bool(name) and len(name) <= requests.MAX_FILENAME and bool(requests.safe_filename(name))
        )
    except ValidationError:
        return False


def part_number(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PART_NUMBER:
        raise ValidationError(f"partNumber must be an integer from 1 to {MAX_PART_NUMBER}")
    return value


def _numeric(value: Any) -> Any:
    """Companion metadata arrives as strings ("123"); other values are left to the create path."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() and "." not in value else number
    return value


def _flag(value: Any) -> Any:
    """ "true"/"false" (metadata travels as text) as booleans; other values left to the create."""
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


def companion_create_fields(filename: Any, content_type: Any, metadata: Any) -> dict[str, Any]:
    """A create body from Uppy 4–5's `{filename, type, metadata}`."""
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ValidationError("metadata must be an object")
    fields = {name: _numeric(metadata[name]) for name in NUMERIC_METADATA if name in metadata}
    fields.update({name: metadata[name] for name in TEXT_METADATA if name in metadata})
    fields.update({name: _flag(metadata[name]) for name in FLAG_METADATA if name in metadata})
    fields["contentType"] = content_type
    if filename:
        fields.setdefault("filename", filename)
    return fields


@dataclass
class UppyService:
    timelapses: TimelapseService

    # --- shared -------------------------------------------------------------------------------

    def _create(self, owner_id: str, fields: dict[str, Any]) -> tuple[Timelapse, PutUpload]:
        """The one create path, for a single upload: Uppy makes its own multipart uploads."""
        limits = self.timelapses.limits
        whole = replace(limits, multipart_threshold_bytes=limits.max_upload_bytes)
        service = replace(self.timelapses, limits=whole)
        command = service.parse_create(fields, size_required=False)
        created = service.create(owner_id, command)
        assert isinstance(created.upload, PutUpload)  # no multipart threshold: always one PUT
        return created.timelapse, created.upload

    def _seconds(self, expires_in: int | None = None) -> int:
        most = self.timelapses.limits.upload_url_seconds
        return most if expires_in is None else max(1, min(expires_in, most))

    def _owned(self, owner_id: str, key: str) -> Timelapse:
        """The caller's timelapse whose original is `key`; a malformed or another's key is 404."""
        timelapse_id = timelapse_id_from_original_key(key)
        if timelapse_id is None:
            raise NotFoundError(f"no upload {key!r}")
        timelapse = self.timelapses.records.get_owned(timelapse_id, owner_id)
        if timelapse.original_video_key != key:
            raise NotFoundError(f"no upload {key!r}")
        return timelapse

    def _uploading(self, owner_id: str, key: str, upload_id: str) -> Timelapse:
        """The caller's timelapse that still awaits this upload, its one bound upload.

        Once the timelapse is over (cancelled through the API, say), the browser's multipart
        upload is aborted here, at its next request.
        """
        timelapse = self._bound(self._owned(owner_id, key), upload_id)
        if timelapse.status is Status.PENDING and timelapse.stage is Stage.AWAITING_UPLOAD:
            return timelapse
        self.timelapses.storage.abort_multipart(key, upload_id)
        raise ConflictError(f"the upload is over: the timelapse is {timelapse.status.value}")

    def _bound(self, timelapse: Timelapse, upload_id: str) -> Timelapse:
        """The record with `upload_id` as its one client upload: bound at first sight while the
        upload is awaited; any other uploadId (another's, or a second upload opened with the same
        signed request) is unknown here, as storage need not refuse a mismatched key itself."""
        if timelapse.client_upload_id is None and timelapse.stage is not Stage.AWAITING_UPLOAD:
            # Over before its upload was ever seen: whatever is open on this key goes.
            self.timelapses.abort_client_uploads(timelapse)
            raise ConflictError(f"the upload is over: the timelapse is {timelapse.status.value}")
        if timelapse.client_upload_id is None:
            try:
                timelapse = self.timelapses.records.bind_client_upload(timelapse.id, upload_id)
            except ConflictError:
                timelapse = self.timelapses.records.get_owned(timelapse.id, timelapse.owner_id)
        if timelapse.client_upload_id != upload_id:
            raise NotFoundError(f"no upload {upload_id!r} for key {timelapse.original_video_key!r}")
        return timelapse

    def _abort(self, owner_id: str, key: str, upload_id: str) -> Timelapse:
        """Aborting an upload cancels its timelapse; the multipart upload is aborted here too, so
        storage is clean even if the browser's own DELETE never arrives."""
        timelapse = self._owned(owner_id, key)
        if timelapse.client_upload_id is None and timelapse.stage is not Stage.AWAITING_UPLOAD:
            self.timelapses.abort_client_uploads(timelapse)
            return self.timelapses.cancel(owner_id, timelapse.id)
        timelapse = self._bound(timelapse, upload_id)
        cancelled = self.timelapses.cancel(owner_id, timelapse.id)
        self.timelapses.storage.abort_multipart(key, upload_id)
        return cancelled

    # --- Uppy 6: signRequest ------------------------------------------------------------------

    def sign(self, owner_id: str, body: Any) -> dict[str, Any]:
        request, fields = parse_sign_request(body)
        if request.upload_id is None:
            return self._sign_new_upload(owner_id, request, fields)
        storage = self.timelapses.storage
        key, upload_id = request.key, request.upload_id
        params: dict[str, Any] = {"Key": key, "UploadId": upload_id}
        if request.method == "DELETE":
            timelapse = self._abort(owner_id, key, upload_id)
            operation = "abort_multipart_upload"
        else:
            timelapse = self._uploading(owner_id, key, upload_id)
            if request.method == "PUT":
                if request.part_number is None:
                    raise ValidationError("partNumber is required to sign an upload part")
                params["PartNumber"] = request.part_number
            operation = {
                "PUT": "upload_part",
                "GET": "list_parts",
                "POST": "complete_multipart_upload",
            }[request.method]
        signed = storage.presign_request(operation, params, self._seconds(request.expires_in))
        return {
            "url": signed.url,
            "key": key,
            "timelapseId": timelapse.id,
            "expiresAt": iso(signed.expires_at),
        }

    def _sign_new_upload(
        self, owner_id: str, request: S3Request, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """PUT (simple upload) or POST (CreateMultipartUpload) without uploadId: a new timelapse."""
        if request.method not in {"PUT", "POST"}:
            raise ValidationError(
                f"{request.method} without uploadId is not an upload request; "
                "delete a timelapse with DELETE /timelapses/{id}"
            )
        timelapse, upload = self._create(owner_id, fields_from_uppy_key(request.key, fields))
        key = timelapse.original_video_key
        headers = {"Content-Type": upload.content_type}
        answer = {"key": key, "timelapseId": timelapse.id, "headers": headers}
        if request.method == "PUT":
            return {**answer, "url": upload.url, "expiresAt": iso(upload.expires_at)}
        signed = self.timelapses.storage.presign_request(
            "create_multipart_upload",
            {"Key": key, "ContentType": timelapse.content_type},
            self._seconds(request.expires_in),
        )
        return {**answer, "url": signed.url, "expiresAt": iso(signed.expires_at)}

    # --- Uppy 4–5: the Companion S3 routes ----------------------------------------------------

    def create_multipart(self, owner_id: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ValidationError("the body must be a JSON object")
        fields = companion_create_fields(
            body.get("filename"), body.get("type"), body.get("metadata")
        )
        timelapse, _single = self._create(owner_id, fields)
        key = timelapse.original_video_key
        metadata = {"timelapse-id": timelapse.id, "upload-method": "multipart"}
        if timelapse.size_bytes is not None:
            metadata["file-size"] = str(timelapse.size_bytes)
        upload_id = self.timelapses.storage.create_multipart(
            key, content_type=timelapse.content_type, metadata=metadata
        )
        self.timelapses.records.bind_client_upload(timelapse.id, upload_id)
        return {
            "key": key,
            "uploadId": upload_id,
            "bucket": self.timelapses.storage.bucket,
            "timelapseId": timelapse.id,
        }

    def sign_part(self, owner_id: str, upload_id: str, number: str, key: str) -> dict[str, Any]:
        self._uploading(owner_id, key, upload_id)
        seconds = self._seconds()
        signed = self.timelapses.storage.presign_part(key, upload_id, part_number(number), seconds)
        return {"url": signed.url, "expires": seconds}

    def list_parts(self, owner_id: str, upload_id: str, key: str) -> list[dict[str, Any]]:
        self._uploading(owner_id, key, upload_id)
        return [
            {"PartNumber": part.part_number, "ETag": part.etag, "Size": part.size}
            for part in self.timelapses.storage.list_parts(key, upload_id)
        ]

    def complete(self, owner_id: str, upload_id: str, key: str, body: Any) -> dict[str, Any]:
        timelapse = self._uploading(owner_id, key, upload_id)
        storage = self.timelapses.storage
        parts = requests.parse_completed_parts(body, MAX_PART_NUMBER) or [
            (part.part_number, part.etag) for part in storage.list_parts(key, upload_id)
        ]
        storage.complete_multipart(key, upload_id, parts)
        if not self.timelapses.storage_events:
            self.timelapses.process(owner_id, timelapse.id)
        location = storage.presign_get(key, self.timelapses.limits.download_url_seconds).url
        return {"location": location, "key": key, "bucket": storage.bucket}

    def abort(self, owner_id: str, upload_id: str, key: str) -> dict[str, Any]:
        self._abort(owner_id, key, upload_id)
        return {}

    def upload_parameters(self, owner_id: str, query: dict[str, str]) -> dict[str, Any]:
        """GET /s3/params: a single PUT; `metadata[name]` query parameters carry the metadata."""
        metadata = {
            name[len("metadata[") : -1]: value
            for name, value in query.items()
            if name.startswith("metadata[") and name.endswith("]")
        }
        fields = companion_create_fields(query.get("filename"), query.get("type"), metadata)
        timelapse, upload = self._create(owner_id, fields)
        return {
            "method": "PUT",
            "url": upload.url,
            "fields": {},
            "headers": {"Content-Type": upload.content_type},
            "key": timelapse.original_video_key,
            "timelapseId": timelapse.id,
        }
