"""Colour and orientation decisions (pure): what is HDR, which matrix, which filters."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from chalicelib.domain.color import ColorInfo
from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import RenderPlan, SourceInfo, plan_timelapse
from chalicelib.media import probe
from chalicelib.media.picture import TONEMAP, deinterlacing, orientation_filters, picture_filters

pytestmark = pytest.mark.disable_socket

HLG = ColorInfo("yuv420p10le", "bt2020nc", "bt2020", "arib-std-b67", "tv")
PQ = ColorInfo("yuv420p10le", "bt2020nc", "bt2020", "smpte2084", "tv")


def plan_for(
    color: ColorInfo, *, width: int = 3840, height: int = 2160, rotation: int = 0,
    field_order: str = "",
):  # fmt: skip
    source = SourceInfo(
        width=width, height=height, rotation=rotation, fps=30.0, duration_seconds=60.0,
        codec="hevc", format_name="mov,mp4,m4a,3gp,3g2,mj2", size_bytes=100_000_000,
        keyframe_interval_seconds=1.0, keyframe_count=30, color=color, field_order=field_order,
    )  # fmt: skip
    return plan_timelapse(source, 10, Limits())


@pytest.mark.parametrize(
    ("color", "hdr"),
    [
        (HLG, "hlg"),
        (PQ, "pq"),
        (ColorInfo("yuv420p"), None),
        (ColorInfo("yuv420p10le", "bt2020nc", "bt2020", "bt2020-10", "tv"), None),
        # Dolby Vision profile 8: an untagged stream falls back to its base layer's transfer
        (ColorInfo("yuv420p10le", dovi_profile=8, dovi_compatibility=4), "hlg"),
        (ColorInfo("yuv420p10le", dovi_profile=8, dovi_compatibility=1), "pq"),
        (ColorInfo("yuv420p10le", transfer="arib-std-b67", dovi_profile=8, dovi_compatibility=1),
         "hlg"),
    ],
)  # fmt: skip
def test_hdr_is_named_by_its_transfer(color: ColorInfo, hdr: str | None) -> None:
    assert color.hdr == hdr


def test_dolby_vision_without_a_base_picture_is_refused_with_a_reason() -> None:
    profile5 = ColorInfo("yuv420p10le", dovi_profile=5, dovi_compatibility=0)
    assert profile5.unreadable_reason is not None
    assert "Dolby Vision profile 5" in profile5.unreadable_reason
    assert ColorInfo("yuv420p10le", dovi_profile=8, dovi_compatibility=4).unreadable_reason is None
    assert PQ.unreadable_reason is None


@pytest.mark.parametrize(
    ("pixel_format", "depth"),
    [("yuv420p", 8), ("yuvj420p", 8), ("yuv420p10le", 10), ("yuv422p10le", 10), ("p010le", 10),
     ("yuv444p12le", 12)],
)  # fmt: skip
def test_bit_depth(pixel_format: str, depth: int) -> None:
    assert ColorInfo(pixel_format).bit_depth == depth


def test_untagged_pictures_are_read_as_players_read_them() -> None:
    assert ColorInfo("yuv420p").swscale_matrix(480) == "bt601"
    assert ColorInfo("yuv420p").swscale_matrix(1080) == "bt709"
    assert ColorInfo("yuv420p", matrix="smpte170m").swscale_matrix(1080) == "bt601"
    assert ColorInfo("yuvj420p", matrix="bt470bg", range="pc").full_range


def test_hdr_is_tone_mapped_at_the_output_size_and_tagged_bt709() -> None:
    filters = picture_filters(plan_for(HLG))
    assert filters[0].startswith("zscale=w=1920:h=1080:")
    assert "tin=arib-std-b67" in filters[0]
    assert TONEMAP in filters
    assert any("d=error_diffusion" in f for f in filters)  # dithered to 8 bits
    assert filters[-2:] == [
        "format=yuv420p",
        "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv",
    ]


def test_sdr_needs_one_scale_and_no_tone_map() -> None:
    filters = picture_filters(plan_for(ColorInfo("yuvj420p", "bt470bg", range="pc"), height=480,
                                       width=640))  # fmt: skip
    assert TONEMAP not in filters
    assert filters[0] == (
        "scale=640:480:in_color_matrix=bt601:out_color_matrix=bt709:in_range=full:out_range=limited"
    )


def test_wide_gamut_sdr_is_converted_without_a_tone_map() -> None:
    filters = picture_filters(plan_for(ColorInfo("yuv420p10le", "bt2020nc", "bt2020", "bt2020-10")))
    assert "zscale=p=bt709" in filters
    assert TONEMAP not in filters


@pytest.mark.parametrize(
    ("rotation", "mirrored"), list(itertools.product((0, 90, 180, 270), (False, True)))
)
def test_orientation_filters_are_what_the_cli_inserts_for_the_same_matrix(
    rotation: int, mirrored: bool
) -> None:
    # The probe reads (rotation, mirrored) back from the filters the CLI inserts; the paths that
    # do not autorotate insert these: both tables must agree
    filters = ",".join(orientation_filters(rotation, mirrored))
    if (rotation, mirrored) == (0, False):
        assert filters == ""  # nothing to turn (and no matrix, so the probe never asks)
        return
    assert probe._AUTOROTATE[filters] == (
        rotation,
        mirrored,
    )


def camcorder_1080i(*, duration_seconds: float, target_seconds: float) -> RenderPlan:
    """The plan of a camcorder's 1080i25 MPEG-TS, top field first, keyframe every second."""
    source = SourceInfo(
        width=1920, height=1080, rotation=0, fps=25.0, duration_seconds=duration_seconds,
        codec="h264", format_name="mpegts", keyframe_interval_seconds=1.0, keyframe_count=30,
        field_order="tff",
    )  # fmt: skip
    return plan_timelapse(source, target_seconds, Limits())


def test_an_interlaced_source_is_deinterlaced_spatially_before_it_is_scaled() -> None:
    # Given a camcorder's 1080i stream, top field first
    plan = camcorder_1080i(duration_seconds=600.0, target_seconds=10)
    filters = picture_filters(plan)
    # Then its frames flagged interlaced are deinterlaced within the frame (keyframes seconds
    # apart share no motion to follow), one frame out per frame in, at the stored size
    assert filters[0] == "estdif=mode=frame:parity=auto:deint=interlaced"
    assert filters[1].startswith("scale=1920:1080:")
    # And HDR goes the same way: deinterlaced before the tone map's scale
    assert picture_filters(replace(plan, color=HLG))[0] == filters[0]
    assert deinterlacing(plan) == []


def test_where_every_frame_is_decoded_an_interlaced_source_is_deinterlaced_before_sampling():
    # Given the same 1080i stream sampled from every frame (a timelapse near its own length)
    plan = camcorder_1080i(duration_seconds=60.0, target_seconds=50)
    assert plan.strategy == "decode_all"
    # Then every decoded frame goes through the temporal deinterlacer (its neighbours are there;
    # ~45x cheaper a frame than the spatial one) and the kept frames through nothing more
    assert deinterlacing(plan) == ["bwdif=mode=send_frame:parity=auto:deint=interlaced"]
    assert not any(f.startswith("estdif") for f in picture_filters(plan))


@pytest.mark.parametrize("field_order", ["progressive", ""])
def test_a_progressive_source_gets_no_deinterlacer(field_order: str) -> None:
    plan = plan_for(ColorInfo("yuv420p"), width=1920, height=1080, field_order=field_order)
    assert not plan.interlaced
    filters = picture_filters(plan)
    assert not any(f.startswith(("estdif", "bwdif", "yadif")) for f in filters)
    assert filters[0].startswith("scale=1920:1080:")
