"""The timelapse record, its statuses and the allowed transitions (DESIGN.md, "state machine").

Pure: the repository enforces each transition as one conditional write built from these rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


class Stage(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    QUEUED = "queued"
    PROBING = "probing"
    RENDERING = "rendering"
    UPLOADING = "uploading"


TERMINAL = frozenset({Status.COMPLETE, Status.FAILED, Status.CANCELLED})
CANCELLABLE = frozenset({Status.PENDING, Status.PROCESSING})
# A worker's stages only move forward within one attempt.
STAGE_ORDER = (Stage.PROBING, Stage.RENDERING, Stage.UPLOADING)


class UploadMethod(StrEnum):
    PUT = "PUT"
    MULTIPART = "multipart"


@dataclass(frozen=True)
class UploadInfo:
    method: UploadMethod
    upload_id: str | None = None
    part_size: int | None = None
    part_count: int | None = None


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    message: str

    def as_api(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Timelapse:
    id: str
    owner_id: str
    project_id: str
    status: Status
    stage: Stage | None
    content_type: str
    size_bytes: int
    original_video_key: str
    created_at: datetime
    updated_at: datetime
    upload: UploadInfo
    process: bool = True
    progress: int = 0
    filename: str | None = None
    duration_minutes: float | None = None
    target_seconds: float = 30.0
    callback_url: str | None = None
    processed_video_key: str | None = None
    poster_key: str | None = None
    source: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    uploaded_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def video_key(self) -> str:
        """What to play now: the original until complete, then the timelapse."""
        if self.status is Status.COMPLETE and self.processed_video_key:
            return self.processed_video_key
        return self.original_video_key

    @property
    def is_multipart(self) -> bool:
        return self.upload.method is UploadMethod.MULTIPART

    def as_api(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "projectId": self.project_id,
            "status": self.status.value,
            "stage": self.stage.value if self.stage else None,
            "progress": self.progress,
            "videoKey": self.video_key,
            "originalVideoKey": self.original_video_key,
            "processedVideoKey": self.processed_video_key,
            "posterKey": self.poster_key,
            "filename": self.filename,
            "contentType": self.content_type,
            "sizeBytes": self.size_bytes,
            "durationMinutes": self.duration_minutes,
            "targetSeconds": self.target_seconds,
            "process": self.process,
            "callbackUrl": self.callback_url,
            "source": self.source,
            "output": self.output,
            "error": self.error.as_api() if self.error else None,
            "attempts": self.attempts,
            "createdAt": iso(self.created_at),
            "updatedAt": iso(self.updated_at),
            "startedAt": iso(self.started_at),
            "completedAt": iso(self.completed_at),
        }


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)


def can_cancel(status: Status) -> bool:
    return status in CANCELLABLE


def can_requeue(timelapse: Timelapse) -> bool:
    """`POST /process`: a failed or cancelled one, or an uploaded one created with process=false."""
    if timelapse.status in {Status.FAILED, Status.CANCELLED}:
        return True
    return timelapse.status is Status.PENDING and timelapse.stage is None


def stage_advances(current: Stage | None, new: Stage) -> bool:
    """Within one attempt a worker's stage only moves forward (probing → rendering → uploading)."""
    if current not in STAGE_ORDER:
        return new is Stage.PROBING
    return STAGE_ORDER.index(new) >= STAGE_ORDER.index(current)
