"""The "ranges" strategy's reading side: fetch exactly the kept keyframes' bytes, as Annex B.

From the MP4 index (`mp4index.VideoIndex`) it chooses the keyframe each sampling window keeps —
the first keyframe whose time falls into a new window, the very choice ``select`` makes on a
keyframes-only decode — and reads those byte ranges from the source with a few threads,
neighbours merged into one read. Pieces come back in order: a bounded window of reads is in
flight, so memory does not grow with the input's length. Each keyframe becomes Annex B (start
codes instead of length prefixes, the parameter sets of ``avcC``/``hvcC`` in front), which one
ffmpeg decodes from a pipe (``-f h264``/``-f hevc``): the decoder sees the very packets a
keyframes-only decode of the file gives it, so the pictures are the same.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from chalicelib.domain.plan import RenderPlan
from chalicelib.errors import RenderError
from chalicelib.media.mp4index import Keyframe, VideoIndex
from chalicelib.media.ranges import RangeSource

# 16 requests in flight: ~300 keyframes at 20 ms to the first byte cost ~0.4 s of waiting, not 0.8.
CONCURRENCY = 16
# Neighbouring keyframes closer than this are read in one request: at ~80 MB/s and ~20 ms to the
# first byte, 256 KiB of unwanted bytes cost less than another request.
MERGE_GAP_BYTES = 256 * 1024
MAX_READ_BYTES = 4 * 1024 * 1024
WAIT_SECONDS = 0.25
_WINDOW_SLACK_SECONDS = 0.001
_START_CODE = b"\x00\x00\x00\x01"


@dataclass(frozen=True)
class _Read:
    """One ranged read and the keyframes inside it."""

    offset: int
    length: int
    keyframes: tuple[Keyframe, ...]


def choose_keyframes(keyframes: list[Keyframe], plan: RenderPlan) -> list[Keyframe]:
    """The keyframe each sampling window keeps: the first whose time opens a new window (a
    part's plan: of its own windows only)."""
    interval = plan.sample_interval_seconds
    chosen: list[Keyframe] = []
    last_window = plan.first_frame - 1
    for keyframe in keyframes:
        window = math.floor((keyframe.seconds + _WINDOW_SLACK_SECONDS) / interval)
        if window > last_window and not plan.is_dropped(keyframe.seconds):
            chosen.append(keyframe)
            last_window = window
            if len(chosen) == plan.frame_count:
                break
    return chosen


def plan_reads(keyframes: list[Keyframe]) -> list[_Read]:
    """Group keyframes, in order, into reads; neighbours close in the file share one."""
    reads: list[_Read] = []
    group: list[Keyframe] = []
    for keyframe in keyframes:
        if group:
            start = group[0].offset
            gap = keyframe.offset - (group[-1].offset + group[-1].size)
            end = max(keyframe.offset + keyframe.size, group[-1].offset + group[-1].size)
            if 0 <= gap <= MERGE_GAP_BYTES and end - start <= MAX_READ_BYTES:
                group.append(keyframe)
                continue
            reads.append(_group_read(group))
        group = [keyframe]
    if group:
        reads.append(_group_read(group))
    return reads


def _group_read(group: list[Keyframe]) -> _Read:
    start = group[0].offset
    end = max(k.offset + k.size for k in group)
    return _Read(start, end - start, tuple(group))


def annexb_keyframes(
    source: RangeSource,
    index: VideoIndex,
    plan: RenderPlan,
    check: Callable[[], None],
    *,
    stop: threading.Event,
    concurrency: int = CONCURRENCY,
) -> Iterator[bytes]:
    """Yield each kept keyframe as Annex B, in order, reading `source` with a few threads.

    `check` raises to stop (cancel, deadline) and is called while waiting; `stop` is set when
    this generator ends, so reads in flight let go of their connections. A read that fails after
    its retries raises RenderError.
    """
    chosen = choose_keyframes(index.keyframes, plan)
    if not chosen:
        raise RenderError("This video has no keyframe lapse could read.")
    prefix = b"".join(_START_CODE + ps for ps in index.parameter_sets)
    executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="lapse-range")
    try:
        for read, data in _in_order(source, plan_reads(chosen), executor, check, concurrency):
            for keyframe in read.keyframes:
                start = keyframe.offset - read.offset
                sample = data[start : start + keyframe.size]
                if len(sample) < keyframe.size:
                    raise RenderError(
                        f"The source ended inside a picture (byte {keyframe.offset}); "
                        "it may be incomplete."
                    )
                yield prefix + to_annexb(sample, index.nal_length_size)
    finally:
        stop.set()
        executor.shutdown(wait=False, cancel_futures=True)


def _in_order(
    source: RangeSource,
    reads: list[_Read],
    executor: ThreadPoolExecutor,
    check: Callable[[], None],
    window: int,
) -> Iterator[tuple[_Read, bytes]]:
    """The reads' bytes in order, with at most `window` reads in flight or waiting."""
    pending: deque[tuple[_Read, Future[bytes]]] = deque()
    upcoming = iter(reads)
    while True:
        while len(pending) < window and (read := next(upcoming, None)) is not None:
            pending.append((read, executor.submit(source.read, read.offset, read.length)))
        if not pending:
            return
        read, future = pending.popleft()
        while not future.done():
            check()
            wait([future], timeout=WAIT_SECONDS, return_when=FIRST_COMPLETED)
        check()
        yield read, future.result()


def to_annexb(sample: bytes, length_size: int) -> bytes:
    """Length-prefixed NAL units → start-code-prefixed ones; in-band parameter sets are kept."""
    out = bytearray()
    position = 0
    view = memoryview(sample)
    while position + length_size <= len(sample):
        length = int.from_bytes(view[position : position + length_size], "big")
        position += length_size
        if length == 0 or position + length > len(sample):
            break  # a damaged length: hand over what is sound, the decoder copes
        out += _START_CODE
        out += view[position : position + length]
        position += length
    return bytes(out)
