"""The product's limits (API.md, "Limits"). Pure data; settings.py fills it from the environment."""

from __future__ import annotations

from dataclasses import dataclass

MiB = 1024 * 1024
GiB = 1024 * MiB


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = 50 * GiB
    multipart_threshold_bytes: int = 100 * MiB
    min_part_bytes: int = 10 * MiB
    max_part_bytes: int = 100 * MiB
    max_parts: int = 10_000
    upload_url_seconds: int = 3600
    upload_window_seconds: int = 24 * 3600  # a record still awaiting its upload then fails
    download_url_seconds: int = 900
    max_pixels: int = 8192 * 4320
    max_width: int = 8192
    max_height: int = 8192
    max_source_seconds: float = 24 * 3600.0
    default_target_seconds: float = 30.0
    min_target_seconds: float = 1.0
    max_target_seconds: float = 600.0
    output_fps: int = 30
    output_max_side: int = 1920
