"""Hostile uploads, end to end: each one ends `failed` with a reason a person understands, reads
nothing it should not, leaves no object behind, and the worker goes on serving normal jobs.

The whole corpus is uploaded at once (a module fixture), through the API and the presigned PUT as
`video/mp4`, exactly as a front end would; each test then checks one file's outcome.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.conftest import RunningStack
from tests.support import ffmpeg, make_clip

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

# What a person may be told: no ffmpeg internals, addresses, stack traces or file contents.
_INTERNALS = re.compile(r"0x[0-9a-f]{6,}|Traceback|\[\w+ @|ffmpeg|root:|/etc/|errno", re.I)


class Listener:
    """A TCP port that must never be connected to: it records every connection attempt."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(16)
        self._socket.settimeout(0.2)
        self.port = int(self._socket.getsockname()[1])
        self.connections: list[tuple[str, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, address = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(address)
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._socket.close()


def _declare_hours_mp4(path: Path, hours: float) -> Path:
    """Two tiny frames, the second stamped `hours` after the first: a 19 KB file whose container
    honestly states a length of many hours."""
    seconds = int(hours * 3600)
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=1", "-frames:v", "2",
        "-vf", f"setpts=N*{seconds}/TB", "-fps_mode", "vfr", "-video_track_timescale", "1000",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


def _huge_frame_mp4(path: Path) -> Path:
    """One black 8192×8192 frame at the lowest quality x264 allows: ~200 KB, 67 Mpixel."""
    ffmpeg(
        "-f", "lavfi", "-i", "color=c=black:size=8192x8192:rate=1", "-frames:v", "1",
        "-c:v", "libx264", "-preset", "ultrafast", "-qp", "51", "-level", "6.2",
        "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    return path


def _other_container(path: Path, muxer: str) -> bytes:
    """A real picture in another container: MPEG-TS (read, from its bytes), a JPEG still (not)."""
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30", "-t", "2", "-frames:v",
        "60" if muxer == "mpegts" else "1", "-f", muxer, str(path),
    )  # fmt: skip
    return path.read_bytes()


def _audio_only_mp4(path: Path) -> Path:
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "aac", str(path))
    return path


@dataclass
class Case:
    """One hostile upload: its bytes, the size it declares, and what the failure must say."""

    data: bytes
    codes: set[str]
    says: str  # a word the message must contain
    declared: int | None = None  # defaults to len(data)
    id: str = ""
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class Corpus:
    cases: dict[str, Case]
    listener: Listener
    good: dict[str, Any]


def _half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def _build_cases(
    media: Path, good: bytes, faststart: bytes, port: int, sibling: str
) -> dict[str, Case]:
    return {
        "hls-file-url": Case(
            b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
            b"#EXTINF:10.0,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
            {"invalid_media"},
            "not a video",
        ),
        "hls-loopback-url": Case(
            b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n"
            + f"#EXTINF:10.0,\nhttp://127.0.0.1:{port}/x.ts\n#EXT-X-ENDLIST\n".encode(),
            {"invalid_media"},
            "not a video",
        ),
        # A concat script naming the original stored beside it (videos/<sibling>.mp4): were it
        # interpreted, the render would read the sibling and succeed.
        "concat-script": Case(
            f"ffconcat version 1.0\nfile {sibling}.mp4\nfile ../videos/{sibling}.mp4\n".encode(),
            {"invalid_media"},
            "not a video",
        ),
        "plain-text": Case(
            b"hello, this is a shopping list, not a video\n" * 20, {"invalid_media"}, "not a video"
        ),
        "audio-only": Case(
            _audio_only_mp4(media / "audio.mp4").read_bytes(), {"invalid_media"}, "no video"
        ),
        # Not hostile: MPEG-TS is read from its bytes whatever it is named; it must complete.
        "mpeg-ts-container": Case(_other_container(media / "other.ts", "mpegts"), set(), ""),
        "jpeg-still": Case(
            _other_container(media / "still.jpg", "mjpeg"), {"invalid_media"}, "not a video"
        ),
        "truncated-mp4": Case(_half(good), {"invalid_media"}, "incomplete"),
        "truncated-faststart-mp4": Case(_half(faststart), {"invalid_media"}, "incomplete"),
        "frame-8192x8192": Case(
            _huge_frame_mp4(media / "huge.mp4").read_bytes(), {"invalid_media"}, "8192x8192"
        ),
        "declares-30-hours": Case(
            _declare_hours_mp4(media / "hours.mp4", 30).read_bytes(), {"invalid_media"}, "hours"
        ),
        "zero-bytes-put": Case(b"", {"size_mismatch"}, "declared", declared=len(good)),
        "size-lie-bigger": Case(good, {"size_mismatch"}, "declared", declared=len(good) - 1000),
    }


@pytest.fixture(scope="module")
def corpus(stack: RunningStack, media: Path) -> Iterator[Corpus]:
    # Given a listener that no upload may reach, and an ordinary video already stored beside
    # the hostile ones (uploaded with process=false, so it stays as uploaded)
    api = stack.api("mallory")
    listener = Listener()
    good = make_clip(media / "hostile-good.mp4", seconds=3).read_bytes()
    faststart = media / "hostile-faststart.mp4"
    ffmpeg("-i", str(media / "hostile-good.mp4"), "-c", "copy", "-movflags", "+faststart",
           str(faststart))  # fmt: skip
    sibling = api.create(len(good), process=False)
    api.upload_put(sibling, good)
    sibling_id = sibling["timelapse"]["id"]
    cases = _build_cases(media, good, faststart.read_bytes(), listener.port, sibling_id)

    # When each hostile file is uploaded as video/mp4
    for case in cases.values():
        created = api.create(case.declared if case.declared is not None else len(case.data),
                             targetSeconds=2)  # fmt: skip
        case.id = created["timelapse"]["id"]
        upload = created["upload"]
        answer = requests.put(upload["url"], data=case.data, headers=upload["headers"],
                              timeout=60)  # fmt: skip
        assert answer.status_code == 200, answer.text
    for case in cases.values():
        case.record = api.wait_for(case.id, timeout=90)
    # And then an ordinary video
    normal = api.submit(media / "hostile-good.mp4", targetSeconds=1)
    done = api.wait_for(normal["timelapse"]["id"], timeout=90)
    yield Corpus(cases, listener, done)
    listener.close()


CASE_NAMES = [
    "hls-file-url",
    "hls-loopback-url",
    "concat-script",
    "plain-text",
    "audio-only",
    "jpeg-still",
    "truncated-mp4",
    "truncated-faststart-mp4",
    "frame-8192x8192",
    "declares-30-hours",
    "zero-bytes-put",
    "size-lie-bigger",
]


def _objects(stack: RunningStack, prefix: str) -> list[str]:
    listed = stack.config.s3().list_objects_v2(Bucket=stack.config.bucket, Prefix=prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_hostile_upload_fails_with_a_reason_and_leaves_nothing(
    corpus: Corpus, stack: RunningStack, name: str
) -> None:
    case = corpus.cases[name]
    record = case.record
    # Then it ends failed, with a stable code and a message a person understands
    assert record["status"] == "failed", record
    assert record["error"]["code"] in case.codes, record["error"]
    message = record["error"]["message"]
    assert case.says.lower() in message.lower(), message
    assert not _INTERNALS.search(message), message
    assert len(message) < 300
    # And nothing was rendered or stored for it: no output, no poster, and the original is gone
    assert record["processedVideoKey"] is None
    assert record["output"] is None
    assert record["attempts"] <= 1
    assert _objects(stack, f"timelapses/{case.id}") == []
    assert _objects(stack, f"posters/{case.id}") == []
    assert _objects(stack, f"videos/{case.id}") == [], "the bad original must be deleted"


def test_an_mpeg_ts_uploaded_as_mp4_is_rendered_from_its_bytes(corpus: Corpus) -> None:
    record = corpus.cases["mpeg-ts-container"].record
    assert record["status"] == "complete", record
    assert record["output"]["durationSeconds"] == pytest.approx(2, rel=0.1)


def test_no_hostile_upload_reached_the_network(corpus: Corpus) -> None:
    # Then the loopback address the playlist named never saw a connection
    assert corpus.listener.connections == []


def test_zero_byte_uploads_are_refused_at_create(stack: RunningStack) -> None:
    answer = stack.api("mallory").request(
        "POST", "/timelapses", json={"projectId": "p", "contentType": "video/mp4", "sizeBytes": 0}
    )
    assert answer.status_code == 400
    assert "sizeBytes" in answer.json()["error"]["message"]


def test_the_worker_serves_a_normal_job_after_the_corpus(corpus: Corpus) -> None:
    # Then the ordinary video submitted after all of them is rendered as usual
    assert corpus.good["status"] == "complete", corpus.good
    assert corpus.good["attempts"] == 1


def test_the_ordinary_video_beside_the_concat_script_was_not_touched(
    corpus: Corpus, stack: RunningStack
) -> None:
    concat = corpus.cases["concat-script"]
    sibling = re.search(rb"file ([0-9a-f-]{36})\.mp4", concat.data)
    assert sibling is not None
    sibling_id = sibling.group(1).decode()
    assert _objects(stack, f"videos/{sibling_id}") == [f"videos/{sibling_id}.mp4"]
    assert _objects(stack, f"timelapses/{sibling_id}") == []


def test_mp4_duration_helper_declares_what_it_says(media: Path) -> None:
    # The "hours" file really is tiny and really states hours (guards the corpus itself).
    data = _declare_hours_mp4(media / "hours-check.mp4", 30).read_bytes()
    assert len(data) < 64 * 1024
    mvhd = data.find(b"mvhd")
    version = data[mvhd + 4]
    assert version in (0, 1)
    if version == 0:
        scale, duration = struct.unpack(">II", data[mvhd + 16 : mvhd + 24])
    else:
        scale, duration = struct.unpack(">IQ", data[mvhd + 24 : mvhd + 36])
    assert duration / scale > 29 * 3600
