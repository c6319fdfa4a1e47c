"""Parsing and validating request bodies (pure). Each refusal is a domain error with a reason."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from chalicelib.domain.keys import VIDEO_FILE_EXTENSIONS, filename_extension
from chalicelib.domain.limits import Limits
from chalicelib.domain.options import RenderOptions, parse_options, parse_speed
from chalicelib.domain.timelapse import Status
from chalicelib.domain.webhooks import CallbackPolicy, validate_callback_url
from chalicelib.errors import TooLargeError, UnsupportedMediaError, ValidationError

MAX_PROJECT_ID = 128
MAX_FILENAME = 255
MAX_URL = 2048
MAX_PARTS_PER_REQUEST = 100
MAX_CONTENT_TYPE = 100
OCTET_STREAM = "application/octet-stream"
# Types that say nothing about the bytes; the filename's extension tells whether it is a video.
UNLABELLED_TYPES = frozenset({"", OCTET_STREAM, "binary/octet-stream"})
_VIDEO_TYPE = re.compile(r"video/[a-z0-9][a-z0-9!#$&^_.+-]*")
# A year of recording: far above any source lapse renders, far below what DynamoDB can store.
MAX_DURATION_MINUTES = 366 * 24 * 60


@dataclass(frozen=True)
class CreateRequest:
    project_id: str
    content_type: str
    size_bytes: int | None
    filename: str | None
    duration_minutes: float | None
    target_seconds: float | None  # None when `speed` sets the length
    process: bool
    callback_url: str | None
    speed: float | None = None
    options: RenderOptions = field(default_factory=RenderOptions)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationError("the body must be a JSON object")
    return body


def _string(body: dict[str, Any], name: str, *, max_length: int, required: bool) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise ValidationError(f"{name} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} must be a non-empty string")
    if len(value) > max_length:
        raise ValidationError(f"{name} must be at most {max_length} characters")
    return value


def _content_type_field(body: dict[str, Any]) -> str:
    """Required, but may be empty: browsers give `""` for files they cannot name (.mts)."""
    value = body.get("contentType")
    if value is None:
        raise ValidationError("contentType is required")
    if not isinstance(value, str):
        raise ValidationError("contentType must be a string")
    if len(value) > MAX_CONTENT_TYPE:
        raise ValidationError(f"contentType must be at most {MAX_CONTENT_TYPE} characters")
    return value


def _number(body: dict[str, Any], name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{name} must be a number")
    try:
        number = float(value)  # an int of 400 digits overflows here
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValidationError(f"{name} must be a finite number of ordinary size")
    return number


def _control(char: str) -> bool:
    """Tabs, line breaks and other unprintable characters; a plain space is fine."""
    return char != " " and (char.isspace() or not char.isprintable())


def safe_filename(value: str | None) -> str | None:
    """A name to offer for the download: printable, no folders (it lands in a header)."""
    if value is None:
        return None
    if any(c in "/\\" or _control(c) for c in value) or value.strip() in {".", ".."}:
        raise ValidationError(
            "filename must be printable, without '/', '\\', line breaks or control characters"
        )
    return value


def duration_minutes(value: float | None) -> float | None:
    if value is not None and not 0 <= value <= MAX_DURATION_MINUTES:
        raise ValidationError(
            f"durationMinutes must not be negative, nor more than {MAX_DURATION_MINUTES}"
        )
    return value


def project_id(value: str) -> str:
    if not value or len(value) > MAX_PROJECT_ID or any(c in "#/\\" or _control(c) for c in value):
        raise ValidationError(
            f"projectId must be 1–{MAX_PROJECT_ID} characters without '#', '/', '\\' or "
            "control characters"
        )
    return value


def content_type(value: str, filename: str | None = None) -> str:
    """The declared type, normalised; advisory: the bytes decide once uploaded.

    Any `video/*` passes. A type that says nothing (`application/octet-stream`, `""`, what
    browsers send for .mts files) passes with a video filename extension and is stored as
    `application/octet-stream`. Everything else is clearly not a video: 415.
    """
    normalized = value.split(";", maxsplit=1)[0].strip().lower()
    if _VIDEO_TYPE.fullmatch(normalized):
        return normalized
    if normalized not in UNLABELLED_TYPES:
        raise UnsupportedMediaError(f"contentType {value!r} is not a video type")
    if filename_extension(filename) is None:
        known = ", ".join(f".{ext}" for ext in sorted(VIDEO_FILE_EXTENSIONS))
        raise UnsupportedMediaError(
            f"contentType {value!r} does not say the file is a video; send a video/* type or a "
            f"filename ending in one of {known}"
        )
    return OCTET_STREAM


def size_bytes(value: Any, limits: Limits) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError("sizeBytes must be an integer number of bytes")
    if value <= 0:
        raise ValidationError("sizeBytes must be at least 1 byte")
    if value > limits.max_upload_bytes:
        raise TooLargeError(
            f"sizeBytes {value} is over the maximum upload size of {limits.max_upload_bytes} bytes"
        )
    return value


def target_seconds(value: float | None, limits: Limits) -> float:
    if value is None:
        return limits.default_target_seconds
    if not limits.min_target_seconds <= value <= limits.max_target_seconds:
        raise ValidationError(
            f"targetSeconds must be between {limits.min_target_seconds:g} and "
            f"{limits.max_target_seconds:g}"
        )
    return value


def pace(body: dict[str, Any], limits: Limits) -> tuple[float | None, float | None]:
    """(targetSeconds, speed): a length or a speed-up factor, not both."""
    speed = parse_speed(body.get("speed"))
    if speed is None:
        return target_seconds(_number(body, "targetSeconds"), limits), None
    if body.get("targetSeconds") is not None:
        raise ValidationError(
            "give targetSeconds (a length) or speed (a speed-up factor), not both"
        )
    return None, speed


def callback_url(value: str | None, policy: CallbackPolicy) -> str | None:
    """Deployed: https to public addresses only; locally loopback too (the policy it is given)."""
    if value is None:
        return None
    return validate_callback_url(value, policy)


def parse_create(
    body: Any, limits: Limits, callbacks: CallbackPolicy, *, size_required: bool = True
) -> CreateRequest:
    """`size_required=False` for Uppy's routes: Uppy has no size to pass (API.md)."""
    body = _object(body)
    project = project_id(_string(body, "projectId", max_length=MAX_PROJECT_ID, required=True) or "")
    ctype = _content_type_field(body)
    filename = safe_filename(_string(body, "filename", max_length=MAX_FILENAME, required=False))
    duration = duration_minutes(_number(body, "durationMinutes"))
    process = body.get("process", True)
    if not isinstance(process, bool):
        raise ValidationError("process must be true or false")
    declared = "sizeBytes" in body
    if not declared and size_required:
        raise ValidationError("sizeBytes is required")
    length, speed = pace(body, limits)
    return CreateRequest(
        project_id=project,
        content_type=content_type(ctype, filename),
        size_bytes=size_bytes(body["sizeBytes"], limits) if declared else None,
        filename=filename,
        duration_minutes=duration,
        target_seconds=length,
        process=process,
        callback_url=callback_url(
            _string(body, "callbackUrl", max_length=MAX_URL, required=False), callbacks
        ),
        speed=speed,
        options=parse_options(body),
    )


def parse_part_numbers(body: Any, part_count: int) -> list[int]:
    body = _object(body)
    numbers = body.get("partNumbers")
    if not isinstance(numbers, list) or not numbers:
        raise ValidationError("partNumbers must be a non-empty list of integers")
    if len(numbers) > MAX_PARTS_PER_REQUEST:
        raise ValidationError(f"ask for at most {MAX_PARTS_PER_REQUEST} part URLs at a time")
    for number in numbers:
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= part_count:
            raise ValidationError(f"part numbers must be integers from 1 to {part_count}")
    return sorted(set(numbers))


def parse_completed_parts(body: Any, part_count: int) -> list[tuple[int, str]] | None:
    """The client's list of (partNumber, etag), or None to let the server list the parts."""
    if body is None:
        return None
    body = _object(body)
    parts = body.get("parts")
    if parts is None:
        return None
    if not isinstance(parts, list) or not parts:
        raise ValidationError("parts must be a non-empty list of {partNumber, etag}")
    result: dict[int, str] = {}
    for part in parts:
        if not isinstance(part, dict):
            raise ValidationError("each part must be an object {partNumber, etag}")
        number = part.get("partNumber", part.get("PartNumber"))
        etag = part.get("etag", part.get("ETag"))
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= part_count:
            raise ValidationError(f"partNumber must be an integer from 1 to {part_count}")
        if not isinstance(etag, str) or not etag:
            raise ValidationError(f"part {number} has no etag")
        if number in result:
            raise ValidationError(f"part {number} is listed twice")
        result[number] = etag
    return sorted(result.items())


def parse_limit(raw: str | None, *, default: int = 50, maximum: int = 100) -> int:
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ValidationError("limit must be an integer") from exc
    if not 1 <= value <= maximum:
        raise ValidationError(f"limit must be between 1 and {maximum}")
    return value


def parse_status(raw: str | None) -> Status | None:
    if raw is None:
        return None
    try:
        return Status(raw)
    except ValueError as exc:
        allowed = ", ".join(s.value for s in Status)
        raise ValidationError(f"status must be one of {allowed}") from exc
