"""The timelapse options a user may ask for (API.md, "Timelapse options"). Pure.

A timelapse's length is either `targetSeconds` (a length) or `speed` (a speed-up factor), never
both; `RenderOptions` holds the rest: output frame rate and resolution, skip idle stretches,
burn in a timestamp, even out brightness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FPS_CHOICES = (24, 25, 30, 50, 60)
# The output's short side at most this many pixels (the long side at most 16:9 of it).
RESOLUTIONS = {"720p": 720, "1080p": 1080, "1440p": 1440, "2160p": 2160}
DEFAULT_FPS = 30
DEFAULT_RESOLUTION = "1080p"
MIN_SPEED = 2.0
MAX_SPEED = 100_000.0
_FLAGS = {"skipIdle": "skip_idle", "timestamp": "timestamp", "deflicker": "deflicker"}


@dataclass(frozen=True)
class RenderOptions:
    fps: int = DEFAULT_FPS
    resolution: str = DEFAULT_RESOLUTION
    skip_idle: bool = False
    timestamp: bool = False
    deflicker: bool = False

    @property
    def short_side(self) -> int:
        return RESOLUTIONS[self.resolution]

    @property
    def long_side(self) -> int:
        return self.short_side * 16 // 9

    def as_api(self) -> dict[str, Any]:
        return {
            "fps": self.fps,
            "resolution": self.resolution,
            "skipIdle": self.skip_idle,
            "timestamp": self.timestamp,
            "deflicker": self.deflicker,
        }

    @classmethod
    def from_api(cls, raw: dict[str, Any] | None) -> RenderOptions:
        """From a stored or echoed map; absent fields (records made before v1.1) are defaults."""
        if not raw:
            return cls()
        return cls(
            fps=int(raw.get("fps", DEFAULT_FPS)),
            resolution=str(raw.get("resolution", DEFAULT_RESOLUTION)),
            **{name: bool(raw.get(field, False)) for field, name in _FLAGS.items()},
        )
