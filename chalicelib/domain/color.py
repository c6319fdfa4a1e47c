"""What a source's pictures are made of, as its video stream states it (pure).

ffmpeg names colour properties as the container and codec tag them: the matrix (``bt709``,
``bt470bg``, ``bt2020nc``), the primaries (``bt709``, ``bt2020``), the transfer (``bt709``,
``arib-std-b67`` = HLG, ``smpte2084`` = PQ) and the range (``tv`` limited, ``pc`` full). Untagged
properties are ``""``. The output is always H.264 8-bit 4:2:0, BT.709, limited range.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Hdr = Literal["hlg", "pq"]

HLG = "arib-std-b67"
PQ = "smpte2084"
# Dolby Vision profile 8 carries an HDR10 (compatibility 1), SDR (2) or HLG (4) base layer.
_DOVI_BASE_TRANSFER = {1: PQ, 2: "bt709", 4: HLG}
# Below this height an untagged picture is taken as BT.601 (SD), at or above as BT.709 (HD),
# as players do.
HD_HEIGHT = 720


@dataclass(frozen=True)
class ColorInfo:
    pixel_format: str = ""
    matrix: str = ""
    primaries: str = ""
    transfer: str = ""
    range: str = ""
    dovi_profile: int | None = None
    dovi_compatibility: int | None = None

    @property
    def hdr(self) -> Hdr | None:
        transfer = self.effective_transfer
        if transfer == HLG:
            return "hlg"
        if transfer == PQ:
            return "pq"
        return None

    @property
    def effective_transfer(self) -> str:
        """The stated transfer, else the one a Dolby Vision base layer implies."""
        if self.transfer:
            return self.transfer
        return _DOVI_BASE_TRANSFER.get(self.dovi_compatibility or 0, "")

    @property
    def wide_gamut(self) -> bool:
        """BT.2020 primaries (or HDR, which implies them): a gamut conversion is due."""
        return self.primaries == "bt2020" or self.hdr is not None

    @property
    def full_range(self) -> bool:
        return self.range == "pc" or self.pixel_format.startswith("yuvj")

    @property
    def bit_depth(self) -> int:
        for depth in (16, 14, 12, 10, 9):
            if f"p{depth}" in self.pixel_format or f"{depth}le" in self.pixel_format:
                return depth
        return 8

    @property
    def unreadable_reason(self) -> str | None:
        """Why the colours cannot be shown right, if they cannot (Dolby Vision without a base)."""
        if self.dovi_profile is not None and not self.effective_transfer:
            return (
                f"This is a Dolby Vision profile {self.dovi_profile} video without an HDR10, "
                "HLG or SDR base picture; lapse cannot show its colours. Export it as HDR10, "
                "HLG or SDR and upload that."
            )
        return None

    def swscale_matrix(self, height: int) -> str:
        """The matrix to read SDR pictures with, in swscale's names; untagged by size."""
        named = {
            "bt709": "bt709",
            "bt470bg": "bt601",
            "smpte170m": "bt601",
            "fcc": "fcc",
            "smpte240m": "smpte240m",
            "bt2020nc": "bt2020",
            "bt2020c": "bt2020",
        }
        return named.get(self.matrix, "bt709" if height >= HD_HEIGHT else "bt601")
