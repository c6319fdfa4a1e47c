"""Finding the ffmpeg binary and the hardened options every invocation on untrusted input uses."""

from __future__ import annotations

import os
import re
from pathlib import Path

# Demuxers lapse reads. The mov demuxer's name lists the ISO-BMFF flavours; matroska covers webm.
# mpegts (camcorders' .mts/.m2ts, 188- or 192-byte packets) is a binary container naming no other
# file; HLS playlists (the hls demuxer), concat scripts and text stay out.
ALLOWED_DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi,mpegts"
LOCAL_PROTOCOLS = "file"
# http(s) over tcp/tls is all a presigned GET with range requests needs.
URL_PROTOCOLS = "http,https,tcp,tls"
LAMBDA_LAYER_FFMPEG = Path("/opt/bin/ffmpeg")

# Log lines that carry no reason: progress, the banner, and ffmpeg's own closing summary.
_NOISE = re.compile(r"^(\s|frame=|size=|video:|Conversion failed|Exiting|\[out#)")


def locate_ffmpeg(configured: str | None = None) -> str:
    """The ffmpeg to run: `configured` (LAPSE_FFMPEG), else the Lambda layer's, else imageio's."""
    if configured:
        return configured
    if LAMBDA_LAYER_FFMPEG.exists():
        return str(LAMBDA_LAYER_FFMPEG)
    import imageio_ffmpeg  # noqa: PLC0415 - only needed off Lambda

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def input_args(
    source: str, *, max_pixels: int | None = None, input_format: str | None = None
) -> list[str]:
    """Options placed before ``-i`` plus ``-i`` itself, for a local path or an http(s) URL.

    The demuxer is whitelisted (an HLS playlist or concat script named .mp4 is refused before it
    opens anything), and so is the protocol (a local path may only read files; a URL only http(s)).
    `input_format` names the demuxer the probe found, so a render opens the bytes the same way.
    """
    args = ["-format_whitelist", ALLOWED_DEMUXERS]
    if input_format is not None:
        args += ["-f", input_format]
    if max_pixels is not None:
        args += ["-max_pixels", str(max_pixels)]
    if is_url(source):
        args += [
            "-protocol_whitelist",
            URL_PROTOCOLS,
            "-seekable",
            "1",
            "-multiple_requests",
            "1",
            "-reconnect",
            "1",
            "-reconnect_on_network_error",
            "1",
            "-reconnect_delay_max",
            "4",
            "-rw_timeout",
            "30000000",
            "-i",
            source,
        ]
    else:
        # "file:" keeps a name like "x:y.mp4" from being read as protocol "x".
        args += ["-protocol_whitelist", LOCAL_PROTOCOLS, "-i", "file:" + os.path.abspath(source)]
    return args


def base_args(ffmpeg: str) -> list[str]:
    return [ffmpeg, "-hide_banner", "-nostdin", "-y"]


def stderr_reason(stderr: str, *, limit: int = 200) -> str:
    """The most telling line of ffmpeg's stderr, short enough for a user-facing message."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    meaningful = [line for line in lines if not _NOISE.match(line)]
    if not meaningful:
        return "ffmpeg failed without a message"
    reason = re.sub(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*", "", meaningful[-1])
    return reason[:limit]


def stderr_tail(stderr: str, *, lines: int = 30) -> str:
    """The last lines of stderr, for logs."""
    return "\n".join(stderr.splitlines()[-lines:])
