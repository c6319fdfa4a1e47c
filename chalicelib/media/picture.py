"""The filters every render strategy shares between picking frames and encoding them.

`picture_filters` sizes each kept frame and turns it into what the output promises: 8-bit 4:2:0
BT.709, limited range. It sits after ``select``, so only kept frames pay for it:

- SDR: one ``scale`` that also converts the matrix (BT.601 → BT.709 for SD and untagged SD
  sources, as players read them) and the range (full-range MJPEG → limited).
- HDR (HLG, PQ; Dolby Vision profile 8 by its base layer) and other BT.2020 sources: ``zscale``
  to linear light at the output size, BT.2020 → BT.709 primaries, ``tonemap`` (HDR only), then
  BT.709 8-bit with error-diffusion dithering (no banding from the 10-bit source).

Tone-mapping curve, measured on the corpus's HLG and PQ clips (SDR BT.709 pictures placed at
HDR reference white, 203 nits, as BT.2408 places them): RGB PSNR against the SDR picture at
1/8 size (colour, not edges) and mean level (the SDR picture's is 121.2):
mobius 24.2 dB / 118; reinhard 21.6 / 113; hable 15.9 / 96 (a dark picture); clip 26.0 / 128
but everything above 100 nits is white, where mobius keeps 35 levels up to 500 nits.

Interlaced sources (camcorders, broadcast, DVD) are deinterlaced first, at the stored size, and
only the frames the decoder flags interlaced (``deint=interlaced``). The filter is spatial
(``estdif``, edge slope tracing within the frame): "keyframes" and "ranges" hand over keyframes
seconds apart, where a temporal one (yadif, bwdif, w3fdif) would blend unrelated pictures, and one
method for every strategy keeps their outputs alike. Measured against the 60p pictures a 30i clip
was woven from (320x240, lossless): scrolling, estdif 30.8 dB, bwdif 30.4, yadif 30.6, none 18.7;
slow motion, estdif 30.8, bwdif 32.3 (its one gain: still areas keep both fields), none 29.4.
A progressive source gets no filter.

`orientation_filters` turn a stored picture upright for paths that read frames without the ffmpeg
CLI's autorotation (raw keyframes from "ranges"); the CLI inserts exactly these for the same
display matrix.
"""

from __future__ import annotations

from chalicelib.domain.color import ColorInfo
from chalicelib.domain.plan import RenderPlan

TONEMAP = "tonemap=mobius:desat=0"
# One frame out per frame in, each field order as the frame says. Spatial, for kept keyframes
# seconds apart; ~77 ms a 1080 frame (2 cores).
DEINTERLACE = "estdif=mode=frame:parity=auto:deint=interlaced"
# Where every frame is decoded: temporal (neighbouring frames are there), before `select`, ~1.7 ms
# a 1080 frame. A 40-s 1080i clip → 30 s took 56 s with estdif on its 900 kept frames.
DEINTERLACE_ALL_FRAMES = "bwdif=mode=send_frame:parity=auto:deint=interlaced"
# Linear light 1.0 = this many nits going into the tone map (SDR white).
NOMINAL_PEAK_NITS = 100
# The last filter: the frames say what they now are, so the encoder tags the stream with it.
TAG_BT709 = "setparams=colorspace=bt709:color_primaries=bt709:color_trc=bt709:range=tv"
OUTPUT_COLOR_ARGS = [
    "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
    "-color_range", "tv",
]  # fmt: skip

_TURN: dict[tuple[int, bool], list[str]] = {
    (0, False): [],
    (90, False): ["transpose=clock"],
    (180, False): ["hflip", "vflip"],
    (270, False): ["transpose=cclock"],
    (0, True): ["hflip"],
    (90, True): ["transpose=cclock_flip"],
    (180, True): ["vflip"],
    (270, True): ["transpose=clock_flip"],
}
# zscale's names for the transfers it can linearise.
_ZSCALE_TRANSFER = {
    "arib-std-b67": "arib-std-b67",
    "smpte2084": "smpte2084",
    "bt709": "709",
    "smpte170m": "601",
    "bt2020-10": "2020_10",
    "bt2020-12": "2020_12",
}


def picture_filters(plan: RenderPlan) -> list[str]:
    """Kept frame → deinterlaced, output size, BT.709 SDR 8-bit 4:2:0 limited range. (Where
    every frame is decoded, the frames were deinterlaced before sampling: `deinterlacing`.)"""
    deinterlace = [DEINTERLACE] if plan.interlaced and plan.strategy != "decode_all" else []
    return [*deinterlace, *_sized_bt709(plan)]


def deinterlacing(plan: RenderPlan) -> list[str]:
    """What deinterlaces every decoded frame before sampling, where every frame is decoded."""
    return [DEINTERLACE_ALL_FRAMES] if plan.interlaced and plan.strategy == "decode_all" else []


def _sized_bt709(plan: RenderPlan) -> list[str]:
    width, height = plan.output_width, plan.output_height
    color = plan.color
    if color.wide_gamut:
        return _linear_light_chain(color, width, height)
    matrix = color.swscale_matrix(plan.source_height)
    source_range = "full" if color.full_range else "limited"
    return [
        f"scale={width}:{height}:in_color_matrix={matrix}:out_color_matrix=bt709"
        f":in_range={source_range}:out_range=limited",
        "format=yuv420p",
        TAG_BT709,
    ]


def _linear_light_chain(color: ColorInfo, width: int, height: int) -> list[str]:
    stated = [f"pin={color.primaries or 'bt2020'}", f"min={color.matrix or 'bt2020nc'}"]
    transfer = _ZSCALE_TRANSFER.get(color.effective_transfer)
    if transfer:
        stated.append(f"tin={transfer}")
    stated.append("rin=full" if color.full_range else "rin=limited")
    return [
        f"zscale=w={width}:h={height}:{':'.join(stated)}:t=linear:npl={NOMINAL_PEAK_NITS}",
        "format=gbrpf32le",
        "zscale=p=bt709",
        *([TONEMAP] if color.hdr else []),
        "zscale=t=bt709:m=bt709:r=limited:d=error_diffusion",
        "format=yuv420p",
        TAG_BT709,
    ]


def orientation_filters(rotation: int, mirrored: bool) -> list[str]:
    """Filters showing a stored picture as its display matrix says (clockwise, then mirror)."""
    return list(_TURN.get((rotation % 360, mirrored), []))
