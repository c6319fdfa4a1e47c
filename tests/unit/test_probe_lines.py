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


@pytest.mark.parametrize(
    ("rest", "field_order"),
    [
        ("h264 (High) ([27][0][0][0] / 0x001B), yuv420p(top first), 1920x1080 [SAR 1:1 DAR 16:9]",
         "tff"),
        ("mpeg2video (Main), yuv420p(tv, bt470bg, bottom first), 720x576 [SAR 16:15 DAR 4:3]",
         "bff"),
        ("dvvideo, yuv411p(bottom coded first (swapped)), 720x480 [SAR 8:9 DAR 4:3]", "tff"),
        ("h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), 1920x1080",
         "progressive"),
        ("vp8, yuv420p, 320x180, SAR 1:1 DAR 16:9", ""),
    ],
)  # fmt: skip
def test_the_field_order_is_read_and_is_no_colour(rest: str, field_order: str) -> None:
    video = _first_video_stream(f"  Stream #0:0: Video: {rest}, 30 fps")
    assert video is not None
    assert video.field_order == field_order
    # (a field order is not a colour name, swapped or not)
    assert video.color.matrix in ("", "bt470bg", "bt709")


@pytest.mark.parametrize(
    ("rest", "aspect"),
    [
        ("h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 720x480 [SAR 32:27 DAR 16:9], "
         "986 kb/s", (32, 27)),
        ("h264 (High), yuv420p(tv, bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9]", (1, 1)),
        # The container's aspect (MP4 pasp) follows the codec's when they differ: it is the one used
        ("h264 (High), yuv420p, 720x576 [SAR 1:1 DAR 5:4], SAR 64:45 DAR 16:9, 25 fps", (64, 45)),
        ("mpeg4 (Simple Profile), yuv420p, 320x240 [SAR 0:1 DAR 0:1]", (1, 1)),
        ("rawvideo, yuv420p, 320x240", (1, 1)),
    ],
)  # fmt: skip
def test_the_sample_aspect_is_read_from_the_stream_line(rest: str, aspect: tuple[int, int]) -> None:
    video = _first_video_stream(f"  Stream #0:0: Video: {rest}, 30 fps")
    assert video is not None
    assert video.sample_aspect == aspect
