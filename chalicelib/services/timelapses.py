"""Use cases behind the HTTP API: create, upload, read, list, cancel, process, delete."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from datetime import datetime

from chalicelib.domain import requests
from chalicelib.domain.idempotency import EarlierRequest, fingerprint
from chalicelib.domain.keys import new_timelapse_id as _new_id
from chalicelib.domain.keys import original_key, poster_key, timelapse_key
from chalicelib.domain.limits import Limits
from chalicelib.domain.parts import plan_parts
from chalicelib.domain.requests import CreateTimelapse
from chalicelib.domain.timelapse import (
    ErrorInfo,
    Stage,
    Status,
    Timelapse,
    Transition,
    UploadInfo,
    UploadMethod,
    allows,
    utcnow,
)
from chalicelib.domain.webhooks import CallbackPolicy
from chalicelib.errors import (
    ConflictError,
    IdempotencyKeyReused,
    NotFoundError,
    ValidationError,
)
from chalicelib.services.ports import (
    IdempotencyKeys,
    Notifier,
    ObjectInfo,
    Storage,
    StoredPart,
    TimelapseRepository,
    WorkQueue,
)
from chalicelib.services.uploads import abort_uploads, acceptance_refusal

FIRST_PART_URLS = 100
CANCELLED = ErrorInfo("cancelled", "Cancelled by its owner.")
# What no later upload can mend (only uploads without a declared size can get these).
FINAL_REFUSALS = frozenset({"too_large", "empty_upload"})


# --- what the use cases answer (chalicelib/wire.py turns them into JSON) ----------------------


@dataclass(frozen=True)
class PartUrl:
    number: int
    url: str


@dataclass(frozen=True)
class SignedParts:
    parts: list[PartUrl]
    expires_at: datetime  # the earliest of the URLs' expiries


@dataclass(frozen=True)
class PutUpload:
    """Upload the original with one PUT to `url`, sending `content_type`."""

    url: str
    content_type: str
    expires_at: datetime


@dataclass(frozen=True)
class MultipartUpload:
    """Upload the original in parts; URLs for the first of them."""

    upload_id: str
    part_size: int
    part_count: int
    first_parts: SignedParts


@dataclass(frozen=True)
class Created:
    timelapse: Timelapse
    upload: PutUpload | MultipartUpload


@dataclass(frozen=True)
class DownloadUrls:
    video: str
    original: str
    poster: str | None


@dataclass(frozen=True)
class TimelapseView:
    """A timelapse as its owner reads it: the record and presigned downloads."""

    timelapse: Timelapse
    urls: DownloadUrls


@dataclass(frozen=True)
class Page:
    items: list[Timelapse]
    next_cursor: str | None


@dataclass(frozen=True)
class UploadState:
    """What storage holds of a multipart upload."""

    upload_id: str
    part_size: int | None
    part_count: int | None
    parts: list[StoredPart]


@dataclass
class TimelapseService:
    records: TimelapseRepository
    storage: Storage
    queue: WorkQueue
    limits: Limits
    notifier: Notifier
    # False where storage sends no ObjectCreated events (Cloudflare R2): the API enqueues instead.
    storage_events: bool = True
    # Which callbackUrls a create accepts (secure by default: public https only).
    callbacks: CallbackPolicy = field(default_factory=CallbackPolicy)
    # Where `Idempotency-Key`s are kept; without it the header is ignored.
    idempotency: IdempotencyKeys | None = None

    # --- create and upload --------------------------------------------------------------------

    def create(
        self,
        owner_id: str,
        request: CreateTimelapse,
        *,
        idempotency_key: str | None = None,
    ) -> Created:
        if idempotency_key is None or self.idempotency is None:
            return self._create(owner_id, request)
        return self._create_once(owner_id, request, idempotency_key)

    def _create_once(self, owner_id: str, request: CreateTimelapse, key: str) -> Created:
        """A repeat of the same request under the same key answers the first answer again (the
        same timelapse, fresh upload URLs); another request under it is refused, as is a repeat
        while the first is still being handled."""
        assert self.idempotency is not None
        print_ = fingerprint(dataclasses.asdict(request))
        earlier = self.idempotency.claim(owner_id, key, print_, utcnow())
        if earlier is not None:
            return self._answer_again(owner_id, earlier, print_)
        try:
            created = self._create(owner_id, request)
        except Exception:
            self.idempotency.release(owner_id, key)
            raise
        self.idempotency.finish(owner_id, key, created.timelapse.id)
        return created

    def _answer_again(self, owner_id: str, earlier: EarlierRequest, print_: str) -> Created:
        if earlier.fingerprint != print_:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used for a request with another body"
            )
        if earlier.timelapse_id is None:
            raise ConflictError(
                "a request with this Idempotency-Key is still being handled; retry in a moment"
            )
        timelapse = self.records.get_owned(earlier.timelapse_id, owner_id)
        return Created(timelapse, self._upload_instructions(timelapse))

    def _create(self, owner_id: str, request: CreateTimelapse) -> Created:
        timelapse_id = _new_id()
        key = original_key(timelapse_id, request.content_type, request.filename)
        upload_info = UploadInfo(UploadMethod.PUT)
        if (
            request.size_bytes is not None
            and request.size_bytes > self.limits.multipart_threshold_bytes
        ):
            plan = plan_parts(request.size_bytes, self.limits)
            upload_id = self.storage.create_multipart(
                key,
                content_type=request.content_type,
                metadata=_metadata(timelapse_id, "multipart", request.size_bytes),
            )
            upload_info = UploadInfo(
                UploadMethod.MULTIPART, upload_id, plan.part_size, plan.part_count
            )
        now = utcnow()
        timelapse = Timelapse(
            id=timelapse_id,
            owner_id=owner_id,
            project_id=request.project_id,
            status=Status.PENDING,
            stage=Stage.AWAITING_UPLOAD,
            content_type=request.content_type,
            size_bytes=request.size_bytes,
            original_video_key=key,
            created_at=now,
            updated_at=now,
            upload=upload_info,
            process=request.process,
            filename=request.filename,
            duration_minutes=request.duration_minutes,
            target_seconds=request.target_seconds,
            speed=request.speed,
            options=request.options,
            callback_url=request.callback_url,
        )
        try:
            self.records.create(timelapse)
        except Exception:
            # Nothing may stay open for a record that was never stored.
            if upload_info.upload_id:
                self.storage.abort_multipart(key, upload_info.upload_id)
            raise
        return Created(timelapse, self._upload_instructions(timelapse))

    def _upload_instructions(self, timelapse: Timelapse) -> PutUpload | MultipartUpload:
        seconds = self.limits.upload_url_seconds
        upload = timelapse.upload
        if upload.method is UploadMethod.PUT:
            signed = self.storage.presign_put(
                timelapse.original_video_key,
                content_type=timelapse.content_type,
                size_bytes=timelapse.size_bytes,
                seconds=seconds,
            )
            return PutUpload(signed.url, timelapse.content_type, signed.expires_at)
        assert upload.upload_id
        assert upload.part_count
        assert upload.part_size
        first = range(1, min(upload.part_count, FIRST_PART_URLS) + 1)
        parts = self._part_urls(timelapse, list(first))
        return MultipartUpload(upload.upload_id, upload.part_size, upload.part_count, parts)

    def _part_urls(self, timelapse: Timelapse, numbers: list[int]) -> SignedParts:
        upload_id = timelapse.upload.upload_id
        assert upload_id
        seconds = self.limits.upload_url_seconds
        signed = [
            (n, self.storage.presign_part(timelapse.original_video_key, upload_id, n, seconds))
            for n in numbers
        ]
        expires = min((s.expires_at for _, s in signed), default=utcnow())
        return SignedParts([PartUrl(n, s.url) for n, s in signed], expires)

    def awaiting_multipart(self, owner_id: str, timelapse_id: str) -> Timelapse:
        """The caller's timelapse whose multipart upload is still awaited (404, else 409)."""
        timelapse = self.records.get_owned(timelapse_id, owner_id)
        if not timelapse.is_multipart:
            raise ConflictError("this timelapse was created for a single PUT upload, not multipart")
        if timelapse.status is not Status.PENDING or timelapse.stage is not Stage.AWAITING_UPLOAD:
            raise ConflictError(
                f"the upload is over: the timelapse is {timelapse.status.value}"
                + (f" ({timelapse.stage.value})" if timelapse.stage else "")
            )
        return timelapse

    def sign_parts(self, timelapse: Timelapse, numbers: list[int]) -> SignedParts:
        """Fresh URLs for parts of `timelapse`'s upload (from `awaiting_multipart`)."""
        return self._part_urls(timelapse, numbers)

    def upload_status(self, owner_id: str, timelapse_id: str) -> UploadState:
        timelapse = self.awaiting_multipart(owner_id, timelapse_id)
        upload = timelapse.upload
        assert upload.upload_id
        stored = self.storage.list_parts(timelapse.original_video_key, upload.upload_id)
        return UploadState(upload.upload_id, upload.part_size, upload.part_count, stored)

    def complete_upload(
        self, timelapse: Timelapse, wanted: list[tuple[int, str]] | None
    ) -> Timelapse:
        """Complete `timelapse`'s upload (from `awaiting_multipart`) with the client's
        (partNumber, etag) list, or with what storage holds when None."""
        timelapse_id = timelapse.id
        upload = timelapse.upload
        assert upload.upload_id
        assert upload.part_count
        key = timelapse.original_video_key
        # lapse's own multipart uploads always have a declared size (Uppy's are its own).
        assert timelapse.size_bytes is not None
        stored = {p.part_number: p for p in self.storage.list_parts(key, upload.upload_id)}
        total = sum(p.size for p in stored.values())
        if total > timelapse.size_bytes:
            # More bytes than declared: refuse for good, so nothing unexpected gets rendered.
            self.storage.abort_multipart(key, upload.upload_id)
            message = (
                f"The upload holds {total} bytes but {timelapse.size_bytes} were declared; "
                "it was discarded."
            )
            failed = self.records.fail_pending(timelapse_id, ErrorInfo("size_mismatch", message))
            self.notifier.timelapse_ended(failed)
            raise ValidationError(message)
        parts = wanted or sorted((n, p.etag) for n, p in stored.items())
        missing = sorted(set(range(1, upload.part_count + 1)) - {n for n, _ in parts})
        if missing or total < timelapse.size_bytes:
            raise ValidationError(
                f"the upload is incomplete: storage holds {total} of {timelapse.size_bytes} bytes"
                + (f"; missing parts {missing[:20]}" if missing else "")
            )
        self.storage.complete_multipart(key, upload.upload_id, parts)
        if not self.storage_events:
            timelapse = self._queue_uploaded(timelapse, queue=timelapse.process)
        return timelapse

    # --- read ---------------------------------------------------------------------------------

    def get(self, owner_id: str, timelapse_id: str) -> TimelapseView:
        timelapse = self.records.get_owned(timelapse_id, owner_id)
        seconds = self.limits.download_url_seconds
        poster = timelapse.poster_key
        urls = DownloadUrls(
            video=self.storage.presign_get(timelapse.video_key, seconds).url,
            original=self.storage.presign_get(
                timelapse.original_video_key, seconds, filename=timelapse.filename
            ).url,
            poster=self.storage.presign_get(poster, seconds).url if poster else None,
        )
        return TimelapseView(timelapse, urls)

    def list_project(
        self,
        owner_id: str,
        project_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        status: Status | None = None,
    ) -> Page:
        items, next_cursor = self.records.list_by_project(
            owner_id, requests.project_id(project_id), limit=limit, cursor=cursor, status=status
        )
        return Page(items, next_cursor)

    # --- change -------------------------------------------------------------------------------

    def cancel(self, owner_id: str, timelapse_id: str) -> Timelapse:
        timelapse = self.records.get_owned(timelapse_id, owner_id)
        if timelapse.status is Status.CANCELLED:
            return timelapse
        try:
            cancelled = self.records.cancel(timelapse_id, CANCELLED)
        except ConflictError:
            now = self.records.get_owned(timelapse_id, owner_id)
            if now.status is Status.CANCELLED:
                return now
            raise ConflictError(f"a {now.status.value} timelapse cannot be cancelled") from None
        if timelapse.stage is Stage.AWAITING_UPLOAD:
            self.abort_client_uploads(timelapse)
        # A running worker sees the cancel at its next heartbeat, stops ffmpeg and cleans up.
        self.notifier.timelapse_ended(cancelled)
        return cancelled

    def abort_client_uploads(self, timelapse: Timelapse) -> None:
        abort_uploads(timelapse, self.storage)

    def process(self, owner_id: str, timelapse_id: str) -> Timelapse:
        timelapse = self.records.get_owned(timelapse_id, owner_id)
        if timelapse.status is Status.PENDING and timelapse.stage is Stage.AWAITING_UPLOAD:
            # The owner asks for processing: queue it, whatever `process` said at create time.
            return self._queue_uploaded(timelapse, queue=True)
        if not allows(Transition.REQUEUE, timelapse):
            state = timelapse.status.value + (
                f"/{timelapse.stage.value}" if timelapse.stage else ""
            )
            raise ConflictError(
                f"the timelapse is {state}; only a failed, cancelled or idle one "
                "can be processed again"
            )
        found = self._require_original(timelapse)
        refusal = acceptance_refusal(timelapse, found, self.storage, self.limits)
        if refusal is not None:
            raise ConflictError(f"the stored original cannot be processed: {refusal.message}")
        requeued = self.records.requeue(timelapse_id)
        self.queue.send_process(timelapse_id)
        return requeued

    def _require_original(self, timelapse: Timelapse) -> ObjectInfo:
        found = self.storage.head(timelapse.original_video_key)
        if found is None:
            raise ConflictError("no original video has been uploaded for this timelapse")
        return found

    def _queue_uploaded(self, timelapse: Timelapse, *, queue: bool) -> Timelapse:
        """awaiting_upload → queued (or idle) once the object is really there (no bucket events)."""
        found = self._require_original(timelapse)
        if timelapse.size_bytes is not None and found.size != timelapse.size_bytes:
            raise ConflictError(
                f"storage holds {found.size} bytes, not the declared {timelapse.size_bytes}: "
                "the upload is not finished"
            )
        refusal = acceptance_refusal(timelapse, found, self.storage, self.limits)
        if refusal is not None and refusal.code in FINAL_REFUSALS:
            # No size was declared (Uppy) and what arrived is beyond the limits: refuse for good.
            failed = self.records.fail_pending(timelapse.id, refusal)
            self.storage.delete(timelapse.original_video_key)
            self.notifier.timelapse_ended(failed)
            raise ConflictError(refusal.message)
        if refusal is not None:
            raise ConflictError(f"the stored original cannot be processed: {refusal.message}")
        uploaded = self.records.mark_uploaded(
            timelapse.id, queue=queue, etag=found.etag, size_bytes=found.size
        )
        if queue:
            self.queue.send_process(timelapse.id)
        return uploaded

    def delete(self, owner_id: str, timelapse_id: str) -> None:
        timelapse = self.records.get_owned(timelapse_id, owner_id)
        if timelapse.status in {Status.PENDING, Status.PROCESSING}:
            # If it reached a terminal state meanwhile, delete it all the same.
            with contextlib.suppress(ConflictError, NotFoundError):
                self.cancel(owner_id, timelapse_id)
        timelapse = self.records.get(timelapse_id) or timelapse
        self.abort_client_uploads(timelapse)
        self.records.delete(timelapse_id)
        # The fixed output keys, not the record's: a worker may have written them before it lost.
        self.storage.delete(
            timelapse.original_video_key, timelapse_key(timelapse_id), poster_key(timelapse_id)
        )


def _metadata(timelapse_id: str, method: str, size: int) -> dict[str, str]:
    return {"timelapse-id": timelapse_id, "upload-method": method, "file-size": str(size)}
