"""The sample index of an MP4/MOV video track, read with a few ranged reads.

ISO BMFF keeps, apart from the pictures, a table of where each sample lies and when it is shown.
This module reads that table for the first H.264 or HEVC video track and answers, per keyframe,
its presentation time and its byte range, plus the codec configuration (``avcC``/``hvcC``) a
decoder needs to start at any keyframe. Pure Python (Lambda has no PyAV).

Reading, with few requests: the top-level boxes are walked with small reads (one 64 KiB read at
the start usually holds ``ftyp`` and the head of ``moov``); ``moov`` is fetched in one read wherever
it lies (front, or end after ``mdat``); ``mdat`` is skipped by its size. A fragmented file
(``moof``+``mdat`` pairs, as OBS and browsers' MediaRecorder write) costs one small read per
fragment: each ``moof`` is read whole with the header of the ``mdat`` that follows.

Timestamps follow ffmpeg's mov demuxer: decode time from ``stts`` (or ``tfdt``/``trun``),
presentation time = decode time + ``ctts``/``trun`` composition offset − the edit list's media
start + its leading empty edit. A damaged or cut index raises InvalidMediaError; a valid file
this reader does not handle (another codec, no video track, encrypted) raises IndexUnsupported,
and the caller falls back to ffmpeg's own demuxer.
"""

from __future__ import annotations

import itertools
import struct
from array import array
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Literal

from chalicelib.errors import InvalidMediaError
from chalicelib.media.ranges import RangeSource

FIRST_READ_BYTES = 64 * 1024
WALK_READ_BYTES = 16 * 1024
# Past the media data, the rest of the file up to this size is read at once: a moov at the end
# (~0.7 MB for an hour of 30 fps video) then comes with the read that finds it, one request less.
TAIL_READ_BYTES = 1024 * 1024
MAX_INDEX_BYTES = 256 * 1024 * 1024
MAX_TOP_LEVEL_BOXES = 1_000_000
FRAGMENT_READERS = 8
MAX_SAMPLES = 12_000_000  # a day at 120 fps; a larger count is a damaged index, not a video

DAMAGED_INDEX = (
    "This video's index is damaged or incomplete ({detail}); upload the whole file again."
)
CUT_SHORT = (
    "This video is cut short: its index names pictures that the file does not hold, so the "
    "file or its upload is incomplete. Upload the whole file."
)

Codec = Literal["h264", "hevc"]
Layout = Literal["moov-front", "moov-end", "fragmented"]
_CODECS: dict[bytes, Codec] = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"}
_CONFIG_BOX = {"h264": b"avcC", "hevc": b"hvcC"}
# trun/trex sample flags: "is non-sync sample" and "depends on others" (ffmpeg's keyframe test).
_NON_SYNC = 0x00010000
_DEPENDS_YES = 0x01000000
_VISUAL_SAMPLE_ENTRY_BYTES = 78
# What an MP4/MOV may start with (QuickTime files may open with wide/free/skip, or mdat).
_FIRST_BOXES = (b"ftyp", b"moov", b"free", b"skip", b"wide", b"mdat", b"pnot", b"styp")


class IndexUnsupported(Exception):
    """A valid file whose video this reader does not handle; ffmpeg's demuxer must read it."""


@dataclass(frozen=True)
class Sample:
    """One video sample: its bytes and its times in the track's timescale."""

    offset: int
    size: int
    dts: int
    pts: int
    keyframe: bool


@dataclass(frozen=True)
class Keyframe:
    seconds: float  # presentation time from the track's first shown picture
    offset: int
    size: int


@dataclass
class VideoIndex:
    """What a render needs from the container: the codec set-up and every keyframe."""

    codec: Codec
    timescale: int
    nal_length_size: int
    parameter_sets: tuple[bytes, ...]
    width: int
    height: int
    sample_count: int
    keyframes: list[Keyframe]
    layout: Layout
    last_picture_seconds: float = 0.0  # when the track's last picture is shown
    samples: list[Sample] | None = None  # every sample, only when asked for (tests)

    def keyframe_spacing(self) -> float | None:
        """The largest gap between keyframes, counting the stretch after the last one up to the
        track's last picture (not the container's end: audio may run on with no picture)."""
        times = [k.seconds for k in self.keyframes]
        if len(times) < 2:
            return None
        gaps = [b - a for a, b in itertools.pairwise(times)]
        gaps.append(max(0.0, self.last_picture_seconds - times[-1]))
        return max(gaps)


def looks_like_mp4(source: RangeSource) -> bool:
    """Whether `source` opens with a box an MP4/MOV may open with (a read the index reuses)."""
    return source.size >= 8 and source.read(4, 4) in _FIRST_BOXES


def read_index(source: RangeSource, *, keep_samples: bool = False) -> VideoIndex:
    """Read the video index of `source`; InvalidMediaError if damaged, IndexUnsupported if not
    an H.264/HEVC MP4/MOV. `keep_samples` keeps every sample (and walks every fragment)."""
    walker = _TopLevel(source)
    moov: bytes | None = None
    track: _Track | None = None
    moov_offset = 0
    fragments: list[tuple[int, bytes]] = []
    segments: list[int] = []  # fragment offsets from a sidx covering them all, if there is one
    for kind, start, size in walker.boxes():
        if kind == b"moov":
            moov, moov_offset = walker.load(start, size), start
            track = _video_track(moov)
        elif kind == b"sidx" and not segments:
            segments = _whole_file_segments(source, walker.load(start, size), start)
        elif kind == b"moof":
            listed = None
            if not keep_samples and track is not None and not fragments:
                listed = _listed_fragments(source, track, segments)
            if listed is not None:
                fragments = listed
                break
            fragments.append((start, walker.load(start, size)))
        elif kind == b"mdat" and moov is not None and not _fragmented(moov):
            break  # everything after the media data is of no use once the index is known
    if moov is None or track is None:
        raise _damaged("no moov box") if walker.saw_mdat else IndexUnsupported("no moov box")
    samples = itertools.chain(
        track.table_samples(), *(track.fragment_samples(moof, start) for start, moof in fragments)
    )
    layout: Layout = "fragmented" if fragments else "moov-front"
    if not fragments and walker.saw_mdat_before(moov_offset):
        layout = "moov-end"
    return track.index(samples, layout, source.size, keep_samples=keep_samples)


def _fragmented(moov: bytes) -> bool:
    return any(kind == b"mvex" for kind, _, _ in _children(memoryview(moov), 8, len(moov)))


def _damaged(detail: str) -> InvalidMediaError:
    return InvalidMediaError(DAMAGED_INDEX.format(detail=detail))


# --- top-level walk -----------------------------------------------------------------------------


class _TopLevel:
    """The file's top-level boxes, found with as few and as small reads as possible."""

    def __init__(self, source: RangeSource) -> None:
        self._source = source
        self._size = source.size
        self._buffer = b""
        self._buffer_at = 0
        self._mdat_offsets: list[int] = []
        self._saw_moov = False  # after it, only fragments are looked for: small reads

    @property
    def saw_mdat(self) -> bool:
        return bool(self._mdat_offsets)

    def saw_mdat_before(self, offset: int) -> bool:
        return any(start < offset for start in self._mdat_offsets)

    def boxes(self) -> Iterator[tuple[bytes, int, int]]:
        """(type, start, size including header) of each top-level box, in file order."""
        position, count = 0, 0
        while position + 8 <= self._size:
            header = self._bytes(position, 16, read=self._read_size(position, count))
            size, kind = struct.unpack_from(">I4s", header)
            if count == 0 and kind not in _FIRST_BOXES:
                raise IndexUnsupported("not an MP4/MOV file")
            header_size = 8
            if size == 1:
                if len(header) < 16:
                    raise _damaged(f"box {kind!r} cut short")
                (size,) = struct.unpack_from(">Q", header, 8)
                header_size = 16
            elif size == 0:
                size = self._size - position
            if size < header_size or (position + size > self._size and kind != b"mdat"):
                raise _damaged(f"box {kind!r} at byte {position} is {size} bytes long")
            if kind == b"mdat":
                self._mdat_offsets.append(position)
            self._saw_moov = self._saw_moov or kind == b"moov"
            yield kind, position, size
            position += size
            count += 1
            if count > MAX_TOP_LEVEL_BOXES:
                raise _damaged("too many boxes")

    def _read_size(self, position: int, count: int) -> int:
        if count == 0:
            return FIRST_READ_BYTES
        rest = self._size - position
        return rest if rest <= TAIL_READ_BYTES and not self._saw_moov else WALK_READ_BYTES

    def load(self, start: int, size: int) -> bytes:
        """The whole box at `start`, in one read unless it is already in the buffer."""
        if size > MAX_INDEX_BYTES:
            raise _damaged(f"an index box of {size} bytes")
        return self._bytes(start, size, read=size + 16)

    def _bytes(self, start: int, length: int, *, read: int) -> bytes:
        offset = start - self._buffer_at
        if offset < 0 or offset + length > len(self._buffer):
            self._buffer = self._source.read(start, min(max(read, length), self._size - start))
            self._buffer_at, offset = start, 0
        data = self._buffer[offset : offset + length]
        if len(data) < min(length, 8):
            raise _damaged(f"the file ends inside a box at byte {start}")
        return data


# --- box parsing ---------------------------------------------------------------------------------


class _Reader:
    """Big-endian fields of one box payload; running past its end means a damaged index."""

    def __init__(self, data: memoryview, position: int = 0, end: int | None = None) -> None:
        self.data = data
        self.position = position
        self.end = len(data) if end is None else end

    def take(self, fmt: str) -> tuple[int, ...]:
        size = struct.calcsize(fmt)
        if self.position + size > self.end:
            raise _damaged("a table is shorter than it says")
        values = struct.unpack_from(fmt, self.data, self.position)
        self.position += size
        return values

    def u8(self) -> int:
        return self.take(">B")[0]

    def u16(self) -> int:
        return self.take(">H")[0]

    def u32(self) -> int:
        return self.take(">I")[0]

    def u64(self) -> int:
        return self.take(">Q")[0]

    def i32(self) -> int:
        return self.take(">i")[0]

    def version_flags(self) -> tuple[int, int]:
        value = self.u32()
        return value >> 24, value & 0xFFFFFF

    def bytes(self, length: int) -> bytes:
        if self.position + length > self.end:
            raise _damaged("a field is longer than its box")
        out = bytes(self.data[self.position : self.position + length])
        self.position += length
        return out

    def array(self, typecode: str, count: int) -> array[int]:
        """`count` big-endian integers as a native array (fast for tables of millions)."""
        values = array(typecode)
        size = values.itemsize * count
        if self.position + size > self.end:
            raise _damaged("a table is shorter than it says")
        values.frombytes(self.data[self.position : self.position + size])
        if struct.pack("=H", 1) != struct.pack(">H", 1):
            values.byteswap()
        self.position += size
        return values


def _children(data: memoryview, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) of the boxes between `start` and `end`."""
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, position)
        header = 8
        if size == 1:
            if position + 16 > end:
                raise _damaged(f"box {kind!r} cut short")
            (size,) = struct.unpack_from(">Q", data, position + 8)
            header = 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            raise _damaged(f"box {kind.decode('latin-1')!r} overruns its parent")
        yield kind, position + header, position + size
        position += size


def _child(data: memoryview, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for found, payload, box_end in _children(data, start, end):
        if found == kind:
            return payload, box_end
    return None


def _path(data: memoryview, start: int, end: int, *kinds: bytes) -> tuple[int, int] | None:
    span: tuple[int, int] | None = (start, end)
    for kind in kinds:
        assert span is not None
        span = _child(data, span[0], span[1], kind)
        if span is None:
            return None
    return span


# --- the moov: one video track -------------------------------------------------------------------


@dataclass
class _Defaults:
    """Per-sample defaults of a fragmented track (trex, overridden per fragment by tfhd)."""

    description: int = 1
    duration: int = 0
    size: int = 0
    flags: int = 0


@dataclass
class _Track:
    track_id: int
    codec: Codec
    timescale: int
    width: int
    height: int
    config: bytes
    shift: int  # subtracted from decode time + composition offset (edit list)
    stbl: memoryview | None
    stbl_span: tuple[int, int]
    defaults: _Defaults = field(default_factory=_Defaults)
    next_dts: int = 0

    def table_samples(self) -> Iterator[Sample]:
        if self.stbl is None:
            return iter(())
        return _table_samples(self.stbl, *self.stbl_span, self)

    def fragment_samples(self, moof: bytes, moof_offset: int) -> list[Sample]:
        return _fragment_samples(memoryview(moof), moof_offset, self)

    def index(
        self, samples: Iterator[Sample], layout: Layout, file_size: int, *, keep_samples: bool
    ) -> VideoIndex:
        """Keep the keyframes (and every sample if asked); check every sample lies in the file."""
        kept: list[Sample] = []
        keys: list[Sample] = []
        first, last, count, end = None, 0, 0, 0
        for sample in samples:
            count += 1
            if count > MAX_SAMPLES:
                raise _damaged(f"more than {MAX_SAMPLES} samples")
            last = sample.pts if first is None else max(last, sample.pts)
            first = sample.pts if first is None else min(first, sample.pts)
            end = max(end, sample.offset + sample.size)
            if sample.keyframe:
                keys.append(sample)
            if keep_samples:
                kept.append(sample)
        if first is None:
            raise _damaged("the video track has no samples")
        if end > file_size:
            raise InvalidMediaError(CUT_SHORT)
        keyframes = sorted(
            (Keyframe((s.pts - first) / self.timescale, s.offset, s.size) for s in keys),
            key=lambda k: k.seconds,
        )
        length_size, parameter_sets = parse_config(self.codec, self.config)
        return VideoIndex(
            codec=self.codec,
            timescale=self.timescale,
            nal_length_size=length_size,
            parameter_sets=parameter_sets,
            width=self.width,
            height=self.height,
            sample_count=count,
            keyframes=keyframes,
            layout=layout,
            last_picture_seconds=(last - first) / self.timescale,
            samples=kept if keep_samples else None,
        )


def _video_track(moov_bytes: bytes) -> _Track:
    moov = memoryview(moov_bytes)
    end = len(moov)
    movie_timescale = _movie_timescale(moov, end)
    trex = _trex_defaults(moov, end)
    for kind, start, box_end in _children(moov, 8, end):
        if kind != b"trak":
            continue
        track = _trak(moov, start, box_end, movie_timescale)
        if track is not None:
            track.defaults = trex.get(track.track_id, _Defaults())
            return track
    raise IndexUnsupported("no H.264 or HEVC video track")


def _movie_timescale(moov: memoryview, end: int) -> int:
    span = _child(moov, 8, end, b"mvhd")
    if span is None:
        raise _damaged("no mvhd box")
    reader = _Reader(moov, span[0], span[1])
    version, _ = reader.version_flags()
    reader.take(">QQ" if version == 1 else ">II")
    return reader.u32() or 1


def _trex_defaults(moov: memoryview, end: int) -> dict[int, _Defaults]:
    found: dict[int, _Defaults] = {}
    mvex = _child(moov, 8, end, b"mvex")
    if mvex is None:
        return found
    for kind, start, box_end in _children(moov, *mvex):
        if kind == b"trex":
            reader = _Reader(moov, start, box_end)
            reader.version_flags()
            track_id, description, duration, size, flags = reader.take(">IIIII")
            found[track_id] = _Defaults(description, duration, size, flags)
    return found


def _trak(moov: memoryview, start: int, end: int, movie_timescale: int) -> _Track | None:
    handler = _path(moov, start, end, b"mdia", b"hdlr")
    if handler is None or bytes(moov[handler[0] + 8 : handler[0] + 12]) != b"vide":
        return None
    stsd = _path(moov, start, end, b"mdia", b"minf", b"stbl", b"stsd")
    if stsd is None:
        raise _damaged("a video track without sample descriptions")
    entry = _sample_entry(moov, *stsd)
    if entry is None:
        return None
    codec, width, height, config = entry
    tkhd = _child(moov, start, end, b"tkhd")
    mdhd = _path(moov, start, end, b"mdia", b"mdhd")
    if tkhd is None or mdhd is None:
        raise _damaged("a track without tkhd or mdhd")
    timescale = _media_timescale(moov, *mdhd)
    stbl = _path(moov, start, end, b"mdia", b"minf", b"stbl")
    assert stbl is not None
    return _Track(
        track_id=_track_id(moov, *tkhd),
        codec=codec,
        timescale=timescale,
        width=width,
        height=height,
        config=config,
        shift=_edit_shift(moov, start, end, movie_timescale, timescale),
        stbl=moov,
        stbl_span=stbl,
    )


def _sample_entry(moov: memoryview, start: int, end: int) -> tuple[Codec, int, int, bytes] | None:
    reader = _Reader(moov, start, end)
    reader.version_flags()
    if reader.u32() < 1:
        raise _damaged("no sample description")
    entry = next(_children(moov, reader.position, end), None)
    if entry is None:
        raise _damaged("no sample description")
    kind, payload, entry_end = entry
    codec = _CODECS.get(kind)
    if codec is None:
        if kind in (b"encv",):
            raise IndexUnsupported("encrypted video")
        return None
    width, height = struct.unpack_from(">HH", moov, payload + 24)
    config = _child(moov, payload + _VISUAL_SAMPLE_ENTRY_BYTES, entry_end, _CONFIG_BOX[codec])
    if config is None:
        raise _damaged(f"{codec} video without its {_CONFIG_BOX[codec].decode()} configuration")
    return codec, width, height, bytes(moov[config[0] : config[1]])


def _track_id(moov: memoryview, start: int, end: int) -> int:
    reader = _Reader(moov, start, end)
    version, _ = reader.version_flags()
    reader.take(">QQ" if version == 1 else ">II")
    return reader.u32()


def _media_timescale(moov: memoryview, start: int, end: int) -> int:
    reader = _Reader(moov, start, end)
    version, _ = reader.version_flags()
    reader.take(">QQ" if version == 1 else ">II")
    timescale = reader.u32()
    if timescale == 0:
        raise _damaged("a track with no timescale")
    return timescale


def _edit_shift(
    moov: memoryview, start: int, end: int, movie_timescale: int, timescale: int
) -> int:
    """What ffmpeg subtracts from a sample's presentation time: the first edit's media start,
    less a leading empty edit (a delay before the first picture). Later edits (cuts inside the
    recording) are not applied; recorders do not write them."""
    elst = _path(moov, start, end, b"edts", b"elst")
    if elst is None:
        return 0
    reader = _Reader(moov, *elst)
    version, _ = reader.version_flags()
    delay = 0
    for _ in range(reader.u32()):
        duration, media_time = reader.take(">Qq" if version == 1 else ">Ii")
        reader.take(">I")  # media rate
        if media_time == -1:
            delay += duration * timescale // movie_timescale
            continue
        return media_time - delay
    return -delay


# --- sample tables (stbl) ---------------------------------------------------------------------


def _table_samples(moov: memoryview, start: int, end: int, track: _Track) -> Iterator[Sample]:
    boxes = {kind: (payload, box_end) for kind, payload, box_end in _children(moov, start, end)}
    sizes = _sizes(moov, boxes)
    if not sizes:
        return
    count = len(sizes)
    offsets = _offsets(moov, boxes, sizes)
    durations = _runs(moov, boxes.get(b"stts"), count, signed=False)
    composition = _runs(moov, boxes.get(b"ctts"), count, signed=True)
    sync = _sync(moov, boxes.get(b"stss"), count)
    dts = 0
    for i in range(count):
        yield Sample(
            offset=offsets[i],
            size=sizes[i],
            dts=dts - track.shift,
            pts=dts + (composition[i] if composition is not None else 0) - track.shift,
            keyframe=sync is None or i in sync,
        )
        dts += durations[i] if durations is not None else 0
    track.next_dts = dts


def _sizes(moov: memoryview, boxes: dict[bytes, tuple[int, int]]) -> array[int]:
    if b"stsz" in boxes:
        reader = _Reader(moov, *boxes[b"stsz"])
        reader.version_flags()
        uniform, count = reader.take(">II")
        if count > MAX_SAMPLES:
            raise _damaged(f"{count} samples")
        if uniform:
            return array("L", [uniform]) * count
        return reader.array("I", count)
    if b"stz2" in boxes:
        return _compact_sizes(moov, *boxes[b"stz2"])
    raise _damaged("no sample size table")


def _compact_sizes(moov: memoryview, start: int, end: int) -> array[int]:
    reader = _Reader(moov, start, end)
    reader.version_flags()
    field_size = reader.u32() & 0xFF
    count = reader.u32()
    if field_size == 16:
        return array("L", reader.array("H", count))
    if field_size == 8:
        return array("L", reader.bytes(count))
    if field_size == 4:
        packed = reader.bytes((count + 1) // 2)
        nibbles = [n for byte in packed for n in (byte >> 4, byte & 0xF)]
        return array("L", nibbles[:count])
    raise _damaged(f"stz2 field size {field_size}")


def _offsets(
    moov: memoryview, boxes: dict[bytes, tuple[int, int]], sizes: array[int]
) -> array[int]:
    """Each sample's file offset, from the chunk offsets and the samples-per-chunk runs."""
    chunks = _chunk_offsets(moov, boxes)
    if b"stsc" not in boxes:
        raise _damaged("no sample-to-chunk table")
    reader = _Reader(moov, *boxes[b"stsc"])
    reader.version_flags()
    runs = [reader.take(">III")[:2] for _ in range(reader.u32())]
    offsets = array("Q")
    sample = 0
    for run, (first_chunk, per_chunk) in enumerate(runs):
        last_chunk = runs[run + 1][0] - 1 if run + 1 < len(runs) else len(chunks)
        for chunk in range(first_chunk - 1, min(last_chunk, len(chunks))):
            position = chunks[chunk]
            for _ in range(per_chunk):
                if sample >= len(sizes):
                    return offsets
                offsets.append(position)
                position += sizes[sample]
                sample += 1
    if sample < len(sizes):
        raise _damaged("the chunk table holds fewer samples than the size table")
    return offsets


def _chunk_offsets(moov: memoryview, boxes: dict[bytes, tuple[int, int]]) -> array[int]:
    for kind, typecode in ((b"stco", "I"), (b"co64", "Q")):
        if kind in boxes:
            reader = _Reader(moov, *boxes[kind])
            reader.version_flags()
            return array("Q", reader.array(typecode, reader.u32()))
    raise _damaged("no chunk offset table")


def _runs(
    moov: memoryview, span: tuple[int, int] | None, count: int, *, signed: bool
) -> array[int] | None:
    """A run-length table (stts durations, ctts offsets) expanded to one value per sample."""
    if span is None:
        return None
    reader = _Reader(moov, *span)
    version, _ = reader.version_flags()
    values = array("q")
    fmt = ">Ii" if signed and version == 1 else ">II"
    for _ in range(reader.u32()):
        repeat, value = reader.take(fmt)
        if signed and version == 0 and value >= 1 << 31:
            value -= 1 << 32  # version 0 offsets are unsigned, but muxers write negatives there
        values.extend(array("q", [value]) * min(repeat, count - len(values)))
        if len(values) >= count:
            break
    if len(values) < count:
        values.extend(array("q", [values[-1] if values else 0]) * (count - len(values)))
    return values


def _sync(moov: memoryview, span: tuple[int, int] | None, count: int) -> set[int] | None:
    """The keyframes' sample numbers (from 0); None when every sample is one (no stss)."""
    if span is None:
        return None
    reader = _Reader(moov, *span)
    reader.version_flags()
    return {number - 1 for number in reader.array("I", reader.u32()) if 0 < number <= count}


# --- fragments (moof / traf / trun) ------------------------------------------------------------


def _fragment_samples(moof: memoryview, moof_offset: int, track: _Track) -> list[Sample]:
    samples: list[Sample] = []
    next_data = moof_offset  # where a traf without an explicit base starts (ISO 14496-12 8.8.7)
    for kind, start, end in _children(moof, 8, len(moof)):
        if kind != b"traf":
            continue
        tfhd = _child(moof, start, end, b"tfhd")
        if tfhd is None:
            raise _damaged("a track fragment without tfhd")
        track_id, base, defaults = _tfhd(moof, *tfhd, track.defaults)
        if track_id != track.track_id:
            continue
        if base is None:
            base = moof_offset if not samples else next_data
        elif base < 0:
            base = moof_offset
        tfdt = _child(moof, start, end, b"tfdt")
        if tfdt is not None:
            track.next_dts = _tfdt(moof, *tfdt)
        data = base
        for kind_run, run_start, run_end in _children(moof, start, end):
            if kind_run == b"trun":
                data = _trun(
                    moof, (run_start, run_end), base=base, data=data, defaults=defaults,
                    track=track, samples=samples,
                )  # fmt: skip
        next_data = data
    return samples


def _tfhd(
    moof: memoryview, start: int, end: int, trex: _Defaults
) -> tuple[int, int | None, _Defaults]:
    reader = _Reader(moof, start, end)
    _, flags = reader.version_flags()
    track_id = reader.u32()
    base: int | None = reader.u64() if flags & 0x1 else None
    description = reader.u32() if flags & 0x2 else trex.description
    duration = reader.u32() if flags & 0x8 else trex.duration
    size = reader.u32() if flags & 0x10 else trex.size
    sample_flags = reader.u32() if flags & 0x20 else trex.flags
    if base is None and flags & 0x20000:
        base = -1  # default-base-is-moof: the caller's moof offset
    return track_id, base, _Defaults(description, duration, size, sample_flags)


def _tfdt(moof: memoryview, start: int, end: int) -> int:
    reader = _Reader(moof, start, end)
    version, _ = reader.version_flags()
    return reader.u64() if version == 1 else reader.u32()


def _trun(
    moof: memoryview,
    span: tuple[int, int],
    *,
    base: int,
    data: int,
    defaults: _Defaults,
    track: _Track,
    samples: list[Sample],
) -> int:
    """Append the run's samples; return where the next run's data starts by default."""
    reader = _Reader(moof, *span)
    _, flags = reader.version_flags()
    count = reader.u32()
    if count > MAX_SAMPLES:
        raise _damaged(f"a fragment of {count} samples")
    position = base + reader.i32() if flags & 0x1 else data
    first_flags = reader.u32() if flags & 0x4 else None
    for i in range(count):
        duration = reader.u32() if flags & 0x100 else defaults.duration
        size = reader.u32() if flags & 0x200 else defaults.size
        sample_flags = reader.u32() if flags & 0x400 else defaults.flags
        if i == 0 and first_flags is not None:
            sample_flags = first_flags
        # Signed whatever the version says, as ffmpeg reads it (muxers write negatives in v0).
        offset = reader.i32() if flags & 0x800 else 0
        samples.append(
            Sample(
                offset=position,
                size=size,
                dts=track.next_dts - track.shift,
                pts=track.next_dts + offset - track.shift,
                keyframe=not sample_flags & (_NON_SYNC | _DEPENDS_YES),
            )
        )
        position += size
        track.next_dts += duration
    return position


# --- the fragment index at the end (mfra / tfra) -----------------------------------------------


def _listed_fragments(
    source: RangeSource, track: _Track, segments: list[int]
) -> list[tuple[int, bytes]] | None:
    """The fragments, found through an index of them — a ``sidx`` at the front (`segments`) or
    the ``mfra`` a muxer leaves at the end of a finished file — and read concurrently; None (walk
    the file instead) when there is none, or it or a fragment it names does not check out.
    ``mfra`` lists the fragments holding keyframes: the index then counts only their samples."""
    offsets = segments or _tfra_offsets(source, track.track_id)
    if not offsets:
        return None
    with ThreadPoolExecutor(max_workers=FRAGMENT_READERS, thread_name_prefix="lapse-index") as pool:
        found = list(pool.map(lambda offset: _moof_at(source, offset), offsets))
    if any(moof is None or not _decode_times_stated(moof[1], track.track_id) for moof in found):
        return None
    return [moof for moof in found if moof is not None]


def _whole_file_segments(source: RangeSource, sidx: bytes, start: int) -> list[int]:
    """Where each fragment starts, from a ``sidx`` that indexes them all; [] for one that
    indexes only its own segment (DASH writes one per fragment) or points at others."""
    offsets, end = _sidx_offsets(sidx, start)
    if not offsets or end > source.size:
        return []
    if end < source.size:
        after = source.read(end, 8)
        if len(after) < 8 or after[4:8] in (b"moof", b"styp", b"sidx", b"mdat"):
            return []  # more fragments follow than this sidx lists
    return offsets


def _sidx_offsets(sidx: bytes, start: int) -> tuple[list[int], int]:
    """Where each subsegment of a flat ``sidx`` starts, and where the last one ends."""
    view = memoryview(sidx)
    reader = _Reader(view, 8 if struct.unpack_from(">I", view)[0] != 1 else 16)
    try:
        version, _ = reader.version_flags()
        reader.take(">II")  # reference id, timescale
        _earliest, first_offset = reader.take(">QQ" if version == 1 else ">II")
        reader.take(">H")
        position = start + len(sidx) + first_offset
        offsets = []
        for _ in range(reader.u16()):
            reference, _duration, _sap = reader.take(">III")
            if reference >> 31:
                return [], 0  # a hierarchy of sidx boxes: walk instead
            offsets.append(position)
            position += reference & 0x7FFFFFFF
    except InvalidMediaError:
        return [], 0
    return offsets, position


def _tfra_offsets(source: RangeSource, track_id: int) -> list[int]:
    mfra = _mfra(source)
    if mfra is None:
        return []
    try:
        for kind, start, end in _children(mfra, 8, len(mfra)):
            offsets = _tfra(mfra, start, end, track_id) if kind == b"tfra" else None
            if offsets is not None:
                return sorted({o for o in offsets if 0 <= o < source.size})
    except InvalidMediaError:
        pass
    return []


def _mfra(source: RangeSource) -> memoryview | None:
    """The ``mfra`` box, found by the ``mfro`` box that ends the file and states its size; one
    read of the file's last 64 KiB usually holds both."""
    size = source.size
    tail_size = min(size, FIRST_READ_BYTES)
    tail = source.read(size - tail_size, tail_size) if size >= 16 else b""
    if len(tail) < 16 or tail[-12:-8] != b"mfro":
        return None
    (mfra_size,) = struct.unpack_from(">I", tail, len(tail) - 4)
    if not 16 <= mfra_size <= min(size, MAX_INDEX_BYTES):
        return None
    if mfra_size > len(tail):
        tail = source.read(size - mfra_size, mfra_size)
    mfra = memoryview(tail)[len(tail) - mfra_size :]
    if len(mfra) < mfra_size or bytes(mfra[4:8]) != b"mfra":
        return None
    return mfra


def _tfra(mfra: memoryview, start: int, end: int, track_id: int) -> list[int] | None:
    reader = _Reader(mfra, start, end)
    version, _ = reader.version_flags()
    if reader.u32() != track_id:
        return None
    lengths = reader.u32()
    skip = sum(((lengths >> shift) & 0x3) + 1 for shift in (4, 2, 0))
    offsets = []
    for _ in range(reader.u32()):
        _time, offset = reader.take(">QQ" if version == 1 else ">II")
        reader.bytes(skip)
        offsets.append(offset)
    return offsets


def _moof_at(source: RangeSource, offset: int) -> tuple[int, bytes] | None:
    """The moof at `offset` (after a segment's ``styp``, if any) and where it starts."""
    data = source.read(offset, WALK_READ_BYTES)
    if len(data) >= 8 and data[4:8] == b"styp":
        skip = struct.unpack_from(">I", data)[0]
        offset, data = offset + skip, data[skip:]
    if len(data) < 8 or data[4:8] != b"moof":
        return None
    (size,) = struct.unpack_from(">I", data)
    if not 8 <= size <= MAX_INDEX_BYTES:
        return None
    if size > len(data):
        data = source.read(offset, size)
    return (offset, data[:size]) if len(data) >= size else None


def _decode_times_stated(moof: bytes, track_id: int) -> bool:
    """Every traf of the track says its decode time (tfdt): fragments can be read apart."""
    view = memoryview(moof)
    try:
        for kind, start, end in _children(view, 8, len(view)):
            if kind != b"traf":
                continue
            tfhd = _child(view, start, end, b"tfhd")
            if tfhd is None:
                return False
            (found,) = struct.unpack_from(">I", view, tfhd[0] + 4)
            if found == track_id and _child(view, start, end, b"tfdt") is None:
                return False
    except (InvalidMediaError, struct.error):
        return False
    return True


# --- codec configuration -----------------------------------------------------------------------


def parse_config(codec: Codec, config: bytes) -> tuple[int, tuple[bytes, ...]]:
    """(NAL length size, parameter sets) from an avcC or hvcC payload."""
    reader = _Reader(memoryview(config))
    if codec == "h264":
        reader.take(">BBBB")
        length_size = (reader.u8() & 0x3) + 1
        sets = [reader.bytes(reader.u16()) for _ in range(reader.u8() & 0x1F)]
        sets += [reader.bytes(reader.u16()) for _ in range(reader.u8())]
        return length_size, tuple(sets)
    reader.take(">B")
    reader.bytes(20)
    length_size = (reader.u8() & 0x3) + 1
    sets = []
    for _ in range(reader.u8()):
        reader.u8()
        sets += [reader.bytes(reader.u16()) for _ in range(reader.u16())]
    return length_size, tuple(sets)
