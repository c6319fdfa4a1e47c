"""Object keys: where each object of a timelapse lives, and which keys belong to which record."""

from __future__ import annotations

import re
import uuid
from urllib.parse import unquote_plus

VIDEOS_PREFIX = "videos/"
TIMELAPSES_PREFIX = "timelapses/"
POSTERS_PREFIX = "posters/"

# Content types a timelapse can be made from, and the extension the original is stored under.
VIDEO_EXTENSIONS: dict[str, str] = {
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
    "video/x-matroska": "mkv",
    "video/x-msvideo": "avi",
    "video/avi": "avi",
    "video/x-m4v": "m4v",
    "video/3gpp": "3gp",
}

_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ORIGINAL_KEY = re.compile(rf"videos/(?P<id>{_ID})\.(?P<ext>[a-z0-9]{{2,5}})")


_TIMELAPSE_ID = re.compile(_ID)


def is_timelapse_id(value: object) -> bool:
    return isinstance(value, str) and _TIMELAPSE_ID.fullmatch(value) is not None


def new_timelapse_id() -> str:
    return str(uuid.uuid4())


def extension_for(content_type: str) -> str | None:
    return VIDEO_EXTENSIONS.get(content_type.split(";", maxsplit=1)[0].strip().lower())


def original_key(timelapse_id: str, content_type: str) -> str:
    ext = extension_for(content_type) or "bin"
    return f"{VIDEOS_PREFIX}{timelapse_id}.{ext}"


def timelapse_key(timelapse_id: str) -> str:
    return f"{TIMELAPSES_PREFIX}{timelapse_id}.mp4"


def poster_key(timelapse_id: str) -> str:
    return f"{POSTERS_PREFIX}{timelapse_id}.jpg"


def timelapse_id_from_event_key(raw_key: str) -> str | None:
    """The id in an S3 event's key, or None for keys that are not an original upload.

    S3 event notifications URL-encode keys (spaces as '+'), so decode before matching.
    """
    match = _ORIGINAL_KEY.fullmatch(unquote_plus(raw_key))
    return match.group("id") if match else None


def timelapse_id_from_original_key(key: str) -> str | None:
    match = _ORIGINAL_KEY.fullmatch(key)
    return match.group("id") if match else None
