"""What the API answers, declared once: each body is a pydantic model built from the use cases'
domain values. The same models give the OpenAPI document its response schemas (openapi.py), so
an answer and its documentation cannot drift apart. The blueprints (api.py, uppy.py) and the
webhook payload use the functions at the end; the use cases never build a wire body, and a stored
item is not one either (adapters/records.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic.json_schema import models_json_schema

from chalicelib import inputs
from chalicelib.domain import timelapse as domain
from chalicelib.domain.limits import Limits, MiB
from chalicelib.domain.options import RenderOptions
from chalicelib.domain.requests import MAX_PROJECT_ID
from chalicelib.domain.timelapse import Stage, Status, iso
from chalicelib.services import ports
from chalicelib.services import timelapses as uses
from chalicelib.services import uppy as uppy_uses
from chalicelib.services.timelapses import FIRST_PART_URLS

Body = dict[str, Any]
DEFAULTS = Limits()
REF = "#/components/schemas/{model}"


def _nullable_ref(name: str) -> Any:
    return WithJsonSchema({"anyOf": [{"$ref": REF.format(model=name)}, {"type": "null"}]})


def _size(count: int) -> str:
    gib = count / (1024 * MiB)
    return f"{gib:g} GiB" if gib >= 1 else f"{count / MiB:g} MiB"


class _Wire(BaseModel):
    """camelCase on the wire; every field present (null when empty)."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        json_schema_serialization_defaults_required=True,
    )

    def body(self) -> Body:
        return self.model_dump(mode="json", by_alias=True)


Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
Url = Annotated[str, Field(json_schema_extra={"format": "uri"})]


class _Stored(_Wire):
    """Shapes kept on the record as the worker wrote them; fields added later may be absent."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)


class SourceInfo(_Stored):
    """What probing the original found."""

    width: int = Field(description="Display width in pixels (rotation applied).", ge=1)
    height: int = Field(description="Display height in pixels (rotation applied).", ge=1)
    fps: float = Field(description="Frames per second.", gt=0)
    duration_seconds: float = Field(ge=0)
    codec: str = Field(description="The video codec, as ffmpeg names it (e.g. `h264`).")
    size_bytes: int = Field(description="The stored original's size.", ge=1)
    rotation: Literal[0, 90, 180, 270] = Field(description="Clockwise rotation a player applies.")
    # mirrored and hdr came later: records probed before them lack the two
    mirrored: bool = Field(
        default=False,
        description="Mirrored after the rotation (front cameras); the timelapse is shown as a "
        "player shows the original.",
    )
    hdr: Literal["hlg", "pq"] | None = Field(
        default=None,
        description="HDR transfer (PQ includes HDR10 and Dolby Vision 8.1); the timelapse is "
        "tone-mapped to SDR BT.709.",
    )


_LONGEST_SIDE = RenderOptions(resolution="2160p").long_side


class OutputInfo(_Stored):
    """The stored timelapse: H.264 yuv420p, short side ≤ the asked `resolution` (long side ≤ 16:9
    of it; never upscaled), the asked `fps`, no audio."""

    width: int = Field(ge=1, le=_LONGEST_SIDE)
    height: int = Field(ge=1, le=_LONGEST_SIDE)
    fps: float = Field(gt=0)
    duration_seconds: float = Field(ge=0)
    size_bytes: int = Field(ge=1)
    speedup: float = Field(description="Source duration ÷ timelapse duration.", gt=0)
    # idleSecondsSkipped came with v1.1: records completed before it lack it
    idle_seconds_skipped: float = Field(
        default=0,
        description="Seconds of the source left out as idle (`skipIdle`); 0 without it.",
        ge=0,
    )


def _declared(stored: dict[str, Any] | None, model: type[_Stored]) -> dict[str, Any] | None:
    """The fields of a stored shape the contract declares; what the worker keeps for itself
    (a fanned-out render's part count, say) stays off the wire."""
    if stored is None:
        return None
    names = {field.alias or name for name, field in model.model_fields.items()}
    return {key: value for key, value in stored.items() if key in names}


class ErrorDetail(_Wire):
    code: str = Field(description="Stable, machine-readable (the codes: see the responses).")
    message: str = Field(description="Why, in words a person understands.")


class Error(_Wire):
    """The body of every refusal."""

    error: ErrorDetail


class ErrorInfo(_Wire):
    """Why a timelapse failed or was cancelled."""

    code: str = Field(
        description="Why it ended, machine-readable: e.g. `cancelled`, `invalid_media`, "
        "`render_failed`, `timeout`, `size_mismatch`, `worker_lost`, `internal_error`."
    )
    message: str = Field(description="In words a user understands.")

    @classmethod
    def of(cls, error: domain.ErrorInfo) -> ErrorInfo:
        return cls(code=error.code, message=error.message)


class TimelapseOptions(_Wire):
    """The options the timelapse was asked with (defaults filled in)."""

    fps: Literal[24, 25, 30, 50, 60] = Field(description="Output frame rate.")
    resolution: Literal["720p", "1080p", "1440p", "2160p"] = Field(
        description="The output's short side at most this."
    )
    skip_idle: bool = Field(description="Stretches where the picture does not change are left out.")
    timestamp: bool = Field(description="The source's time is burnt into a corner.")
    deflicker: bool = Field(description="Frame-to-frame brightness is evened out.")

    @classmethod
    def of(cls, options: RenderOptions) -> TimelapseOptions:
        return cls(
            fps=options.fps,  # type: ignore[arg-type]  # one of FPS_CHOICES, checked on create
            resolution=options.resolution,  # type: ignore[arg-type]  # likewise
            skip_idle=options.skip_idle,
            timestamp=options.timestamp,
            deflicker=options.deflicker,
        )


class Timelapse(_Wire):
    """A timelapse (`urls` only on GET by id)."""

    id: str = Field(description="Server-made UUID.", json_schema_extra={"format": "uuid"})
    project_id: str = Field(max_length=MAX_PROJECT_ID)
    status: Status = Field(description="Terminal: complete, failed, cancelled.")
    stage: Stage | None = Field(
        description="null once uploaded with `process: false` (idle) and in terminal states."
    )
    progress: int = Field(description="Never goes down within one attempt.", ge=0, le=100)
    video_key: str = Field(
        description="What to play now: the original until complete, then the timelapse."
    )
    original_video_key: str = Field(description="`videos/<id>.<ext>`")
    processed_video_key: str | None = Field(description="`timelapses/<id>.mp4` once complete")
    poster_key: str | None = Field(description="`posters/<id>.jpg` once complete")
    filename: str | None = Field(description="As the client gave it.")
    content_type: str = Field(
        description="The declared type, lower-cased, without parameters; "
        "`application/octet-stream` when the client declared none. Advisory: the bytes decide."
    )
    size_bytes: int | None = Field(
        description="The declared size of the original (null when the client declared none).",
        ge=1,
    )
    duration_minutes: int | float | None = Field(description="As the client gave it.", ge=0)
    target_seconds: int | float | None = Field(
        description="Requested timelapse length; the output is never longer than the source. "
        "null when `speed` sets the length.",
        ge=DEFAULTS.min_target_seconds,
    )
    speed: int | float | None = Field(
        description="Requested speed-up instead of a length; null when `targetSeconds` is used."
    )
    options: TimelapseOptions
    process: bool = Field(
        description="false: wait for `POST /timelapses/{timelapse_id}/process` after the upload."
    )
    callback_url: str | None = Field(description="As given on create.")
    source: Annotated[dict[str, Any] | None, _nullable_ref("SourceInfo")]
    output: Annotated[dict[str, Any] | None, _nullable_ref("OutputInfo")]
    error: ErrorInfo | None
    attempts: int = Field(description="Processing attempts so far.", ge=0)
    created_at: Timestamp = Field(description="ISO 8601 UTC.")
    updated_at: Timestamp = Field(description="ISO 8601 UTC.")
    started_at: Timestamp | None = Field(
        description="When processing of the current attempt began."
    )
    completed_at: Timestamp | None = Field(description="When it reached a terminal state.")

    @classmethod
    def of(cls, record: domain.Timelapse) -> Timelapse:
        return cls(
            id=record.id,
            project_id=record.project_id,
            status=record.status,
            stage=record.stage,
            progress=record.progress,
            video_key=record.video_key,
            original_video_key=record.original_video_key,
            processed_video_key=record.processed_video_key,
            poster_key=record.poster_key,
            filename=record.filename,
            content_type=record.content_type,
            size_bytes=record.size_bytes,
            duration_minutes=record.duration_minutes,
            target_seconds=record.target_seconds,
            speed=record.speed,
            options=TimelapseOptions.of(record.options),
            process=record.process,
            callback_url=record.callback_url,
            source=_declared(record.source, SourceInfo),
            output=_declared(record.output, OutputInfo),
            error=ErrorInfo.of(record.error) if record.error else None,
            attempts=record.attempts,
            created_at=iso(record.created_at) or "",
            updated_at=iso(record.updated_at) or "",
            started_at=iso(record.started_at),
            completed_at=iso(record.completed_at),
        )


class DownloadUrls(_Wire):
    model_config = ConfigDict(
        json_schema_extra={
            "description": "Presigned download URLs, valid "
            f"{DEFAULTS.download_url_seconds // 60} minutes."
        },
    )
    video: Url = Field(description="Presigned GET of `videoKey`.")
    original: Url = Field(description="Presigned GET of the original (downloads under `filename`).")
    poster: Url | None = Field(description="Presigned GET of the poster, once complete.")


class TimelapseWithUrls(Timelapse):
    """A timelapse with its presigned download URLs (GET /timelapses/{timelapse_id})."""

    urls: DownloadUrls

    @classmethod
    def of_view(cls, view: uses.TimelapseView) -> TimelapseWithUrls:
        urls = view.urls
        return cls(
            **Timelapse.of(view.timelapse).model_dump(),
            urls=DownloadUrls(video=urls.video, original=urls.original, poster=urls.poster),
        )


class TimelapseEnvelope(_Wire):
    timelapse: Timelapse


class TimelapseList(_Wire):
    items: list[Timelapse] = Field(description="Newest first.")
    next_cursor: str | None = Field(description="Pass as `?cursor=` for the next page.")


class PartUrl(_Wire):
    part_number: int = Field(ge=1)
    url: Url = Field(description="Presigned PUT for this part's bytes.")


class PartUrls(_Wire):
    parts: list[PartUrl] = Field(description="Sorted by partNumber, without duplicates.")
    expires_at: Timestamp = Field(description="When the earliest of these URLs expires.")

    @classmethod
    def of(cls, signed: uses.SignedParts) -> PartUrls:
        return cls(
            parts=[PartUrl(part_number=p.number, url=p.url) for p in signed.parts],
            expires_at=iso(signed.expires_at) or "",
        )


class PutHeaders(BaseModel):
    """Send these headers with the PUT."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)
    content_type: str = Field(alias="Content-Type")


class PutUpload(_Wire):
    model_config = ConfigDict(
        json_schema_extra={
            "description": "Single-request upload, for files up to "
            f"{_size(DEFAULTS.multipart_threshold_bytes)}."
        },
    )
    method: Literal["PUT"] = "PUT"
    url: Url = Field(
        description="Presigned PUT signed for exactly this key, content type and length; "
        "a body of another size is refused by storage."
    )
    headers: PutHeaders
    expires_at: Timestamp = Field(description="When the URL expires.")

    @classmethod
    def of(cls, upload: uses.PutUpload) -> PutUpload:
        return cls(
            url=upload.url,
            headers=PutHeaders(**{"Content-Type": upload.content_type}),
            expires_at=iso(upload.expires_at) or "",
        )


class MultipartUpload(_Wire):
    model_config = ConfigDict(
        json_schema_extra={
            "description": "Multipart upload, for files above "
            f"{_size(DEFAULTS.multipart_threshold_bytes)}: PUT each part to its URL, then "
            "`POST /timelapses/{timelapse_id}/upload/complete`."
        },
    )
    method: Literal["multipart"] = "multipart"
    upload_id: str
    part_size: int = Field(
        description="Bytes in every part but the last (10–100 MiB, growing with the file).",
        ge=DEFAULTS.min_part_bytes,
        le=DEFAULTS.max_part_bytes,
    )
    part_count: int = Field(ge=1, le=DEFAULTS.max_parts)
    parts: list[PartUrl] = Field(
        description=f"URLs for the first parts only (at most {FIRST_PART_URLS}); ask for the "
        "rest with `POST /timelapses/{timelapse_id}/upload/parts`. Keep each part's `ETag` "
        "response header.",
        min_length=1,
        max_length=FIRST_PART_URLS,
    )
    expires_at: Timestamp = Field(description="When the earliest of these URLs expires.")

    @classmethod
    def of(cls, upload: uses.MultipartUpload) -> MultipartUpload:
        first = PartUrls.of(upload.first_parts)
        return cls(
            upload_id=upload.upload_id,
            part_size=upload.part_size,
            part_count=upload.part_count,
            parts=first.parts,
            expires_at=first.expires_at,
        )


UploadBody = Annotated[PutUpload | MultipartUpload, Field(discriminator="method")]


class CreatedTimelapse(_Wire):
    timelapse: Timelapse
    upload: UploadBody

    @classmethod
    def of(cls, created: uses.Created) -> CreatedTimelapse:
        upload = created.upload
        body: PutUpload | MultipartUpload = (
            PutUpload.of(upload)
            if isinstance(upload, uses.PutUpload)
            else MultipartUpload.of(upload)
        )
        return cls(timelapse=Timelapse.of(created.timelapse), upload=body)


class StoredPart(_Wire):
    part_number: int = Field(ge=1)
    etag: str
    size: int = Field(ge=0)


class UploadStatus(_Wire):
    upload_id: str
    part_size: int | None = Field(ge=1)
    part_count: int | None = Field(ge=1)
    parts: list[StoredPart] = Field(description="The parts storage already holds.")

    @classmethod
    def of(cls, state: uses.UploadState) -> UploadStatus:
        return cls(
            upload_id=state.upload_id,
            part_size=state.part_size,
            part_count=state.part_count,
            parts=[_stored(part) for part in state.parts],
        )


def _stored(part: ports.StoredPart) -> StoredPart:
    return StoredPart(part_number=part.part_number, etag=part.etag, size=part.size)


class Health(_Wire):
    status: Literal["ok"] = "ok"


class WebhookEvent(_Wire):
    """The body of every webhook POST."""

    type: Literal["timelapse.complete", "timelapse.failed", "timelapse.cancelled"] = Field(
        description="Which terminal state was reached."
    )
    timelapse: Timelapse


class WebhookSecret(_Wire):
    secret: str = Field(
        description="`whsec_` and the base64 of 32 random bytes, as Standard Webhooks libraries "
        "take it.",
        pattern="^whsec_[A-Za-z0-9+/]+={0,2}$",
    )


# --- Uppy (@uppy/aws-s3) ----------------------------------------------------------------------

UPPY_KEY = inputs.UPPY_KEY


class UppySignedRequest(_Wire):
    """Uppy 6's `signRequest` answer."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)

    url: Url = Field(description="Presigned URL for exactly the request asked for.")
    key: str = Field(description=UPPY_KEY)
    timelapse_id: str
    headers: dict[str, str] | None = Field(
        default=None, description="Send these headers (Uppy 6.3+ does)."
    )
    expires_at: Timestamp = Field(description="When the URL expires.")

    @classmethod
    def of(cls, signed: uppy_uses.SignedRequest, key: str) -> UppySignedRequest:
        headers = None if signed.content_type is None else {"Content-Type": signed.content_type}
        return cls(
            url=signed.url,
            key=key,
            timelapse_id=signed.timelapse.id,
            headers=headers,
            expires_at=iso(signed.expires_at) or "",
        )

    def body(self) -> Body:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class CompanionMultipart(_Wire):
    key: str = Field(description=UPPY_KEY)
    upload_id: str
    bucket: str
    timelapse_id: str


class CompanionSignedPart(_Wire):
    url: Url = Field(description="Presigned PUT for the part.")
    expires: int = Field(description="Seconds.")


class CompanionPart(BaseModel):
    model_config = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

    PartNumber: int = Field(ge=1)
    ETag: str = Field(min_length=1)
    Size: int = Field(ge=0)


class CompanionParts(RootModel[list[CompanionPart]]):
    """The parts storage holds, in S3's spelling."""


class CompanionCompleted(_Wire):
    location: Url = Field(description="A presigned GET of the stored original.")
    key: str
    bucket: str


class CompanionParams(_Wire):
    method: Literal["PUT"] = "PUT"
    url: Url = Field(description="Presigned PUT signed for this key, content type and length.")
    fields: dict[str, str] = Field(description="Always empty (no POST form).")
    headers: dict[str, str] = Field(description="Send these headers with the PUT.")
    key: str = Field(description=UPPY_KEY)
    timelapse_id: str


class Empty(_Wire):
    """`{}`."""


# --- the blueprints' side -----------------------------------------------------------------------

# Every answer model, for the OpenAPI document's components (named by their titles).
MODELS: tuple[type[BaseModel], ...] = (
    Error,
    SourceInfo,
    OutputInfo,
    WebhookEvent,
    Timelapse,
    TimelapseWithUrls,
    TimelapseEnvelope,
    TimelapseList,
    PartUrls,
    CreatedTimelapse,
    UploadStatus,
    Health,
    WebhookSecret,
    UppySignedRequest,
    CompanionMultipart,
    CompanionSignedPart,
    CompanionParts,
    CompanionCompleted,
    CompanionParams,
    Empty,
)


def json_schemas() -> dict[str, Any]:
    """The answer models' JSON Schemas, by name, referring to each other in #/components."""
    _, schemas = models_json_schema(
        [(model, "serialization") for model in MODELS], ref_template=REF
    )
    defs: dict[str, Any] = schemas["$defs"]
    return defs


def error(code: str, message: str) -> Body:
    return Error(error=ErrorDetail(code=code, message=message)).body()


def error_info(error: domain.ErrorInfo) -> Body:
    return ErrorInfo.of(error).body()


def timelapse(record: domain.Timelapse) -> Body:
    """The timelapse resource (API.md); the owner and the lease stay internal."""
    return Timelapse.of(record).body()


def envelope(record: domain.Timelapse) -> Body:
    return TimelapseEnvelope(timelapse=Timelapse.of(record)).body()


def with_urls(view: uses.TimelapseView) -> Body:
    return TimelapseWithUrls.of_view(view).body()


def page(found: uses.Page) -> Body:
    items = [Timelapse.of(item) for item in found.items]
    return TimelapseList(items=items, next_cursor=found.next_cursor).body()


def part_urls(signed: uses.SignedParts) -> Body:
    return PartUrls.of(signed).body()


def created(result: uses.Created) -> Body:
    return CreatedTimelapse.of(result).body()


def upload_state(state: uses.UploadState) -> Body:
    return UploadStatus.of(state).body()


def health() -> Body:
    return Health().body()


def webhook_secret(secret: str) -> Body:
    return WebhookSecret(secret=secret).body()


def uppy_signed(signed: uppy_uses.SignedRequest, key: str) -> Body:
    return UppySignedRequest.of(signed, key).body()


def companion_multipart(opened: uppy_uses.OpenedUpload) -> Body:
    return CompanionMultipart(
        key=opened.timelapse.original_video_key,
        upload_id=opened.upload_id,
        bucket=opened.bucket,
        timelapse_id=opened.timelapse.id,
    ).body()


def companion_signed_part(url: str, seconds: int) -> Body:
    return CompanionSignedPart(url=url, expires=seconds).body()


def companion_parts(parts: list[ports.StoredPart]) -> list[Body]:
    found = [CompanionPart(PartNumber=p.part_number, ETag=p.etag, Size=p.size) for p in parts]
    listed: list[Body] = CompanionParts(found).model_dump(mode="json")
    return listed


def companion_completed(done: uppy_uses.CompletedUpload) -> Body:
    return CompanionCompleted(location=done.location, key=done.key, bucket=done.bucket).body()


def companion_params(signed: uppy_uses.SignedRequest) -> Body:
    return CompanionParams(
        url=signed.url,
        fields={},
        headers={"Content-Type": signed.content_type or ""},
        key=signed.timelapse.original_video_key,
        timelapse_id=signed.timelapse.id,
    ).body()


def empty() -> Body:
    return Empty().body()
