"""Reading ffmpeg's stream summary (pure): colour properties and Dolby Vision records."""

from __future__ import annotations

import pytest

from chalicelib.domain.color import ColorInfo
from chalicelib.media.probe import _color, _first_video_stream

pytestmark = pytest.mark.disable_socket


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        (
            "hevc (Main 10) (hvc1 / 0x31637668), yuv420p10le(tv, bt2020nc/bt2020/arib-std-b67, "
            "progressive), 3840x2160 [SAR 1:1 DAR 16:9], 30 fps",
            ColorInfo("yuv420p10le", "bt2020nc", "bt2020", "arib-std-b67", "tv"),
        ),
        (
            "h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), 1920x1080, 30 fps",
            ColorInfo("yuv420p", "bt709", "bt709", "bt709", "tv"),
        ),
        (
            "mjpeg (Baseline) (MJPG / 0x47504A4D), yuvj420p(pc, bt470bg/unknown/unknown), 640x480",
            ColorInfo("yuvj420p", "bt470bg", "", "", "pc"),
        ),
        ("vp8, yuv420p(progressive), 320x180, SAR 1:1 DAR 16:9", ColorInfo("yuv420p")),
        ("prores (LT) (apcs / 0x73637061), yuv422p10le(tv, progressive), 320x180",
         ColorInfo("yuv422p10le", range="tv")),
        ("rawvideo, yuv420p, 320x240, 30 fps", ColorInfo("yuv420p")),
    ],
)  # fmt: skip
def test_colour_properties_are_read_from_the_stream_line(rest: str, expected: ColorInfo) -> None:
    assert _color(rest, []) == expected


def test_a_dolby_vision_record_names_profile_and_base() -> None:
    stderr = "\n".join(
        [
            "Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'dv.mov':",
            "  Stream #0:0[0x1](und): Video: hevc (Main 10) (dvh1 / 0x31687664), "
            "yuv420p10le(tv), 1920x1080, 30 fps, 30 tbr, 600 tbn (default)",
            "    Side data:",
            "      DOVI configuration record: version: 1.0, profile: 8, level: 4, rpu flag: 1, "
            "el flag: 0, bl flag: 1, compatibility id: 4, compression: 0",
            "      Display Matrix: rotation of -90.00 degrees",
            "  Stream #0:1[0x2](und): Audio: aac (LC), 44100 Hz, stereo",
        ]
    )
    video = _first_video_stream(stderr)
    assert video is not None
    assert (video.color.dovi_profile, video.color.dovi_compatibility) == (8, 4)
    assert video.color.hdr == "hlg"  # untagged: its HLG base layer
    assert (video.rotation, video.has_matrix) == (90, True)
