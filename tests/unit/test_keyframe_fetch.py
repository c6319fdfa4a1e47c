"""The ranges strategy's reading side, on in-memory sources: which keyframes, which reads, in what
order, how much in flight, and the Annex B it hands to ffmpeg."""

from __future__ import annotations

import math
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.plan import RenderPlan
from chalicelib.errors import RenderCancelled, RenderError
from chalicelib.media.keyframe_fetch import (
    MAX_READ_BYTES,
    MERGE_GAP_BYTES,
    annexb_keyframes,
    choose_keyframes,
    plan_reads,
    to_annexb,
)
from chalicelib.media.mp4index import Keyframe, VideoIndex

pytestmark = pytest.mark.disable_socket


def a_plan(interval: float, frames: int) -> RenderPlan:
    return RenderPlan(
        strategy="ranges", sample_interval_seconds=interval, frame_count=frames,
        output_width=320, output_height=180, output_fps=30, expected_duration_seconds=frames / 30,
        speedup=1.0, crf=25, preset="superfast", x264_params="bframes=0",
        source_duration_seconds=interval * frames, codec="h264",
    )  # fmt: skip


def an_index(keyframes: list[Keyframe]) -> VideoIndex:
    return VideoIndex(
        codec="h264", timescale=15360, nal_length_size=4, parameter_sets=(b"\x67SPS", b"\x68PPS"),
        width=320, height=180, sample_count=len(keyframes), keyframes=keyframes,
        layout="moov-front",
    )  # fmt: skip


def select_keeps(times: list[float], interval: float, frames: int) -> list[float]:
    """What ffmpeg's select expression keeps of these frame times (the planner's window rule)."""
    kept: list[float] = []
    for t in times:
        window = math.floor((t + 0.001) / interval)
        if not kept or window > math.floor((kept[-1] + 0.001) / interval):
            kept.append(t)
    return kept[:frames]


@given(
    gaps=st.lists(st.floats(min_value=0.05, max_value=5.0), min_size=1, max_size=200),
    interval=st.floats(min_value=0.1, max_value=10.0),
    frames=st.integers(min_value=1, max_value=300),
)
def test_the_chosen_keyframes_are_the_ones_select_keeps(
    gaps: list[float], interval: float, frames: int
) -> None:
    times = [sum(gaps[:i]) for i in range(len(gaps))]
    keyframes = [Keyframe(t, i * 1000, 100) for i, t in enumerate(times)]

    chosen = choose_keyframes(keyframes, a_plan(interval, frames))

    assert [k.seconds for k in chosen] == select_keeps(times, interval, frames)


@given(
    st.lists(
        st.tuples(st.integers(min_value=0, max_value=2_000_000), st.integers(1, 3_000_000)),
        min_size=1,
        max_size=60,
    )
)
def test_reads_cover_each_keyframe_once_in_order_and_merge_only_neighbours(
    spans: list[tuple[int, int]],
) -> None:
    keyframes, offset = [], 0
    for i, (gap, size) in enumerate(spans):
        offset += gap
        keyframes.append(Keyframe(float(i), offset, size))
        offset += size

    reads = plan_reads(keyframes)

    assert [k for r in reads for k in r.keyframes] == keyframes
    for read in reads:
        for keyframe in read.keyframes:
            assert read.offset <= keyframe.offset
            assert keyframe.offset + keyframe.size <= read.offset + read.length
        if len(read.keyframes) > 1:
            assert read.length <= MAX_READ_BYTES
            for a, b in zip(read.keyframes, read.keyframes[1:], strict=False):
                assert b.offset - (a.offset + a.size) <= MERGE_GAP_BYTES


def test_length_prefixed_nal_units_become_start_codes() -> None:
    sample = b"\x00\x00\x00\x03abc" + b"\x00\x00\x00\x02de"
    assert to_annexb(sample, 4) == b"\x00\x00\x00\x01abc\x00\x00\x00\x01de"
    assert to_annexb(b"\x00\x02xy", 2) == b"\x00\x00\x00\x01xy"
    # a length running past the sample: what is sound is kept, the rest dropped
    assert to_annexb(b"\x00\x00\x00\x02de\x00\x00\x00\x09abc", 4) == b"\x00\x00\x00\x01de"


class FakeSource:
    """A source of `size` bytes whose reads take a moment; it notes reads started, at once."""

    def __init__(self, size: int, *, delay: float = 0.005, fail_at: int | None = None) -> None:
        self.size = size
        self._delay = delay
        self._fail_at = fail_at
        self._lock = threading.Lock()
        self.started = 0
        self.reads: list[int] = []

    def read(self, offset: int, length: int) -> bytes:
        with self._lock:
            self.started += 1
            self.reads.append(offset)
        time.sleep(self._delay)
        if self._fail_at is not None and offset >= self._fail_at:
            raise RenderError(f"Bytes {offset}– of the source could not be read after 3 tries")
        return (length - 4).to_bytes(4, "big") + b"x" * (length - 4)


def spaced_keyframes(count: int) -> list[Keyframe]:
    """Keyframes a second apart, 1 MB apart in the file: each its own read."""
    return [Keyframe(float(i), i * 1_000_000, 1000) for i in range(count)]


def test_keyframes_come_in_order_as_annexb_with_parameter_sets_first() -> None:
    source = FakeSource(10**9)
    keyframes = spaced_keyframes(20)

    out = list(
        annexb_keyframes(
            source, an_index(keyframes), a_plan(1.0, 20), lambda: None, stop=threading.Event()
        )
    )

    assert len(out) == 20
    assert all(p.startswith(b"\x00\x00\x00\x01\x67SPS\x00\x00\x00\x01\x68PPS\x00\x00\x00\x01")
               for p in out)  # fmt: skip
    assert sorted(source.reads) == [k.offset for k in keyframes]


def test_only_a_bounded_window_of_reads_runs_ahead_of_a_slow_consumer() -> None:
    # Given 200 keyframes and a consumer (ffmpeg) far slower than the reads
    source = FakeSource(10**9, delay=0.001)
    feed = annexb_keyframes(
        source, an_index(spaced_keyframes(200)), a_plan(1.0, 200), lambda: None,
        stop=threading.Event(), concurrency=4,
    )  # fmt: skip
    ahead = []
    for consumed, _ in enumerate(feed, start=1):
        time.sleep(0.002)
        ahead.append(source.started - consumed)
    # Then reads never run more than the window ahead: memory does not grow with the input
    assert max(ahead) <= 4
    assert source.started == 200


def test_a_stop_ends_the_feed_and_cancels_what_was_not_started() -> None:
    source = FakeSource(10**9, delay=0.05)
    stopped = threading.Event()

    def check() -> None:
        if stopped.is_set():
            raise RenderCancelled("The render was stopped.")

    stop = threading.Event()
    feed = annexb_keyframes(
        source, an_index(spaced_keyframes(100)), a_plan(1.0, 100), check, stop=stop, concurrency=4
    )
    next(feed)
    stopped.set()
    with pytest.raises(RenderCancelled):
        next(feed)
    time.sleep(0.2)
    assert stop.is_set()
    assert source.started <= 10


def test_a_read_that_fails_after_its_retries_fails_the_feed_with_its_reason() -> None:
    source = FakeSource(10**9, fail_at=5_000_000)
    feed = annexb_keyframes(
        source, an_index(spaced_keyframes(10)), a_plan(1.0, 10), lambda: None,
        stop=threading.Event(),
    )  # fmt: skip
    with pytest.raises(RenderError, match="could not be read after 3 tries"):
        list(feed)
