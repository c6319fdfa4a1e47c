"""Joining the segments of a fanned-out render (domain/fanout.py) into the timelapse.

The segments were encoded alike (same size, frame rate, encoder settings), each starting with a
keyframe, so the concat demuxer and a stream copy join them without re-encoding; ``+faststart``
moves the index to the front as a whole render's output has it. The concat list names the
segments by relative paths in the job's own folder (the demuxer's ``safe`` mode), so it can open
nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chalicelib.errors import RenderError
from chalicelib.media.ffmpeg import base_args
from chalicelib.media.render import RenderResult, _run, _Watch, measured_result


def join_command(listing: Path, output: Path, *, ffmpeg: str) -> list[str]:
    return [
        *base_args(ffmpeg),
        "-loglevel", "error", "-nostats", "-progress", "pipe:1", "-stats_period", "0.5",
        "-f", "concat", "-safe", "1", "-protocol_whitelist", "file",
        "-i", str(listing),
        "-map", "0:v:0", "-c", "copy", "-map_metadata", "-1",
        "-movflags", "+faststart", "-f", "mp4", str(output),
    ]  # fmt: skip


def join_segments(
    segments: list[Path],
    output: Path,
    *,
    durations: list[float],
    ffmpeg: str,
    should_stop: Callable[[], bool],
    deadline: float | None = None,
) -> RenderResult:
    """Concatenate `segments` (files in one folder, in order, each lasting its `durations`) into
    `output`; measure the result.

    The durations are stated in the list: an MP4 segment with B-frames states one frame less than
    it lasts, and the demuxer would start the next segment a frame early (measured: 7.93 s for 8 s
    of frames in three segments, two frames' time lost at two seams)."""
    if not segments:
        raise RenderError("There was nothing to join.")
    folder = segments[0].parent
    if any(segment.parent != folder for segment in segments):
        raise ValueError("the segments must lie in one folder")
    listing = folder / "segments.txt"
    listing.write_text(
        "".join(
            f"file '{segment.name}'\nduration {seconds:.6f}\n"
            for segment, seconds in zip(segments, durations, strict=True)
        )
    )
    command = join_command(listing, output, ffmpeg=ffmpeg)
    frames = _run(
        command,
        folder / "ffmpeg-join.log",
        1,
        lambda _percent: None,
        _Watch(should_stop, deadline),
    )
    if not output.exists() or output.stat().st_size == 0:
        raise RenderError("Joining the rendered parts produced no output.")
    # (the stated rate matters only for a one-picture video: frames over the stated durations)
    return measured_result(output, frames, frames / max(sum(durations), 1e-9))
