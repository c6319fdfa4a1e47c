"""The rules a create must meet, and the command it becomes (pure). Each refusal is a domain error
with a reason. The request models (chalicelib/inputs.py) parse the bodies and run these rules for
what a JSON Schema cannot say."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from chalicelib.domain.keys import VIDEO_FILE_EXTENSIONS, filename_extension
from chalicelib.domain.limits import Limits
from chalicelib.domain.options import RenderOptions
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
# Types that operating systems' tables give a video extension without saying video, and so what a
# browser reading them may send: a video for a file of that extension only. Debian's
# /etc/mime.types and Python's `mimetypes` name .mts `model/vnd.mts`. (The tables' other names for
# lapse's extensions are video/*, or text/* and audio/*, which API.md refuses: .ts as
# text/vnd.trolltech.linguist, .3gp as audio/3gpp.)
OS_TABLE_TYPES: dict[str, frozenset[str]] = {"model/vnd.mts": frozenset({"mts"})}
_VIDEO_TYPE = re.compile(r"video/[a-z0-9][a-z0-9!#$&^_.+-]*")
# A year of recording: far above any source lapse renders, far below what DynamoDB can store.
MAX_DURATION_MINUTES = 366 * 24 * 60


@dataclass(frozen=True)
class CreateTimelapse:
    """The create use case's command: what to record, as the caller asked it."""

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


def project_id(value: str) -> str:
    if not value or len(value) > MAX_PROJECT_ID or any(c in "#/\\" or _control(c) for c in value):
        raise ValidationError(
            f"projectId must be 1–{MAX_PROJECT_ID} characters without '#', '/', '\\' or "
            "control characters"
        )
    return value


def content_type(value: str, filename: str | None = None) -> str:
    """The declared type, normalised; advisory: the bytes decide once uploaded.

    Any `video/*` passes, and an operating system's name for a video extension
    (`OS_TABLE_TYPES`) with that extension: both are kept as declared, since the upload is signed
    for its type and a client such as Uppy 6 sends the file's own. A type that says nothing
    (`application/octet-stream`, `""`, what browsers send for .mts files) passes with a video
    filename extension and is stored as `application/octet-stream`. Everything else is clearly
    not a video: 415.
    """
    normalized = value.split(";", maxsplit=1)[0].strip().lower()
    if _VIDEO_TYPE.fullmatch(normalized):
        return normalized
    if normalized in OS_TABLE_TYPES:
        extensions = OS_TABLE_TYPES[normalized]
        if filename_extension(filename) not in extensions:
            named = " or ".join(f".{ext}" for ext in sorted(extensions))
            raise UnsupportedMediaError(
                f"contentType {value!r} is a video type only for a filename ending in {named}"
            )
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


def size_bytes(value: int, limits: Limits) -> int:
    if value <= 0:
        raise ValidationError("sizeBytes must be at least 1 byte")
    if value > limits.max_upload_bytes:
        raise TooLargeError(
            f"sizeBytes {value} is over the maximum upload size of {limits.max_upload_bytes} bytes"
        )
    return value


def callback_url(value: str | None, policy: CallbackPolicy) -> str | None:
    """Deployed: https to public addresses only; locally loopback too (the policy it is given)."""
    if value is None:
        return None
    return validate_callback_url(value, policy)


def target_seconds(value: float | None, limits: Limits) -> float:
    if value is None:
        return limits.default_target_seconds
    if not limits.min_target_seconds <= value <= limits.max_target_seconds:
        raise ValidationError(
            f"targetSeconds must be between {limits.min_target_seconds:g} and "
            f"{limits.max_target_seconds:g}"
        )
    return value
