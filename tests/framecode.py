"""Clips whose frames carry their own number, and reading the numbers back from any render of
them: checks a timelapse frame by frame (which source frames it kept, none repeated or lost).

Each frame shows its index in binary as 16 boxes (2 rows of 8, white = 1) over the whole picture,
so any scaling that keeps the aspect ratio still reads it. Made with the bundled ffmpeg.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from chalicelib.media.ffmpeg import locate_ffmpeg

BITS = 16
_COLUMNS, _ROWS = 8, 2
_READ_WIDTH, _READ_HEIGHT = 160, 90


def make_indexed_clip(
    path: Path, *, seconds: float, fps: int = 30, size: str = "320x180", gop: int = 250
) -> Path:
    """An H.264 MP4 of `seconds` whose frame n shows n; a keyframe every `gop` frames."""
    width, height = (int(side) for side in size.split("x"))
    box_w, box_h = width // _COLUMNS, height // _ROWS
    boxes = ",".join(
        f"drawbox=x={(bit % _COLUMNS) * box_w}:y={(bit // _COLUMNS) * box_h}:w={box_w}:h={box_h}"
        f":color=white:t=fill:enable='gt(mod(floor(n/{2**bit}),2),0)'"
        for bit in range(BITS)
    )
    command = [
        locate_ffmpeg(), "-hide_banner", "-loglevel", "error", "-y",
        "-f", "lavfi", "-i", f"color=c=black:s={size}:r={fps}:d={seconds}",
        "-vf", boxes, "-c:v", "libx264", "-preset", "ultrafast",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
        "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path),
    ]  # fmt: skip
    subprocess.run(command, check=True, timeout=300)
    return path


def frame_indices(path: Path) -> list[int]:
    """The source frame number each frame of `path` shows, in order."""
    command = [
        locate_ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(path),
        "-vf", f"scale={_READ_WIDTH}:{_READ_HEIGHT},format=gray",
        "-f", "rawvideo", "pipe:1",
    ]  # fmt: skip
    raw = subprocess.run(command, check=True, capture_output=True, timeout=300).stdout
    size = _READ_WIDTH * _READ_HEIGHT
    box_w, box_h = _READ_WIDTH // _COLUMNS, _READ_HEIGHT // _ROWS
    numbers = []
    for start in range(0, len(raw) - size + 1, size):
        picture = raw[start : start + size]
        number = 0
        for bit in range(BITS):
            x = (bit % _COLUMNS) * box_w + box_w // 2
            y = (bit // _COLUMNS) * box_h + box_h // 2
            if picture[y * _READ_WIDTH + x] > 128:
                number |= 1 << bit
        numbers.append(number)
    return numbers


def expected_indices(frame_count: int, interval: float, fps: float, total_frames: int) -> list[int]:
    """The source frames a render keeps: the first of each sampling window (plan.py's select)."""
    kept: list[int] = []
    last_window = -1
    for n in range(total_frames):
        window = int((n / fps + 0.001) // interval)
        if window > last_window:
            kept.append(n)
            last_window = window
        if len(kept) == frame_count:
            break
    return kept
