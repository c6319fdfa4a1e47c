"""The format corpus: one small file of each kind people upload, made with the bundled ffmpeg.

Each kind is a few seconds at a small size, so the whole corpus is made in seconds and every
test that uses it stays fast. The picture each kind *shows* (after its display matrix) is
testsrc2 upright at `display` size; `reference_frame` decodes the first frame of that picture
straight from lavfi, so a test can compare a render against what the source was made from, not
against another run of the same pipeline.

    python -m tests.corpus DIR    # writes every kind into DIR (to look at them, or bench them)
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support import FFMPEG

SECONDS = 4
FPS = 30
# lavfi sources: the moving test pattern and a tone for the kinds that carry audio.
# The white box (bottom left) tells every turn and mirror apart; testsrc2's bars alone are
# nearly the same upside down.
_PATTERN = (
    "{pattern}=size={w}x{h}:rate={fps}:duration={seconds},"
    "drawbox=x=0:y=ih*3/4:w=iw/3:h=ih/4:color=white:t=fill"
)
_TONE = "sine=frequency=440:duration={seconds}"
# SDR BT.709 → HDR: to linear light, BT.2020 primaries, then the transfer, with SDR white at
# HDR reference white (203 nits, ITU-R BT.2408): what a phone's HDR picture of the scene holds.
_SDR_IN = (
    "scale=out_color_matrix=bt709:out_range=tv,format=yuv420p,"
    "setparams=colorspace=bt709:color_trc=bt709:color_primaries=bt709:range=tv"
)
_TO_HDR = (
    _SDR_IN + ",zscale=t=linear:npl=203,format=gbrpf32le,zscale=p=bt2020:npl=203,"
    "zscale=t={trc}:m=bt2020nc:r=tv:npl=203,format=yuv420p10le"
)


@dataclass(frozen=True)
class Kind:
    """One kind of upload: how to make it, how it is named and labelled, what it shows."""

    name: str
    filename: str
    content_type: str
    what: str  # for people: the README's table
    display: tuple[int, int]  # width, height as shown (after rotation)
    make: Callable[[Kind, Path], None]
    hdr: str | None = None  # "hlg" | "pq"
    mirrored: bool = False
    rotation: int = 0  # clockwise degrees a player turns the stored picture
    seconds: float = SECONDS
    pattern: str = "testsrc2"  # testsrc2 rounds sizes to even; testsrc draws odd ones

    def build(self, directory: Path) -> Path:
        path = directory / self.filename
        if not path.exists():
            self.make(self, path)
        return path

    @property
    def stored(self) -> tuple[int, int]:
        w, h = self.display
        return (h, w) if self.rotation in (90, 270) else (w, h)


def run(*args: str) -> None:
    subprocess.run(
        [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args],
        check=True,
        timeout=600,
    )


def _pattern(kind: Kind, *, fps: int = FPS) -> list[str]:
    w, h = kind.display
    source = _PATTERN.format(pattern=kind.pattern, w=w, h=h, fps=fps, seconds=kind.seconds)
    return ["-f", "lavfi", "-i", source]


def _tone(kind: Kind) -> list[str]:
    return ["-f", "lavfi", "-i", _TONE.format(seconds=kind.seconds)]


# Display matrices (ffmpeg's -display_rotation counter-clockwise, -display_hflip), and the filter
# that stores a picture so that the matrix shows it upright again: (rotation, mirrored) → both.
_STORE: dict[tuple[int, bool], tuple[list[str], str]] = {
    (0, False): ([], "null"),
    (90, False): (["-display_rotation", "-90"], "transpose=cclock"),
    (180, False): (["-display_rotation", "180"], "hflip,vflip"),
    (270, False): (["-display_rotation", "90"], "transpose=clock"),
    (0, True): (["-display_rotation", "0", "-display_hflip"], "hflip"),
    (90, True): (["-display_rotation", "-90", "-display_hflip"], "hflip,transpose=cclock"),
    (180, True): (["-display_rotation", "180", "-display_hflip"], "vflip"),
    (270, True): (["-display_rotation", "90", "-display_hflip"], "hflip,transpose=clock"),
}


def _with_matrix(kind: Kind, encoded: Path, path: Path) -> None:
    matrix, _ = _STORE[(kind.rotation, kind.mirrored)]
    run(*matrix, "-i", str(encoded), "-c", "copy", str(path))
    encoded.unlink()


def _store_filter(kind: Kind) -> str:
    return _STORE[(kind.rotation, kind.mirrored)][1]


def make_h264(kind: Kind, path: Path, *, extra: tuple[str, ...] = (), gop: int = FPS) -> None:
    """H.264 + AAC; `extra` output options (pixel format, muxer flags)."""
    encoded = path.with_name("stored-" + path.name)
    run(
        *_pattern(kind), *_tone(kind), "-vf", _store_filter(kind),
        "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop), "-keyint_min", str(gop),
        "-sc_threshold", "0", *(extra or ("-pix_fmt", "yuv420p")), "-c:a", "aac", "-shortest",
        str(encoded),
    )  # fmt: skip
    _with_matrix(kind, encoded, path)


def make_hdr(kind: Kind, path: Path) -> None:
    """HEVC Main10 in BT.2020 with the HLG or PQ transfer, tagged as a phone tags it."""
    trc = {"hlg": "arib-std-b67", "pq": "smpte2084"}[kind.hdr or "hlg"]
    encoded = path.with_name("stored-" + path.name)
    x265 = "log-level=error"
    if kind.hdr == "pq":  # HDR10: mastering display and light levels, as cameras write them
        x265 += (
            ":hdr10=1:max-cll=1000,400:master-display="
            "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)"
        )
    run(
        *_pattern(kind), *_tone(kind),
        "-vf", _TO_HDR.format(trc=trc) + "," + _store_filter(kind),
        "-c:v", "libx265", "-preset", "ultrafast", "-x265-params", x265, "-g", str(FPS),
        "-color_primaries", "bt2020", "-color_trc", trc, "-colorspace", "bt2020nc",
        "-tag:v", "hvc1", "-c:a", "aac", "-shortest", str(encoded),
    )  # fmt: skip
    _with_matrix(kind, encoded, path)


def make_transport_stream(kind: Kind, path: Path) -> None:
    """An AVCHD-like camcorder file: H.264 + AAC in MPEG-TS (192-byte packets for .m2ts)."""
    m2ts = ["-mpegts_m2ts_mode", "1"] if path.suffix == ".m2ts" else []
    run(
        *_pattern(kind), *_tone(kind), "-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS),
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", "-f", "mpegts", *m2ts, str(path),
    )  # fmt: skip


def make_browser_webm(kind: Kind, path: Path) -> None:
    """What MediaRecorder writes: VP8 in WebM written as a live stream, so with no duration and
    no cues, millisecond timestamps, Opus audio."""
    with path.open("wb") as out:
        subprocess.run(
            [
                FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", *_pattern(kind),
                *_tone(kind), "-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8",
                "-b:v", "400k", "-c:a", "libopus", "-shortest", "-live", "1", "-f", "webm",
                "pipe:1",
            ],
            stdout=out, check=True, timeout=120,
        )  # fmt: skip


def make_vfr(kind: Kind, path: Path) -> None:
    """Variable frame rate with audio, as phones write: 30 and 15 frames a second in turn."""
    run(
        *_pattern(kind), *_tone(kind),
        "-vf", "select='not(mod(n\\,2))+lt(mod(t\\,2)\\,1)'",
        "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip


def make_long_gop_mkv(kind: Kind, path: Path) -> None:
    """A single keyframe for the whole clip (screen recorders, some cameras)."""
    make_h264(kind, path, gop=1000)


def make_prores(kind: Kind, path: Path) -> None:
    run(
        *_pattern(kind), *_tone(kind), "-c:v", "prores_ks", "-profile:v", "1",
        "-pix_fmt", "yuv422p10le", "-c:a", "pcm_s16le", "-shortest", str(path),
    )  # fmt: skip


def make_mjpeg_avi(kind: Kind, path: Path) -> None:
    """Full-range (JPEG) pictures in AVI with PCM sound: old cameras and webcams."""
    run(
        *_pattern(kind), *_tone(kind), "-c:v", "mjpeg", "-q:v", "4", "-pix_fmt", "yuvj420p",
        "-c:a", "pcm_s16le", "-shortest", str(path),
    )  # fmt: skip


def h264(*extra: str, gop: int = FPS) -> Callable[[Kind, Path], None]:
    return lambda kind, path: make_h264(kind, path, extra=extra, gop=gop)


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in [
        Kind("mp4", "phone.mp4", "video/mp4", "H.264 MP4", (320, 180), h264()),
        Kind(
            "hlg-portrait", "iphone-hdr.mov", "video/quicktime",
            "HEVC 10-bit HLG BT.2020 MOV, portrait (iPhone HDR)", (180, 320), make_hdr,
            hdr="hlg", rotation=90,
        ),
        Kind("pq", "hdr10.mp4", "video/mp4", "HEVC 10-bit PQ (HDR10) MP4", (320, 180), make_hdr,
             hdr="pq"),
        Kind(
            "front-camera", "selfie.mov", "video/quicktime",
            "H.264 MOV, portrait and mirrored (front camera)", (180, 320), h264(),
            rotation=90, mirrored=True,
        ),
        Kind("mts", "00001.MTS", "video/mp2t", "AVCHD .MTS: H.264 + AAC in MPEG-TS", (320, 180),
             make_transport_stream),
        Kind("m2ts", "00002.m2ts", "", "AVCHD .m2ts (192-byte packets), labelled \"\"",
             (320, 180), make_transport_stream),
        Kind("browser-webm", "recording.webm", "video/webm",
             "Browser recording: WebM VP8, no duration, no cues", (320, 180), make_browser_webm),
        Kind("fragmented", "fragmented.mp4", "video/mp4", "Fragmented MP4", (320, 180),
             h264("-pix_fmt", "yuv420p", "-movflags", "+frag_keyframe+empty_moov")),
        Kind("long-gop-mkv", "screen.mkv", "video/x-matroska",
             "MKV, one keyframe in the whole clip", (320, 180), make_long_gop_mkv),
        Kind("vfr", "vfr.mp4", "video/mp4", "Variable frame rate with audio", (320, 180),
             make_vfr),
        Kind("prores", "prores.mov", "video/quicktime", "ProRes 422 10-bit MOV", (320, 180),
             make_prores),
        Kind("mjpeg-avi", "camera.avi", "video/x-msvideo", "MJPEG AVI, full range", (320, 240),
             make_mjpeg_avi),
        Kind("odd-size", "odd.mkv", "application/octet-stream",
             "Odd width and height (4:4:4 MKV), labelled application/octet-stream", (331, 187),
             h264("-pix_fmt", "yuv444p"), pattern="testsrc"),
        Kind("yuv444", "444.mp4", "video/mp4", "H.264 4:4:4", (320, 180), h264("-pix_fmt",
             "yuv444p")),
    ]
}  # fmt: skip


def reference_frame(kind: Kind, path: Path, *, size: tuple[int, int] | None = None) -> Path:
    """The first frame of what `kind` shows, upright, as an SDR BT.709 PNG (at `size`)."""
    w, h = size or kind.display
    run(
        *_pattern(kind), "-frames:v", "1",
        "-vf", f"scale={w}:{h}:flags=bicubic,format=rgb24", str(path),
    )  # fmt: skip
    return path


def main(argv: list[str]) -> int:
    directory = Path(argv[0] if argv else "corpus")
    directory.mkdir(parents=True, exist_ok=True)
    for kind in KINDS.values():
        print(kind.build(directory))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
