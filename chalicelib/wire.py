"""What the API answers: the use cases' domain values as JSON bodies (camelCase, ISO times), in
one place. The blueprints (api.py, uppy.py) and the webhook payload use these; the use cases
never build a wire body, and a stored item is not one either (adapters/records.py)."""

from __future__ import annotations

from typing import Any

from chalicelib.domain.timelapse import ErrorInfo, Timelapse, iso
from chalicelib.services.ports import StoredPart
from chalicelib.services.timelapses import (
    Created,
    MultipartUpload,
    Page,
    PutUpload,
    SignedParts,
    TimelapseView,
    UploadState,
)

Body = dict[str, Any]


def error_info(error: ErrorInfo) -> Body:
    return {"code": error.code, "message": error.message}


def timelapse(record: Timelapse) -> Body:
    """The timelapse resource (API.md); the owner and the lease stay internal."""
    return {
        "id": record.id,
        "projectId": record.project_id,
        "status": record.status.value,
        "stage": record.stage.value if record.stage else None,
        "progress": record.progress,
        "videoKey": record.video_key,
        "originalVideoKey": record.original_video_key,
        "processedVideoKey": record.processed_video_key,
        "posterKey": record.poster_key,
        "filename": record.filename,
        "contentType": record.content_type,
        "sizeBytes": record.size_bytes,
        "durationMinutes": record.duration_minutes,
        "targetSeconds": record.target_seconds,
        "process": record.process,
        "callbackUrl": record.callback_url,
        "source": record.source,
        "output": record.output,
        "error": error_info(record.error) if record.error else None,
        "attempts": record.attempts,
        "createdAt": iso(record.created_at),
        "updatedAt": iso(record.updated_at),
        "startedAt": iso(record.started_at),
        "completedAt": iso(record.completed_at),
    }


def envelope(record: Timelapse) -> Body:
    return {"timelapse": timelapse(record)}


def with_urls(view: TimelapseView) -> Body:
    urls = view.urls
    return {
        **timelapse(view.timelapse),
        "urls": {"video": urls.video, "original": urls.original, "poster": urls.poster},
    }


def page(found: Page) -> Body:
    return {"items": [timelapse(item) for item in found.items], "nextCursor": found.next_cursor}


def part_urls(signed: SignedParts) -> Body:
    return {
        "parts": [{"partNumber": part.number, "url": part.url} for part in signed.parts],
        "expiresAt": iso(signed.expires_at),
    }


def upload(instructions: PutUpload | MultipartUpload) -> Body:
    if isinstance(instructions, PutUpload):
        return {
            "method": "PUT",
            "url": instructions.url,
            "headers": {"Content-Type": instructions.content_type},
            "expiresAt": iso(instructions.expires_at),
        }
    return {
        "method": "multipart",
        "uploadId": instructions.upload_id,
        "partSize": instructions.part_size,
        "partCount": instructions.part_count,
        **part_urls(instructions.first_parts),
    }


def created(result: Created) -> Body:
    return {"timelapse": timelapse(result.timelapse), "upload": upload(result.upload)}


def stored_part(part: StoredPart) -> Body:
    return {"partNumber": part.part_number, "etag": part.etag, "size": part.size}


def upload_state(state: UploadState) -> Body:
    return {
        "uploadId": state.upload_id,
        "partSize": state.part_size,
        "partCount": state.part_count,
        "parts": [stored_part(part) for part in state.parts],
    }
