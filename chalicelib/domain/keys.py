"""Object keys: where each object of a timelapse lives, and which keys belong to which record."""

from __future__ import annotations

import re
import uuid
from urllib.parse import unquote_plus

VIDEOS_PREFIX = "videos/"
TIMELAPSES_PREFIX = "timelapses/"
POSTERS_PREFIX = "posters/"
# The parts of a fanned-out render; the bucket's lifecycle rule removes what is left after a day.
SEGMENTS_PREFIX = "segments/"

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
    "video/mp2t": "ts",
    "video/vnd.dlna.mpeg-tts": "m2ts",
}
# Filename extensions of the containers lapse reads (AVCHD camcorders write .mts/.m2ts). Used when
# the declared type says nothing (`application/octet-stream`, `""`) and to keep the stored name.
VIDEO_FILE_EXTENSIONS = frozenset(
    {"mp4", "m4v", "mov", "qt", "3gp", "3g2", "mkv", "webm", "avi", "mts", "m2ts", "m2t", "ts"}
)
UNKNOWN_EXTENSION = "bin"

_ID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_ORIGINAL_KEY = re.compile(rf"videos/(?P<id>{_ID})\.(?P<ext>[a-z0-9]{{2,5}})")


_TIMELAPSE_ID = re.compile(_ID)


def is_timelapse_id(value: object) -> bool:
    return isinstance(value, str) and _TIMELAPSE_ID.fullmatch(value) is not None


def new_timelapse_id() -> str:
    return str(uuid.uuid4())


def extension_for(content_type: str) -> str | None:
    return VIDEO_EXTENSIONS.get(content_type.split(";", maxsplit=1)[0].strip().lower())


def type_for_extension(extension: str | None) -> str | None:
    """The video type browsers give a file with this extension (.mp4 → video/mp4), or None."""
    aliases = {"qt": "mov", "3g2": "3gp", "mts": "m2ts", "m2t": "m2ts"}
    wanted = aliases.get(extension or "", extension)
    return next((kind for kind, ext in VIDEO_EXTENSIONS.items() if ext == wanted), None)


def filename_extension(filename: str | None) -> str | None:
    """The lower-cased extension of `filename` when it names a video container lapse reads."""
    if not filename or "." not in filename:
        return None
    ext = filename.rsplit(".", maxsplit=1)[1].strip().lower()
    return ext if ext in VIDEO_FILE_EXTENSIONS else None


def original_extension(content_type: str, filename: str | None = None) -> str:
    """The extension the original is stored under: the filename's, else the type's, else bin."""
    return filename_extension(filename) or extension_for(content_type) or UNKNOWN_EXTENSION


def original_key(timelapse_id: str, content_type: str, filename: str | None = None) -> str:
    return f"{VIDEOS_PREFIX}{timelapse_id}.{original_extension(content_type, filename)}"


def timelapse_key(timelapse_id: str) -> str:
    return f"{TIMELAPSES_PREFIX}{timelapse_id}.mp4"


def poster_key(timelapse_id: str) -> str:
    return f"{POSTERS_PREFIX}{timelapse_id}.jpg"


def segments_prefix(timelapse_id: str, token: str | None = None) -> str:
    """Where a timelapse's segments lie (those of one fan-out, when `token` names it)."""
    return f"{SEGMENTS_PREFIX}{timelapse_id}/" + (f"{token}/" if token else "")


def segment_key(timelapse_id: str, token: str, part: int, attempt: str) -> str:
    """One part's segment, as one attempt rendered it (a duplicate writes beside, never over)."""
    return f"{segments_prefix(timelapse_id, token)}{part:04d}-{attempt}.mp4"


def timelapse_id_from_event_key(raw_key: str) -> str | None:
    """The id in an S3 event's key, or None for keys that are not an original upload.

    S3 event notifications URL-encode keys (spaces as '+'), so decode before matching.
    """
    match = _ORIGINAL_KEY.fullmatch(unquote_plus(raw_key))
    return match.group("id") if match else None


def timelapse_id_from_original_key(key: str) -> str | None:
    match = _ORIGINAL_KEY.fullmatch(key)
    return match.group("id") if match else None
