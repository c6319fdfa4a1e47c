"""Request parsing (the models of chalicelib/inputs.py): every refusal is a domain error of the
right type (→ 400, 413 or 415) with today's message."""

from __future__ import annotations

import math
from typing import Any

import pytest

from chalicelib.domain.limits import GiB, Limits
from chalicelib.domain.requests import project_id
from chalicelib.domain.timelapse import Status
from chalicelib.domain.webhooks import CallbackPolicy
from chalicelib.errors import (
    LapseError,
    TooLargeError,
    UnsupportedMediaError,
    ValidationError,
)
from chalicelib.inputs import UppySignRequest, list_query, parse
from chalicelib.inputs import completed_parts as parse_completed_parts
from chalicelib.inputs import create_command as parse_create
from chalicelib.inputs import part_numbers as parse_part_numbers

LIMITS = Limits()


def parse_limit(raw: str | None) -> int:
    return list_query({} if raw is None else {"limit": raw}).limit


def parse_status(raw: str | None) -> Status | None:
    return list_query({} if raw is None else {"status": raw}).status


DEPLOYED = CallbackPolicy()  # public https callbacks only
VALID: dict[str, Any] = {"projectId": "p-42", "contentType": "video/mp4", "sizeBytes": 1024}


def body(**changes: Any) -> dict[str, Any]:
    """A valid create body with some fields changed; a value of ... removes the field."""
    merged = {**VALID, **changes}
    return {k: v for k, v in merged.items() if v is not ...}


# --- parse_create: what is accepted ----------------------------------------------------------


def test_minimal_body_gets_the_defaults() -> None:
    request = parse_create(body(), LIMITS, DEPLOYED)
    assert request.project_id == "p-42"
    assert request.content_type == "video/mp4"
    assert request.size_bytes == 1024
    assert request.target_seconds == 30.0
    assert request.process is True
    assert request.filename is None
    assert request.duration_minutes is None
    assert request.callback_url is None


def test_full_body_is_read_as_given() -> None:
    request = parse_create(
        body(
            contentType="Video/QuickTime; codecs=hvc1",
            sizeBytes=LIMITS.max_upload_bytes,
            filename="desk session.mov",
            durationMinutes=95,
            targetSeconds=600,
            process=False,
            callbackUrl="https://example.com/hook",
        ),
        LIMITS,
        DEPLOYED,
    )
    assert request.content_type == "video/quicktime"
    assert request.size_bytes == 50 * GiB
    assert request.filename == "desk session.mov"
    assert request.duration_minutes == 95.0
    assert request.target_seconds == 600.0
    assert request.process is False
    assert request.callback_url == "https://example.com/hook"


@pytest.mark.parametrize(
    ("declared", "filename", "stored"),
    [
        ("video/mp2t", "00001.MTS", "video/mp2t"),
        ("video/mp2t", None, "video/mp2t"),
        ("video/x-flv", None, "video/x-flv"),
        ("video/webm;codecs=vp9", "recording.webm", "video/webm"),
        ("application/octet-stream", "00001.m2ts", "application/octet-stream"),
        ("", "clip.MTS", "application/octet-stream"),
        ("binary/octet-stream", "camera.mov", "application/octet-stream"),
        ("  ", "movie.mkv", "application/octet-stream"),
        # .mts as Debian's /etc/mime.types and Python's `mimetypes` name it (Firefox on Linux)
        ("model/vnd.mts", "00001.MTS", "model/vnd.mts"),
        ("Model/Vnd.MTS", "clip.mts", "model/vnd.mts"),
    ],
)
def test_content_type_is_advisory(declared: str, filename: str | None, stored: str) -> None:
    # Given what browsers and cameras label video files with (Chrome sends "" for .mts)
    request = parse_create(body(contentType=declared, filename=filename or ...), LIMITS, DEPLOYED)
    # Then the create is accepted; the bytes decide once uploaded
    assert request.content_type == stored
    assert request.filename == filename


def test_bounds_of_target_seconds_are_inclusive() -> None:
    assert parse_create(body(targetSeconds=1), LIMITS, DEPLOYED).target_seconds == 1.0
    assert parse_create(body(targetSeconds=600.0), LIMITS, DEPLOYED).target_seconds == 600.0


def test_one_byte_is_enough() -> None:
    assert parse_create(body(sizeBytes=1), LIMITS, DEPLOYED).size_bytes == 1


# --- parse_create: every refusal with its type --------------------------------------------------

REFUSALS: list[tuple[str, Any, type[LapseError], str]] = [
    # the body itself
    ("list body", ["projectId"], ValidationError, "JSON object"),
    ("null body", None, ValidationError, "JSON object"),
    ("string body", "{}", ValidationError, "JSON object"),
    # projectId
    ("projectId missing", body(projectId=...), ValidationError, "projectId is required"),
    ("projectId null", body(projectId=None), ValidationError, "projectId is required"),
    ("projectId number", body(projectId=42), ValidationError, "projectId must be"),
    ("projectId empty", body(projectId=""), ValidationError, "projectId must be"),
    ("projectId blank", body(projectId="   "), ValidationError, "projectId must be"),
    ("projectId too long", body(projectId="p" * 129), ValidationError, "at most 128"),
    ("projectId with #", body(projectId="a#b"), ValidationError, "projectId"),
    ("projectId with /", body(projectId="a/b"), ValidationError, "projectId"),
    ("projectId with \\", body(projectId="a\\b"), ValidationError, "projectId"),
    ("projectId with newline", body(projectId="a\nb"), ValidationError, "projectId"),
    ("projectId with tab", body(projectId="a\tb"), ValidationError, "projectId"),
    # contentType
    ("contentType missing", body(contentType=...), ValidationError, "contentType is required"),
    ("contentType number", body(contentType=4), ValidationError, "contentType must be"),
    ("contentType too long", body(contentType="video/" + "x" * 95), ValidationError, "at most"),
    ("image", body(contentType="image/png"), UnsupportedMediaError, "not a video"),
    ("audio", body(contentType="audio/mpeg"), UnsupportedMediaError, "not a video"),
    ("text", body(contentType="text/plain"), UnsupportedMediaError, "not a video"),
    ("json", body(contentType="application/json"), UnsupportedMediaError, "not a video"),
    ("playlist", body(contentType="application/x-mpegURL"), UnsupportedMediaError, "not a video"),
    ("video/ alone", body(contentType="video/"), UnsupportedMediaError, "not a video"),
    (
        "image named .mp4",
        body(contentType="image/png", filename="a.mp4"),
        UnsupportedMediaError,
        "not a video",
    ),
    (
        "octet-stream unnamed",
        body(contentType="application/octet-stream"),
        UnsupportedMediaError,
        "filename ending",
    ),
    ("empty unnamed", body(contentType=""), UnsupportedMediaError, "filename ending"),
    (
        "octet-stream .txt",
        body(contentType="application/octet-stream", filename="notes.txt"),
        UnsupportedMediaError,
        ".mts",
    ),
    (
        "empty .m3u8",
        body(contentType="", filename="live.m3u8"),
        UnsupportedMediaError,
        "filename ending",
    ),
    # an operating system's name for .mts is a video type for a .mts file only
    (
        "model/vnd.mts unnamed",
        body(contentType="model/vnd.mts"),
        UnsupportedMediaError,
        "filename ending in .mts",
    ),
    (
        "model/vnd.mts on a model",
        body(contentType="model/vnd.mts", filename="scene.mts.obj"),
        UnsupportedMediaError,
        "filename ending in .mts",
    ),
    (
        "model/vnd.mts on another video name",
        body(contentType="model/vnd.mts", filename="a.mp4"),
        UnsupportedMediaError,
        "filename ending in .mts",
    ),
    (
        "other model",
        body(contentType="model/gltf-binary", filename="a.mts"),
        UnsupportedMediaError,
        "not a video",
    ),
    # text/* and audio/* stay refused (API.md), even where an OS table names a video extension so
    (
        "ts as Qt Linguist",
        body(contentType="text/vnd.trolltech.linguist", filename="a.ts"),
        UnsupportedMediaError,
        "not a video",
    ),
    (
        "3gp as audio",
        body(contentType="audio/3gpp", filename="a.3gp"),
        UnsupportedMediaError,
        "not a video",
    ),
    # sizeBytes
    ("sizeBytes missing", body(sizeBytes=...), ValidationError, "sizeBytes is required"),
    ("sizeBytes null", body(sizeBytes=None), ValidationError, "sizeBytes must be an integer"),
    ("sizeBytes string", body(sizeBytes="1024"), ValidationError, "sizeBytes must be an integer"),
    ("sizeBytes float", body(sizeBytes=1024.0), ValidationError, "sizeBytes must be an integer"),
    ("sizeBytes bool", body(sizeBytes=True), ValidationError, "sizeBytes must be an integer"),
    ("sizeBytes zero", body(sizeBytes=0), ValidationError, "at least 1 byte"),
    ("sizeBytes negative", body(sizeBytes=-5), ValidationError, "at least 1 byte"),
    ("sizeBytes over max", body(sizeBytes=50 * GiB + 1), TooLargeError, "maximum upload size"),
    # durationMinutes
    ("duration string", body(durationMinutes="95"), ValidationError, "durationMinutes"),
    ("duration bool", body(durationMinutes=True), ValidationError, "durationMinutes"),
    ("duration NaN", body(durationMinutes=math.nan), ValidationError, "durationMinutes"),
    ("duration inf", body(durationMinutes=math.inf), ValidationError, "durationMinutes"),
    ("duration negative", body(durationMinutes=-1), ValidationError, "not be negative"),
    ("duration 1e300", body(durationMinutes=1e300), ValidationError, "nor more than"),
    ("duration 400 digits", body(durationMinutes=10**400), ValidationError, "finite number"),
    ("target 400 digits", body(targetSeconds=10**400), ValidationError, "finite number"),
    # targetSeconds
    ("target zero", body(targetSeconds=0), ValidationError, "between 1 and 600"),
    ("target below 1", body(targetSeconds=0.5), ValidationError, "between 1 and 600"),
    ("target over 600", body(targetSeconds=600.5), ValidationError, "between 1 and 600"),
    ("target string", body(targetSeconds="30"), ValidationError, "targetSeconds must be"),
    ("target bool", body(targetSeconds=False), ValidationError, "targetSeconds must be"),
    ("target NaN", body(targetSeconds=math.nan), ValidationError, "targetSeconds must be"),
    # process
    ("process string", body(process="false"), ValidationError, "process must be"),
    ("process number", body(process=0), ValidationError, "process must be"),
    ("process null", body(process=None), ValidationError, "process must be"),
    # filename
    ("filename number", body(filename=7), ValidationError, "filename must be"),
    ("filename blank", body(filename=" "), ValidationError, "filename must be"),
    ("filename too long", body(filename="f" * 256), ValidationError, "at most 255"),
    ("filename CRLF", body(filename="a.mp4\r\nSet-Cookie: x"), ValidationError, "printable"),
    ("filename NUL", body(filename="a\x00.mp4"), ValidationError, "printable"),
    ("filename tab", body(filename="a\t.mp4"), ValidationError, "printable"),
    ("filename bidi override", body(filename="a\u202e4pm.exe"), ValidationError, "printable"),
    ("filename with /", body(filename="../../etc/passwd"), ValidationError, "'/'"),
    ("filename with \\", body(filename="C:\\x.mp4"), ValidationError, "'/'"),
    ("filename dot-dot", body(filename=".."), ValidationError, "printable"),
    # callbackUrl
    ("callback ftp", body(callbackUrl="ftp://example.com/x"), ValidationError, "http(s) URL"),
    ("callback relative", body(callbackUrl="/hook"), ValidationError, "http(s) URL"),
    ("callback javascript", body(callbackUrl="javascript:alert(1)"), ValidationError, "http(s)"),
    ("callback number", body(callbackUrl=1), ValidationError, "callbackUrl must be"),
    ("callback too long", body(callbackUrl="https://a/" + "x" * 2040), ValidationError, "2048"),
]


@pytest.mark.parametrize(
    ("raw", "error", "words"),
    [pytest.param(raw, error, words, id=name) for name, raw, error, words in REFUSALS],
)
def test_parse_create_refusals(raw: Any, error: type[LapseError], words: str) -> None:
    with pytest.raises(LapseError) as caught:
        parse_create(raw, LIMITS, DEPLOYED)
    # exactly the expected type: a 413 must not come out as a 400, nor the other way round
    assert type(caught.value) is error
    assert words in caught.value.message


def test_configured_limits_are_the_ones_enforced() -> None:
    # Given a deployment with a 1 MiB cap and 10–20 s targets
    small = Limits(max_upload_bytes=1024 * 1024, min_target_seconds=10, max_target_seconds=20)
    # Then the cap and the range come from the limits, not from the defaults
    with pytest.raises(TooLargeError, match="1048576"):
        parse_create(body(sizeBytes=1024 * 1024 + 1), small, DEPLOYED)
    with pytest.raises(ValidationError, match="between 10 and 20"):
        parse_create(body(targetSeconds=30), small, DEPLOYED)
    assert parse_create(body(sizeBytes=1024 * 1024), small, DEPLOYED).size_bytes == 1024 * 1024


def test_error_codes_are_stable() -> None:
    assert ValidationError.code == "invalid_request"
    assert TooLargeError.code == "too_large"
    assert UnsupportedMediaError.code == "unsupported_media_type"


def test_project_id_of_a_path() -> None:
    assert project_id("p-42") == "p-42"
    with pytest.raises(ValidationError):
        project_id("")
    with pytest.raises(ValidationError):
        project_id("owner#project")


# --- parse_part_numbers -----------------------------------------------------------------------


def test_part_numbers_are_deduplicated_and_sorted() -> None:
    assert parse_part_numbers({"partNumbers": [3, 1, 3, 2]}, part_count=3) == [1, 2, 3]


def test_at_most_100_part_urls_at_a_time() -> None:
    assert len(parse_part_numbers({"partNumbers": list(range(1, 101))}, 500)) == 100
    with pytest.raises(ValidationError, match="at most 100"):
        parse_part_numbers({"partNumbers": list(range(1, 102))}, 500)


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [1, 2],
        {},
        {"partNumbers": []},
        {"partNumbers": 1},
        {"partNumbers": "1,2"},
        {"partNumbers": [0]},
        {"partNumbers": [4]},
        {"partNumbers": [-1]},
        {"partNumbers": [1.0]},
        {"partNumbers": ["1"]},
        {"partNumbers": [True]},
    ],
)
def test_part_number_refusals(raw: Any) -> None:
    with pytest.raises(ValidationError):
        parse_part_numbers(raw, part_count=3)


# --- parse_completed_parts --------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, {}, {"parts": None}])
def test_completed_parts_may_be_left_to_the_server(raw: Any) -> None:
    assert parse_completed_parts(raw, part_count=2) is None


def test_completed_parts_in_either_spelling_come_back_sorted() -> None:
    raw = {"parts": [{"PartNumber": 2, "ETag": '"b"'}, {"partNumber": 1, "etag": '"a"'}]}
    assert parse_completed_parts(raw, part_count=2) == [(1, '"a"'), (2, '"b"')]


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ([{"partNumber": 1, "etag": "a"}], "JSON object"),
        ({"parts": []}, "non-empty list"),
        ({"parts": {"partNumber": 1}}, "non-empty list"),
        ({"parts": ["a"]}, "each part must be an object"),
        ({"parts": [{"etag": "a"}]}, "partNumber must be"),
        ({"parts": [{"partNumber": 0, "etag": "a"}]}, "partNumber must be"),
        ({"parts": [{"partNumber": 3, "etag": "a"}]}, "partNumber must be"),
        ({"parts": [{"partNumber": "1", "etag": "a"}]}, "partNumber must be"),
        ({"parts": [{"partNumber": True, "etag": "a"}]}, "partNumber must be"),
        ({"parts": [{"partNumber": 1}]}, "part 1 has no etag"),
        ({"parts": [{"partNumber": 1, "etag": ""}]}, "part 1 has no etag"),
        ({"parts": [{"partNumber": 1, "etag": 5}]}, "part 1 has no etag"),
        (
            {"parts": [{"partNumber": 1, "etag": "a"}, {"PartNumber": 1, "ETag": "b"}]},
            "listed twice",
        ),
    ],
)
def test_completed_part_refusals(raw: Any, words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_completed_parts(raw, part_count=2)
    assert words in caught.value.message


# --- list query: limit and status -------------------------------------------------------------


@pytest.mark.parametrize(("raw", "value"), [(None, 50), ("1", 1), ("100", 100), ("7", 7)])
def test_limit_accepted(raw: str | None, value: int) -> None:
    assert parse_limit(raw) == value


@pytest.mark.parametrize("raw", ["0", "101", "-1", "ten", "", "1.5"])
def test_limit_refusals(raw: str) -> None:
    with pytest.raises(ValidationError, match="limit must be"):
        parse_limit(raw)


def test_status_filter() -> None:
    assert parse_status(None) is None
    assert parse_status("complete") is Status.COMPLETE
    with pytest.raises(ValidationError, match="status must be one of pending, processing"):
        parse_status("done")
    with pytest.raises(ValidationError):
        parse_status("COMPLETE")


def test_filenames_in_any_script_are_kept_as_given() -> None:
    for name in ["Büro 08:00.mov", "日本語の録画.mp4", "it's (final) #2.webm"]:
        assert parse_create(body(filename=name), LIMITS, DEPLOYED).filename == name


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"fps": 10**30}, "fps must be one of 24, 25, 30, 50, 60"),
        ({"resolution": ["720p"]}, "resolution must be one of 720p, 1080p, 1440p, 2160p"),
        ({"durationMinutes": 10**400}, "durationMinutes must be a finite number of ordinary size"),
        ({"speed": 10**400}, "speed must be between 2 and 100000"),
    ],
)
def test_unusual_values_are_refused_in_lapses_words(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_create(body(**changes), LIMITS, DEPLOYED)
    assert caught.value.message == words


@pytest.mark.parametrize("part", ["PATCH", "", "1.5", True, 0, 10_001])
def test_uppy_part_numbers_are_refused_in_lapses_words(part: Any) -> None:
    sign = {"method": "PUT", "key": "videos/x.mp4", "uploadId": "u-1", "partNumber": part}
    with pytest.raises(ValidationError) as caught:
        parse(UppySignRequest, sign)
    assert caught.value.message == "partNumber must be an integer from 1 to 10000"
