"""Describing a source before planning: ffmpeg's probe, and for MP4/MOV the container's index.

An H.264/HEVC MP4 or MOV is described from its own index (`mp4index`, a few ranged reads): the
keyframe spacing over the whole file, and where each keyframe lies, for the "ranges" render.
ffmpeg then only opens the header (no keyframe scan, which reads tens of MB over HTTP), while the
index is read: both are a few ranged reads in sequence, so over a link with 20 ms to the first
byte running them side by side saves the shorter. Any other file — or an index this reader cannot
use — is probed by ffmpeg alone, as before.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from chalicelib.domain.plan import SourceInfo
from chalicelib.errors import InvalidMediaError
from chalicelib.media.mp4index import IndexUnsupported, VideoIndex, looks_like_mp4, read_index
from chalicelib.media.probe import probe
from chalicelib.media.ranges import RangeSource, ReadStats, open_range_source

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DescribedSource:
    info: SourceInfo
    index: VideoIndex | None  # None: ffmpeg's demuxer must read this file
    index_reads: ReadStats


def describe_source(source: str, *, ffmpeg: str, max_pixels: int | None = None) -> DescribedSource:
    """Probe `source` (path or http(s) URL), reading its MP4 index when it has a usable one."""
    reader = open_range_source(source)
    index, info = None, None
    if looks_like_mp4(reader):
        index, info = _index_and_header(reader, source, ffmpeg=ffmpeg, max_pixels=max_pixels)
    if index is None or info is None:
        info = probe(source, ffmpeg=ffmpeg, max_pixels=max_pixels)
        return DescribedSource(info, None, reader.stats)
    info = replace(
        info,
        keyframe_interval_seconds=index.keyframe_spacing(),
        keyframe_count=len(index.keyframes),
    )
    return DescribedSource(info, index, reader.stats)


def _index_and_header(
    reader: RangeSource, source: str, *, ffmpeg: str, max_pixels: int | None
) -> tuple[VideoIndex | None, SourceInfo | None]:
    """The MP4 index and ffmpeg's header-only probe, read side by side; (None, None) when the
    index is of no use (ffmpeg must then scan the keyframes itself)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="lapse-probe") as pool:
        header = pool.submit(
            probe, source, ffmpeg=ffmpeg, max_pixels=max_pixels, scan_keyframes=False
        )
        index = _index(reader)
        if index is None:
            header.cancel()  # if already running, its outcome is dropped
            return None, None
        return index, header.result()


def _index(reader: RangeSource) -> VideoIndex | None:
    try:
        return read_index(reader)
    except IndexUnsupported:
        return None
    except InvalidMediaError as exc:
        # ffmpeg has the last word on a damaged file: its probe refuses it with its own reason,
        # or reads what this reader could not.
        logger.warning("MP4 index unusable; ffmpeg probes instead", extra={"reason": exc.message})
        return None
