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

from dataclasses import dataclass, replace
from datetime import datetime

from chalicelib.domain.keys import timelapse_id_from_original_key
from chalicelib.domain.requests import CreateTimelapse
from chalicelib.domain.timelapse import Stage, Status, Timelapse
from chalicelib.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.services.ports import StoredPart
from chalicelib.services.timelapses import PutUpload, TimelapseService


@dataclass(frozen=True)
class S3Request:
    """One S3 request as Uppy 6 describes it to `signRequest`."""

    method: str
    key: str
    upload_id: str | None
    part_number: int | None
    expires_in: int | None


@dataclass(frozen=True)
class SignedRequest:
    """A presigned S3 request for `timelapse`'s original (`content_type`: what to send, for a
    request that creates)."""

    timelapse: Timelapse
    url: str
    expires_at: datetime
    content_type: str | None = None


@dataclass(frozen=True)
class OpenedUpload:
    """A multipart upload lapse opened for a new timelapse (Companion)."""

    timelapse: Timelapse
    upload_id: str
    bucket: str


@dataclass(frozen=True)
class CompletedUpload:
    key: str
    bucket: str
    location: str  # a presigned GET of the stored original


@dataclass
class UppyService:
    timelapses: TimelapseService

    # --- shared -------------------------------------------------------------------------------

    def _create(self, owner_id: str, command: CreateTimelapse) -> tuple[Timelapse, PutUpload]:
        """The one create path, for a single upload: Uppy makes its own multipart uploads."""
        limits = self.timelapses.limits
        whole = replace(limits, multipart_threshold_bytes=limits.max_upload_bytes)
        service = replace(self.timelapses, limits=whole)
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

    def uploading(self, owner_id: str, key: str, upload_id: str) -> Timelapse:
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

    def sign(self, owner_id: str, request: S3Request) -> SignedRequest:
        """Sign a request about an upload in progress (it names its uploadId)."""
        storage = self.timelapses.storage
        key, upload_id = request.key, request.upload_id
        assert upload_id is not None  # a request without one creates: sign_new_upload
        params: dict[str, str | int] = {"Key": key, "UploadId": upload_id}
        if request.method == "DELETE":
            timelapse = self._abort(owner_id, key, upload_id)
            operation = "abort_multipart_upload"
        else:
            timelapse = self.uploading(owner_id, key, upload_id)
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
        return SignedRequest(timelapse, signed.url, signed.expires_at)

    def sign_new_upload(
        self, owner_id: str, request: S3Request, command: CreateTimelapse
    ) -> SignedRequest:
        """PUT (simple upload) or POST (CreateMultipartUpload) without uploadId: a new timelapse,
        and the request signed for lapse's key (Uppy adopts a key the server returns)."""
        timelapse, upload = self._create(owner_id, command)
        if request.method == "PUT":
            return SignedRequest(timelapse, upload.url, upload.expires_at, upload.content_type)
        signed = self.timelapses.storage.presign_request(
            "create_multipart_upload",
            {"Key": timelapse.original_video_key, "ContentType": timelapse.content_type},
            self._seconds(request.expires_in),
        )
        return SignedRequest(timelapse, signed.url, signed.expires_at, upload.content_type)

    # --- Uppy 4–5: the Companion S3 routes ----------------------------------------------------

    def create_multipart(self, owner_id: str, command: CreateTimelapse) -> OpenedUpload:
        timelapse, _single = self._create(owner_id, command)
        key = timelapse.original_video_key
        metadata = {"timelapse-id": timelapse.id, "upload-method": "multipart"}
        if timelapse.size_bytes is not None:
            metadata["file-size"] = str(timelapse.size_bytes)
        upload_id = self.timelapses.storage.create_multipart(
            key, content_type=timelapse.content_type, metadata=metadata
        )
        self.timelapses.records.bind_client_upload(timelapse.id, upload_id)
        return OpenedUpload(timelapse, upload_id, self.timelapses.storage.bucket)

    def sign_part(self, timelapse: Timelapse, upload_id: str, number: int) -> tuple[str, int]:
        """A presigned PUT for one part of `timelapse`'s upload (from `uploading`), and for how
        many seconds it holds."""
        seconds = self._seconds()
        key = timelapse.original_video_key
        signed = self.timelapses.storage.presign_part(key, upload_id, number, seconds)
        return signed.url, seconds

    def list_parts(self, owner_id: str, upload_id: str, key: str) -> list[StoredPart]:
        self.uploading(owner_id, key, upload_id)
        return self.timelapses.storage.list_parts(key, upload_id)

    def complete(
        self, timelapse: Timelapse, upload_id: str, wanted: list[tuple[int, str]] | None
    ) -> CompletedUpload:
        """Complete `timelapse`'s upload (from `uploading`) with the client's parts, or with what
        storage holds when None; where storage sends no events, queue it here."""
        storage = self.timelapses.storage
        key = timelapse.original_video_key
        parts = wanted or [
            (part.part_number, part.etag) for part in storage.list_parts(key, upload_id)
        ]
        storage.complete_multipart(key, upload_id, parts)
        if not self.timelapses.storage_events:
            self.timelapses.process(timelapse.owner_id, timelapse.id)
        location = storage.presign_get(key, self.timelapses.limits.download_url_seconds).url
        return CompletedUpload(key, storage.bucket, location)

    def abort(self, owner_id: str, upload_id: str, key: str) -> None:
        self._abort(owner_id, key, upload_id)

    def upload_parameters(self, owner_id: str, command: CreateTimelapse) -> SignedRequest:
        """GET /s3/params: a new timelapse and a single PUT for its original."""
        timelapse, upload = self._create(owner_id, command)
        return SignedRequest(timelapse, upload.url, upload.expires_at, upload.content_type)
