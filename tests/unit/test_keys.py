"""Object keys: where a timelapse's objects live, and which event keys name an original upload."""

from __future__ import annotations

import re
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.keys import (
    VIDEO_EXTENSIONS,
    extension_for,
    new_timelapse_id,
    original_key,
    poster_key,
    timelapse_id_from_event_key,
    timelapse_id_from_original_key,
    timelapse_key,
)

ID = "0193f0c2-1234-4abc-8def-0123456789ab"


def test_new_ids_are_fresh_lowercase_uuid4s() -> None:
    ids = {new_timelapse_id() for _ in range(50)}
    assert len(ids) == 50
    for value in ids:
        assert uuid.UUID(value).version == 4
        assert value == value.lower()


@pytest.mark.parametrize(
    ("content_type", "key"),
    [
        ("video/mp4", f"videos/{ID}.mp4"),
        ("video/quicktime", f"videos/{ID}.mov"),
        ("video/webm", f"videos/{ID}.webm"),
        ("video/x-matroska", f"videos/{ID}.mkv"),
        ("Video/MP4; codecs=avc1", f"videos/{ID}.mp4"),
        ("video/unknown", f"videos/{ID}.bin"),
        ("video/mp2t", f"videos/{ID}.ts"),
    ],
)
def test_original_key_carries_the_extension_of_the_content_type(
    content_type: str, key: str
) -> None:
    assert original_key(ID, content_type) == key


@pytest.mark.parametrize(
    ("content_type", "filename", "key"),
    [
        ("video/mp2t", "00001.MTS", f"videos/{ID}.mts"),
        ("application/octet-stream", "00001.m2ts", f"videos/{ID}.m2ts"),
        ("video/quicktime", "IMG_0001.MOV", f"videos/{ID}.mov"),
        ("video/mp4", "notes.txt", f"videos/{ID}.mp4"),
        ("video/mp4", "../../etc/passwd", f"videos/{ID}.mp4"),
        ("video/x-flv", "clip.mp4.exe", f"videos/{ID}.bin"),
        ("video/webm", "no-extension", f"videos/{ID}.webm"),
    ],
)
def test_original_key_takes_a_video_filename_extension(
    content_type: str, filename: str, key: str
) -> None:
    # A video extension of the filename wins (the camera's); no other part of it reaches the key
    assert original_key(ID, content_type, filename) == key
    assert timelapse_id_from_original_key(key) == ID


def test_output_keys() -> None:
    assert timelapse_key(ID) == f"timelapses/{ID}.mp4"
    assert poster_key(ID) == f"posters/{ID}.jpg"


def test_extension_for_unknown_type_is_none() -> None:
    assert extension_for("image/png") is None
    assert extension_for("video/mp4 ") == "mp4"


@pytest.mark.parametrize("content_type", sorted(VIDEO_EXTENSIONS))
def test_every_original_key_round_trips_to_its_id(content_type: str) -> None:
    # Given the key of an original of any supported type
    key = original_key(ID, content_type)
    # Then both the stored key and the event key name the same record
    assert timelapse_id_from_original_key(key) == ID
    assert timelapse_id_from_event_key(key) == ID


@given(st.uuids(version=4), st.sampled_from(sorted(VIDEO_EXTENSIONS)))
def test_any_new_original_key_round_trips(value: uuid.UUID, content_type: str) -> None:
    timelapse_id = str(value)
    assert timelapse_id_from_event_key(original_key(timelapse_id, content_type)) == timelapse_id


@pytest.mark.parametrize(
    "raw_key",
    [
        # S3 event notifications URL-encode keys
        f"videos%2F{ID}.mp4",
        f"videos/{ID}%2Emov",
        f"videos%2f{ID}.webm",
    ],
)
def test_url_encoded_event_keys_are_decoded(raw_key: str) -> None:
    assert timelapse_id_from_event_key(raw_key) == ID


@pytest.mark.parametrize(
    "raw_key",
    [
        # foreign prefixes: only videos/ triggers processing
        f"timelapses/{ID}.mp4",
        f"posters/{ID}.jpg",
        f"uploads/videos/{ID}.mp4",
        f"Videos/{ID}.mp4",
        f"videos/nested/{ID}.mp4",
        f"/videos/{ID}.mp4",
        # bad ids
        "videos/not-a-uuid.mp4",
        f"videos/{ID.upper()}.mp4",
        f"videos/{ID[:-1]}.mp4",
        f"videos/{ID}0.mp4",
        f"videos/{ID.replace('-', '')}.mp4",
        "videos/0193f0c2-1234-4abc-8def-0123456789zz.mp4",
        # bad extensions
        f"videos/{ID}",
        f"videos/{ID}.",
        f"videos/{ID}.m",
        f"videos/{ID}.mp4.exe",
        f"videos/{ID}.toolong",
        f"videos/{ID}.MP4",
        # a space (S3 encodes it as '+') is not part of any key lapse hands out
        f"videos/{ID}+.mp4",
        f"videos/{ID}.mp4+",
        "",
    ],
)
def test_keys_that_are_not_an_original_upload_give_none(raw_key: str) -> None:
    assert timelapse_id_from_event_key(raw_key) is None


@pytest.mark.parametrize("suffix", ["%0A", "%0a"])
def test_a_trailing_newline_is_not_an_original_key(suffix: str) -> None:
    assert timelapse_id_from_event_key(f"videos/{ID}.mp4{suffix}") is None
    assert timelapse_id_from_original_key(f"videos/{ID}.mp4\n") is None


def test_original_key_lookup_does_not_decode() -> None:
    # The stored key is already plain; an encoded one is not a key lapse wrote
    assert timelapse_id_from_original_key(f"videos%2F{ID}.mp4") is None
    assert re.fullmatch(r"videos/[0-9a-f-]{36}\.mp4", original_key(ID, "video/mp4"))
