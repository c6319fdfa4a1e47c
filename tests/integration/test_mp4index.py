"""The MP4/MOV index reader against ffmpeg's own packet list, on a corpus made with ffmpeg.

For every sample of the video track the reader's decode time, presentation time, size, keyframe
flag and bytes (the Adler-32 of the bytes at the offset it names) must equal what ffmpeg's mov
demuxer reports with ``-copyts -c copy -f framecrc``. ffmpeg writes ``co64`` only past 4 GB and
never ``stz2``; those two are made by rewriting the index of a small file whose ``moov`` sits at
the end (so no sample moves).
"""

from __future__ import annotations

import contextlib
import struct
import subprocess
import threading
import time
import zlib
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.range_server import ByteCounter, serve_directory
from chalicelib.errors import InvalidMediaError, RenderError
from chalicelib.media.mp4index import (
    FIRST_READ_BYTES,
    WALK_READ_BYTES,
    IndexUnsupported,
    read_index,
)
from chalicelib.media.ranges import FileRangeSource, HttpRangeSource
from tests.support import FFMPEG

SOURCE = ["-f", "lavfi", "-t", "4", "-i", "testsrc2=size=320x180:rate=30"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "30"]
BFRAMES = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "25", "-bf", "3"]
HEVC = ["-c:v", "libx265", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
X265_PARAMS = "keyint=30:min-keyint=30:bframes=2:log-level=error"
FRAGMENTED = ["-movflags", "+frag_keyframe+empty_moov"]
PCM = ["-f", "lavfi", "-t", "4", "-i", "sine=sample_rate=8000"]

CORPUS: dict[str, list[str]] = {
    "moov_at_end.mp4": [*SOURCE, *X264],
    "moov_at_front.mp4": [*SOURCE, *X264, "-movflags", "+faststart"],
    # B-frames: ctts, and an edit list shifting presentation back to 0.
    "bframes.mp4": [*SOURCE, *BFRAMES],
    "bframes.mov": [*SOURCE, *BFRAMES],
    # Interleaved PCM audio: the video's chunks hold varying sample counts (stsc runs).
    "stsc_runs.mov": [*SOURCE, *PCM, *X264, "-c:a", "pcm_s16le"],
    # A leading empty edit: the picture starts half a second in.
    "delayed.mp4": ["-itsoffset", "0.5", *SOURCE, *X264],
    "hevc.mp4": [*SOURCE, *HEVC, "-x265-params", X265_PARAMS],
    "hevc_fragmented.mp4": [
        *SOURCE, *HEVC, "-tag:v", "hvc1", "-x265-params", X265_PARAMS, *FRAGMENTED,
    ],
    "fragmented.mp4": [*SOURCE, *BFRAMES, *FRAGMENTED],
    "fragmented_base_moof.mp4": [
        *SOURCE, *X264, "-movflags", "+frag_keyframe+empty_moov+default_base_moof",
    ],
    "fragmented_with_audio.mp4": [*SOURCE, *PCM, *X264, "-c:a", "aac", *FRAGMENTED],
    # A sidx at the front listing every fragment; and DASH's one sidx per fragment (walked).
    "fragmented_global_sidx.mp4": [
        *SOURCE, *X264, "-movflags", "+frag_keyframe+empty_moov+dash+global_sidx",
    ],
    "fragmented_dash.mp4": [*SOURCE, *X264, "-movflags", "+frag_keyframe+empty_moov+dash"],
    # No mfra at the end (as a live recorder leaves it): the fragments are walked.
    "fragmented_no_mfra.mp4": [
        *SOURCE, *X264, "-movflags", "+frag_keyframe+empty_moov+skip_trailer",
    ],
    # Samples in the moov and in fragments after it, half-second fragments.
    "fragmented_moov_samples.mp4": [
        *SOURCE, *X264, "-movflags", "+frag_keyframe", "-frag_duration", "500000",
    ],
}  # fmt: skip


class Packet(NamedTuple):
    dts: int
    pts: int
    size: int
    checksum: str
    keyframe: bool


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mp4")
    for name, args in CORPUS.items():
        _ffmpeg(*args, str(folder / name))
    end = folder / "moov_at_end.mp4"
    (folder / "co64.mp4").write_bytes(_rewrite_stco_as_co64(end.read_bytes()))
    (folder / "stz2.mp4").write_bytes(_rewrite_stsz_as_stz2(end.read_bytes()))
    return folder


ALL_FILES = [*CORPUS, "co64.mp4", "stz2.mp4"]


@pytest.mark.parametrize("name", ALL_FILES)
def test_every_sample_matches_ffmpegs_packet_list(corpus: Path, name: str) -> None:
    # Given a file ffmpeg wrote (or one whose index was rewritten)
    path = corpus / name
    expected = ffmpeg_packets(path)
    data = path.read_bytes()
    # When lapse reads its index
    index = read_index(FileRangeSource(str(path)), keep_samples=True)
    # Then every sample's times, size, flag and bytes are ffmpeg's
    assert index.samples is not None
    found = [
        Packet(
            s.dts,
            s.pts,
            s.size,
            f"0x{zlib.adler32(data[s.offset : s.offset + s.size], 0):08x}",
            s.keyframe,
        )
        for s in index.samples
    ]
    assert found == expected
    assert index.sample_count == len(expected)
    assert [k.seconds for k in index.keyframes] == sorted(k.seconds for k in index.keyframes)
    assert len(index.keyframes) == sum(p.keyframe for p in expected)


def test_the_corpus_covers_what_it_claims(corpus: Path) -> None:
    """Each rewrite and muxer option produced the index feature its test stands for."""
    assert b"co64" in (corpus / "co64.mp4").read_bytes()
    assert b"stz2" in (corpus / "stz2.mp4").read_bytes()
    assert _video_stsc_entries((corpus / "stsc_runs.mov").read_bytes()) > 1
    assert b"ctts" in (corpus / "bframes.mp4").read_bytes()
    assert b"elst" in (corpus / "delayed.mp4").read_bytes()
    assert b"mfra" in (corpus / "fragmented.mp4").read_bytes()
    layouts = {
        name: read_index(FileRangeSource(str(corpus / name))).layout
        for name in ("moov_at_end.mp4", "moov_at_front.mp4", "fragmented.mp4")
    }
    assert layouts == {
        "moov_at_end.mp4": "moov-end",
        "moov_at_front.mp4": "moov-front",
        "fragmented.mp4": "fragmented",
    }


def test_parameter_sets_come_from_the_codec_configuration(corpus: Path) -> None:
    h264 = read_index(FileRangeSource(str(corpus / "moov_at_end.mp4")))
    hevc = read_index(FileRangeSource(str(corpus / "hevc.mp4")))
    assert (h264.codec, h264.nal_length_size) == ("h264", 4)
    assert [ps[0] & 0x1F for ps in h264.parameter_sets] == [7, 8]  # SPS, PPS
    assert hevc.codec == "hevc"
    nal_types = [(ps[0] >> 1) & 0x3F for ps in hevc.parameter_sets]
    assert nal_types[:3] == [32, 33, 34]  # VPS, SPS, PPS (then x265 stores an SEI)
    assert (h264.width, h264.height) == (320, 180)


def test_a_front_or_an_end_index_costs_two_reads(corpus: Path) -> None:
    front = FileRangeSource(str(corpus / "moov_at_front.mp4"))
    read_index(front)
    end = FileRangeSource(str(corpus / "moov_at_end.mp4"))
    read_index(end)
    assert front.stats.requests <= 2
    # the read that finds the moov past the media data takes the rest of the file with it
    assert end.stats.requests <= 2


class _SlowCountingSource:
    """A file read with a little latency per read, noting offsets and reads in flight at once."""

    def __init__(self, path: Path) -> None:
        self._file = FileRangeSource(str(path))
        self._lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.offsets: list[int] = []

    @property
    def size(self) -> int:
        return self._file.size

    def read(self, offset: int, length: int) -> bytes:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self.offsets.append(offset)
        time.sleep(0.02)
        try:
            return self._file.read(offset, length)
        finally:
            with self._lock:
                self.in_flight -= 1


@pytest.mark.parametrize(
    ("name", "listed_by"),
    [
        ("fragmented.mp4", "mfra"),
        ("hevc_fragmented.mp4", "mfra"),
        ("fragmented_global_sidx.mp4", "sidx"),
    ],
)
def test_fragments_listed_by_an_index_are_read_concurrently(
    corpus: Path, name: str, listed_by: str
) -> None:
    # Given a fragmented file with an index of its fragments (mfra at the end, or a sidx)
    source = _SlowCountingSource(corpus / name)
    # When its index is read
    index = read_index(source)
    # Then the fragments are read several at once, and give what walking them gives
    walked = read_index(FileRangeSource(str(corpus / name)), keep_samples=True)
    assert index.keyframes == walked.keyframes
    read_the_end = source.size - FIRST_READ_BYTES in source.offsets
    assert read_the_end == (listed_by == "mfra")
    assert source.most_in_flight > 1


def test_a_damaged_mfra_falls_back_to_walking(corpus: Path, tmp_path: Path) -> None:
    data = bytearray((corpus / "fragmented.mp4").read_bytes())
    tfra = data.rindex(b"tfra")
    entries = tfra + 4 + 4 + 4 + 4 + 4  # version/flags, track id, field sizes, entry count
    struct.pack_into(">I", data, entries + 4 + 4 * 0, 12345)  # first entry's moof_offset
    damaged = tmp_path / "damaged_mfra.mp4"
    damaged.write_bytes(bytes(data))

    index = read_index(FileRangeSource(str(damaged)))

    assert index.keyframes == read_index(FileRangeSource(str(corpus / "fragmented.mp4"))).keyframes


def test_a_file_cut_short_is_refused_with_a_reason(corpus: Path, tmp_path: Path) -> None:
    data = (corpus / "moov_at_front.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidMediaError, match="cut short"):
        read_index(FileRangeSource(str(cut)))
    data = (corpus / "moov_at_end.mp4").read_bytes()
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(InvalidMediaError, match="damaged or incomplete"):
        read_index(FileRangeSource(str(cut)))


def test_other_files_are_left_to_ffmpeg(tmp_path: Path) -> None:
    webm = tmp_path / "clip.webm"
    _ffmpeg(*SOURCE, "-c:v", "libvpx-vp9", "-deadline", "realtime", str(webm))
    vp9_mp4 = tmp_path / "vp9.mp4"
    _ffmpeg("-i", str(webm), "-c", "copy", str(vp9_mp4))
    for path in (webm, vp9_mp4):
        with pytest.raises(IndexUnsupported):
            read_index(FileRangeSource(str(path)))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_a_damaged_index_fails_cleanly(corpus: Path, data: st.DataObject) -> None:
    # Given a file with a few bytes of its index overwritten
    original = bytearray((corpus / "bframes.mp4").read_bytes())
    moov = original.find(b"moov") - 4
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(moov, len(original) - 1))
        original[position] = data.draw(st.integers(0, 255))
    path = corpus / "damaged.mp4"
    path.write_bytes(bytes(original))
    # When it is read: it either reads, or says it cannot — never another error, never a hang
    with contextlib.suppress(InvalidMediaError, IndexUnsupported):
        read_index(FileRangeSource(str(path)))


# --- helpers -------------------------------------------------------------------------------------


def sent(counter: ByteCounter, expected: int) -> int:
    """The server's count once it has caught up (it counts after each write returns, so the
    client may hold the bytes a moment before the count does)."""
    deadline = time.monotonic() + 2
    while counter.bytes_sent < expected and time.monotonic() < deadline:
        time.sleep(0.01)
    return counter.bytes_sent


def ffmpeg_packets(path: Path) -> list[Packet]:
    """The video packets as ffmpeg's mov demuxer reads them, in file order."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-copyts", "-i", str(path), "-map", "0:v:0", "-c", "copy",
         "-f", "framecrc", "-"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    packets = []
    for line in result.stdout.splitlines():
        if line.startswith("#"):
            continue
        fields = [field.strip() for field in line.split(",")]
        flags = next((int(f[2:], 16) for f in fields[6:] if f.startswith("F=")), 1)
        packets.append(
            Packet(int(fields[1]), int(fields[2]), int(fields[4]), fields[5], bool(flags & 1))
        )
    return packets


def _ffmpeg(*args: str) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-y", "-loglevel", "error", *args],
        check=True,
        timeout=120,
    )


def _replace_box(data: bytes, kind: bytes, build: bytes) -> bytes:
    """`data` with the first `kind` box inside moov replaced by `build` (a whole box), every
    enclosing box's size fixed. The moov must be last, so no sample moves."""
    start = data.index(kind) - 4
    (old_size,) = struct.unpack(">I", data[start : start + 4])
    growth = len(build) - old_size
    out = bytearray(data[:start] + build + data[start + old_size :])
    for parent in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):
        position = out.index(parent) - 4 if parent == b"moov" else out.rindex(parent, 0, start) - 4
        (size,) = struct.unpack(">I", out[position : position + 4])
        assert position + size >= start, "the box is not inside this parent"
        struct.pack_into(">I", out, position, size + growth)
    assert data.rindex(b"moov") > data.index(b"mdat"), "moov must be at the end"
    return bytes(out)


def _box_payload(data: bytes, kind: bytes) -> bytes:
    start = data.index(kind) - 4
    (size,) = struct.unpack(">I", data[start : start + 4])
    return data[start + 8 : start + size]


def _rewrite_stco_as_co64(data: bytes) -> bytes:
    payload = _box_payload(data, b"stco")
    (count,) = struct.unpack(">I", payload[4:8])
    offsets = struct.unpack(f">{count}I", payload[8 : 8 + 4 * count])
    body = payload[:8] + struct.pack(f">{count}Q", *offsets)
    return _replace_box(data, b"stco", struct.pack(">I4s", 8 + len(body), b"co64") + body)


def _rewrite_stsz_as_stz2(data: bytes) -> bytes:
    payload = _box_payload(data, b"stsz")
    uniform, count = struct.unpack(">II", payload[4:12])
    assert uniform == 0
    sizes = struct.unpack(f">{count}I", payload[12 : 12 + 4 * count])
    assert max(sizes) < 1 << 16
    body = payload[:4] + struct.pack(">II", 16, count) + struct.pack(f">{count}H", *sizes)
    return _replace_box(data, b"stsz", struct.pack(">I4s", 8 + len(body), b"stz2") + body)


def _video_stsc_entries(data: bytes) -> int:
    payload = _box_payload(data, b"stsc")  # the first track is the video
    return int(struct.unpack(">I", payload[4:8])[0])


def test_over_http_the_index_costs_a_few_small_ranged_reads(corpus: Path) -> None:
    # Given the files behind a range-serving HTTP server that counts what it sends
    with serve_directory(corpus) as (base, counter):
        for name in ("moov_at_front.mp4", "moov_at_end.mp4", "fragmented.mp4"):
            counter.reset()
            source = HttpRangeSource(f"{base}/{name}")
            data = (corpus / name).read_bytes()
            # When the index is read over HTTP
            index = read_index(source)
            # Then it equals the one read from disk, for a few requests and a fraction of the file
            assert index == read_index(FileRangeSource(str(corpus / name)))
            assert counter.requests == source.stats.requests
            # the file's start and its moov, or also its end (mfra) and each fragment's moof
            fragments = data.count(b"moof") if name.startswith("fragmented") else 0
            assert source.stats.requests <= 3 + fragments
            assert sent(counter, source.stats.bytes_read) == source.stats.bytes_read
            moov = struct.unpack(">I", data[data.index(b"moov") - 4 : data.index(b"moov")])[0]
            walk = WALK_READ_BYTES * source.stats.requests
            assert source.stats.bytes_read <= 2 * FIRST_READ_BYTES + moov + walk


def test_a_source_that_cannot_be_read_fails_with_a_reason(corpus: Path) -> None:
    with serve_directory(corpus) as (base, _), pytest.raises(RenderError, match="HTTP 404"):
        read_index(HttpRangeSource(f"{base}/missing.mp4"))
    # nothing listens there any more: every try fails, and the error names the bytes
    source = HttpRangeSource(f"{base}/moov_at_end.mp4")
    with pytest.raises(RenderError, match=r"could not be read after 3 tries"):
        source.read(0, 100)


def test_keyframe_spacing_counts_the_tail_up_to_the_last_picture(corpus: Path) -> None:
    # 4 s at 30 fps, a keyframe every 30 frames: keyframes at 0, 1, 2, 3 s; last picture at 3.967
    index = read_index(FileRangeSource(str(corpus / "moov_at_end.mp4")))
    assert [k.seconds for k in index.keyframes] == [0.0, 1.0, 2.0, 3.0]
    assert index.last_picture_seconds == pytest.approx(119 / 30)
    assert index.keyframe_spacing() == pytest.approx(1.0)
