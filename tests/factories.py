"""Domain objects for tests that need one without a store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from chalicelib.domain.plan import SourceInfo
from chalicelib.domain.timelapse import Stage, Status, Timelapse, UploadInfo, UploadMethod

TIMELAPSE_ID = "0193f0c2-0000-4000-8000-000000000001"
CREATED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def a_timelapse(**overrides: Any) -> Timelapse:
    """A freshly created PUT-upload timelapse (pending/awaiting_upload), `overrides` applied."""
    base = Timelapse(
        id=TIMELAPSE_ID,
        owner_id="user-1",
        project_id="p-42",
        status=Status.PENDING,
        stage=Stage.AWAITING_UPLOAD,
        content_type="video/mp4",
        size_bytes=1234,
        original_video_key=f"videos/{TIMELAPSE_ID}.mp4",
        created_at=CREATED,
        updated_at=CREATED,
        upload=UploadInfo(UploadMethod.PUT),
    )
    return replace(base, **overrides)


# What the probe finds in a 10-minute 1080p30 H.264 MP4 of 1234 bytes (the factory's size).
SOURCE = SourceInfo(
    width=1920,
    height=1080,
    rotation=0,
    fps=30.0,
    duration_seconds=600.0,
    codec="h264",
    format_name="mov,mp4,m4a,3gp,3g2,mj2",
    size_bytes=1234,
    keyframe_interval_seconds=2.0,
    keyframe_count=300,
)
