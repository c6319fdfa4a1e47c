"""Helpers shared by the integration and end-to-end tests: free ports, media made with ffmpeg."""

from __future__ import annotations

import itertools
import math
import re
import socket
import subprocess
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-hide_banner", "-v", "error", "-y", *args], check=True, timeout=300)


def make_clip(
    path: Path, *, seconds: float, size: str = "640x360", gop: int = 30, fps: int = 30
) -> Path:
    """A synthetic H.264 clip (moving test pattern) with a keyframe every `gop` frames."""
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={fps}", "-t", str(seconds),
        "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop), "-pix_fmt", "yuv420p",
        str(path),
    )  # fmt: skip
    return path


def make_large_clip(path: Path, *, at_least_bytes: int) -> Path:
    """A real, playable H.264 file above `at_least_bytes`: lossless noise compresses to ~16 MB/s."""
    seconds = max(2, at_least_bytes // (16 * 1024 * 1024) + 1)
    ffmpeg(
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", "640x360", "-r", "30", "-i", "/dev/urandom",
        "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-g", "60",
        str(path),
    )  # fmt: skip
    assert path.stat().st_size > at_least_bytes, "the noise clip came out smaller than asked"
    return path


def describe(path_or_url: str) -> str:
    """ffmpeg's own description of a media file (there is no ffprobe)."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", path_or_url, "-map", "0", "-c", "copy", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return result.stderr


def count_frames(path_or_url: str) -> int:
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-i", path_or_url, "-map", "0:v:0", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    frames = [line for line in result.stderr.replace("\r", "\n").splitlines() if "frame=" in line]
    assert frames, result.stderr[-2000:]
    return int(frames[-1].split("frame=")[1].split()[0])


def rgb_pixels(
    path: Path | str,
    *,
    size: tuple[int, int],
    matrix: str = "bt709",
    full_range: bool = False,
    at_seconds: float | None = None,
    before: str = "",
) -> bytes:
    """One frame of `path` as RGB24 at `size` (area-averaged: colours, not edges), read with the
    stated YUV matrix and range rather than whatever the file claims; `before` filters first."""
    seek = ["-ss", f"{at_seconds:.3f}"] if at_seconds is not None else []
    # To RGB at full size first, then average: swscale's one-step YUV→small RGB misreads some
    # sizes (a 144x256 frame at 18x32 came out 12 dB off, at 9x16 and 36x64 it did not).
    scale = (
        f"scale=in_color_matrix={matrix}:in_range={'full' if full_range else 'limited'},"
        f"format=rgb24,scale={size[0]}:{size[1]}:flags=area"
    )
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-v", "error", *seek, "-i", str(path), "-frames:v", "1",
         "-vf", before + scale, "-f", "rawvideo", "-"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    assert len(result.stdout) == size[0] * size[1] * 3, result.stderr[-500:]
    return result.stdout


def psnr(a: bytes, b: bytes) -> float:
    """Peak signal-to-noise ratio of two equally sized 8-bit pictures, in dB."""
    assert len(a) == len(b)
    mse = sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) / len(a)
    return 10 * math.log10(255**2 / mse) if mse else 99.0


def mean_level(pixels: bytes) -> float:
    return sum(pixels) / len(pixels)


def mean_luma_per_frame(path: Path | str) -> list[float]:
    """Each frame's mean luma (ffmpeg signalstats YAVG, 0–255), in order."""
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-v", "error", "-i", str(path), "-map", "0:v:0", "-vf",
         "signalstats,metadata=mode=print:key=lavfi.signalstats.YAVG:file=-", "-f", "null", "-"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    return [float(line.split("=", 1)[1]) for line in result.stdout.splitlines() if "YAVG=" in line]


def luma_flicker(path: Path | str) -> float:
    """How much the mean luma jumps from one frame to the next, on average (0–255 levels)."""
    levels = mean_luma_per_frame(path)
    assert len(levels) > 1, f"{path}: fewer than two frames"
    return sum(abs(b - a) for a, b in itertools.pairwise(levels)) / (len(levels) - 1)


def combing(path: Path | str, *, frames: int = 5) -> float:
    """How combed the first `frames` frames look (interlaced pictures shown as they are): the
    mean difference between neighbouring lines (the two fields) over that between lines two
    apart (one field), luma at full size. Combed motion: well above 1; a progressive or
    deinterlaced picture: below 1."""
    probe = describe(str(path))
    width, height = (int(v) for v in re.findall(r", (\d+)x(\d+)", probe)[0])
    result = subprocess.run(
        [FFMPEG, "-hide_banner", "-v", "error", "-i", str(path), "-frames:v", str(frames),
         "-vf", "format=gray", "-f", "rawvideo", "-"],
        capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    plane = width * height
    fields = same = 0
    for start in range(0, len(result.stdout) - plane + 1, plane):
        rows = [result.stdout[start + y * width : start + (y + 1) * width] for y in range(height)]
        for y in range(height - 2):
            fields += sum(abs(a - b) for a, b in zip(rows[y], rows[y + 1], strict=True))
            same += sum(abs(a - b) for a, b in zip(rows[y], rows[y + 2], strict=True))
    return fields / max(same, 1)
