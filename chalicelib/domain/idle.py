"""Finding idle stretches in the sampled frames (`skipIdle`). Pure.

Each sampled frame arrives small and grey (`ANALYSIS_SIZE`). A frame is idle when it looks like
one of the few pictures seen most recently: a screen left alone, or one whose only change
toggles back and forth (a blinking cursor, a blinking caret), matches; typing, scrolling or
anything new does not, however small it is on screen, because it makes a picture not seen
before. Runs of idle frames longer than a short beat are cut to that beat, so the cut stays
legible; what remains of each run is a range of source time the render leaves out.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

ANALYSIS_SIZE = (128, 72)
# A pixel has changed when its grey level moved by more than this (compression noise at this
# size stays well below; a word typed on a 1080p screen moves some of them by 20+).
CHANGED_LEVELS = 10
# A frame still matches a recent picture with at most this many changed pixels.
MATCHING_PIXELS = 2
# How many distinct recent pictures a frame is compared with (a cursor blinks between two).
RECENT_PICTURES = 3

Ranges = tuple[tuple[float, float], ...]


def idle_flags(frames: Sequence[bytes]) -> list[bool]:
    """For each frame, whether it shows nothing new against the recent pictures."""
    follower = IdleFollower(beat_frames=0)
    for frame in frames:
        follower.keep(frame)
    return follower.flags


class IdleFollower:
    """The same decision one frame at a time, as a render streams them (`keep`): a frame stays
    in unless it is idle and its idle run has already shown `beat_frames` frames, which is the
    cut `idle_ranges` makes of the finished `flags`."""

    def __init__(self, beat_frames: int) -> None:
        self.beat_frames = beat_frames
        self.flags: list[bool] = []
        self._recent: list[bytes] = []
        self._run = 0

    def keep(self, frame: bytes) -> bool:
        idle = any(_matches(frame, picture) for picture in self._recent)
        self.flags.append(idle)
        if not idle:
            self._recent = [frame, *self._recent][:RECENT_PICTURES]
            self._run = 0
            return True
        self._run += 1
        return self._run <= self.beat_frames


def _matches(frame: bytes, picture: bytes) -> bool:
    if frame == picture:
        return True
    changed = (1 for a, b in zip(frame, picture, strict=False) if abs(a - b) > CHANGED_LEVELS)
    return sum(itertools.islice(changed, MATCHING_PIXELS + 1)) <= MATCHING_PIXELS


def idle_ranges(
    flags: Sequence[bool], interval_seconds: float, beat_frames: int, duration_seconds: float
) -> Ranges:
    """Source-time ranges to leave out: each idle run beyond its first `beat_frames` frames.

    Frame i stands for the window [i·interval, (i+1)·interval) of the source.
    """
    ranges: list[tuple[float, float]] = []
    run_start: int | None = None
    for index, idle in enumerate([*flags, False]):
        if idle and run_start is None:
            run_start = index
        elif not idle and run_start is not None:
            cut_from = run_start + beat_frames
            if index > cut_from:
                end = duration_seconds if index == len(flags) else index * interval_seconds
                ranges.append((cut_from * interval_seconds, end))
            run_start = None
    return tuple(ranges)


def skipped_seconds(ranges: Ranges) -> float:
    return sum(end - start for start, end in ranges)
