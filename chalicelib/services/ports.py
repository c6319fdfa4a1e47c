"""The roles the use cases depend on, with the values they carry. Adapters implement them; the
tests' in-memory fakes (tests/fakes.py) are the other implementations."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from chalicelib.domain.fanout import FanOut
from chalicelib.domain.idempotency import EarlierRequest
from chalicelib.domain.plan import RenderPlan, SourceInfo
from chalicelib.domain.timelapse import ErrorInfo, Stage, Status, Timelapse


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    content_type: str | None
    metadata: dict[str, str]
    etag: str | None = None


@dataclass(frozen=True)
class StoredPart:
    part_number: int
    etag: str
    size: int


@dataclass(frozen=True)
class PresignedUrl:
    url: str
    expires_at: datetime


class TimelapseRepository(Protocol):
    def create(self, timelapse: Timelapse) -> None: ...
    def get(self, timelapse_id: str) -> Timelapse | None: ...
    def get_owned(self, timelapse_id: str, owner_id: str) -> Timelapse: ...
    def list_by_project(
        self,
        owner_id: str,
        project_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        status: Status | None = None,
    ) -> tuple[list[Timelapse], str | None]: ...
    def find_expired_leases(self, now: datetime) -> Iterator[Timelapse]: ...
    def find_stale_pending(self, stage: Stage, before: datetime) -> Iterator[Timelapse]: ...
    def find_upload_overdue(self, created_before: datetime) -> Iterator[Timelapse]: ...
    def expire_upload(self, timelapse_id: str, error: ErrorInfo) -> Timelapse: ...
    def delete(self, timelapse_id: str) -> None: ...
    def mark_uploaded(
        self,
        timelapse_id: str,
        *,
        queue: bool,
        etag: str | None = None,
        size_bytes: int | None = None,
    ) -> Timelapse: ...
    def bind_client_upload(self, timelapse_id: str, upload_id: str) -> Timelapse: ...
    def requeue(self, timelapse_id: str) -> Timelapse: ...
    def claim(
        self, timelapse_id: str, token: str, lease_seconds: float, *, max_attempts: int = 3
    ) -> Timelapse: ...
    def heartbeat(
        self,
        timelapse_id: str,
        token: str,
        lease_seconds: float,
        *,
        stage: Stage | None = None,
        progress: int | None = None,
        source: dict[str, Any] | None = None,
        part_frames: tuple[int, int] | None = None,
    ) -> Timelapse: ...
    def fan_out(
        self, timelapse_id: str, token: str, fanout: FanOut, lease_seconds: float
    ) -> Timelapse: ...
    def finish_part(
        self, timelapse_id: str, token: str, part: int, *, key: str, frames: int
    ) -> Timelapse: ...
    def fail_part(self, timelapse_id: str, token: str, part: int) -> Timelapse: ...
    def complete(
        self,
        timelapse_id: str,
        token: str,
        *,
        processed_video_key: str,
        poster_key: str,
        output: dict[str, Any],
    ) -> Timelapse: ...
    def fail(self, timelapse_id: str, token: str, error: ErrorInfo) -> Timelapse: ...
    def fail_pending(self, timelapse_id: str, error: ErrorInfo) -> Timelapse: ...
    def fail_abandoned(self, timelapse_id: str, error: ErrorInfo, now: datetime) -> Timelapse: ...
    def expire_lease(
        self, timelapse_id: str, token: str, now: datetime, *, retry: bool, error: ErrorInfo
    ) -> Timelapse: ...
    def cancel(self, timelapse_id: str, error: ErrorInfo) -> Timelapse: ...


class IdempotencyKeys(Protocol):
    def claim(
        self, owner_id: str, key: str, fingerprint: str, now: datetime
    ) -> EarlierRequest | None: ...
    def finish(self, owner_id: str, key: str, timelapse_id: str) -> None: ...
    def release(self, owner_id: str, key: str) -> None: ...


class Storage(Protocol):
    bucket: str

    def presign_put(
        self, key: str, *, content_type: str, size_bytes: int | None, seconds: int
    ) -> PresignedUrl: ...
    def presign_part(
        self, key: str, upload_id: str, part_number: int, seconds: int
    ) -> PresignedUrl: ...
    def presign_get(
        self, key: str, seconds: int, *, filename: str | None = None
    ) -> PresignedUrl: ...
    def presign_request(
        self, method: str, params: dict[str, Any], seconds: int
    ) -> PresignedUrl: ...
    def create_multipart(self, key: str, *, content_type: str, metadata: dict[str, str]) -> str: ...
    def list_parts(self, key: str, upload_id: str) -> list[StoredPart]: ...
    def complete_multipart(
        self, key: str, upload_id: str, parts: Iterable[tuple[int, str]]
    ) -> None: ...
    def abort_multipart(self, key: str, upload_id: str) -> None: ...
    def list_multipart_uploads(self, prefix: str = "") -> list[tuple[str, str]]: ...
    def head(self, key: str) -> ObjectInfo | None: ...
    def upload_in_progress(self, key: str, upload_id: str) -> bool: ...
    def delete(self, *keys: str) -> None: ...
    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix` and abort its multipart uploads."""
        ...

    def download(self, key: str, path: Path) -> None: ...
    def upload_file(
        self,
        path: Path,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
        on_bytes: Callable[[int], None] | None = None,
    ) -> None: ...


class WorkQueue(Protocol):
    def send_process(self, timelapse_id: str) -> None: ...


class PartQueue(Protocol):
    """The processing queue as the worker fans a render out on it (domain/fanout.py)."""

    def send_part(self, timelapse_id: str, token: str, part: int) -> None: ...


class Notifier(Protocol):
    """Told of every terminal state (webhooks hang off this)."""

    def timelapse_ended(self, timelapse: Timelapse) -> None: ...


class NoNotifier:
    def timelapse_ended(self, timelapse: Timelapse) -> None:
        return None


# --- ffmpeg's side of the worker (adapters/media.py) ------------------------------------------


@dataclass(frozen=True)
class ReadCount:
    """Bytes and requests read from the original by ranges (not counted where ffmpeg reads)."""

    bytes_read: int = 0
    requests: int = 0


@dataclass(frozen=True)
class Described:
    """What describing an original found. `handle` is the adapter's own (the container's index,
    when it has a usable one), handed back to `Renderer.render` as it came."""

    info: SourceInfo
    indexed: bool
    reads: ReadCount
    handle: object = None
    # Every keyframe's time (seconds), when the container's index gave them.
    keyframes: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Rendered:
    """The output as measured from the file, not as planned."""

    width: int
    height: int
    fps: float
    duration_seconds: float
    frame_count: int
    size_bytes: int
    reads: ReadCount | None = None  # what a ranged render read of the original


class Renderer(Protocol):
    """Describe an original, render a plan of it, take a poster of the result."""

    def describe(self, url: str) -> Described: ...
    def render(
        self,
        url: str,
        output: Path,
        plan: RenderPlan,
        described: Described,
        *,
        work_dir: Path,
        on_progress: Callable[[int], None],
        should_stop: Callable[[], bool],
        deadline: float | None,
    ) -> Rendered: ...
    def render_skipping_idle(
        self,
        url: str,
        output: Path,
        plan: RenderPlan,
        described: Described,
        *,
        work_dir: Path,
        on_progress: Callable[[int], None],
        should_stop: Callable[[], bool],
        deadline: float | None,
    ) -> tuple[Rendered, RenderPlan]:
        """Render `plan` without its idle stretches, found in the same decode of its sampled
        frames; and the plan as rendered (`dropped`, `frame_count`)."""
        ...

    def find_idle(
        self,
        url: str,
        plan: RenderPlan,
        described: Described,
        *,
        work_dir: Path,
        should_stop: Callable[[], bool],
        deadline: float | None,
    ) -> tuple[tuple[float, float], ...]:
        """Source ranges (seconds) to leave out as idle, from `plan`'s sampled frames."""
        ...

    def poster(self, video: Path, poster: Path, *, at_seconds: float) -> None: ...
    def join(
        self,
        segments: list[Path],
        output: Path,
        *,
        durations: list[float],
        should_stop: Callable[[], bool],
        deadline: float | None,
    ) -> Rendered:
        """Concatenate the segments of a fanned-out render (files in one folder, in order, each
        lasting its `durations`)."""
        ...


# --- webhooks (adapters/webhooks.py) -------------------------------------------------------------


class DeliveryError(Exception):
    """The POST did not reach the receiver or got no answer in time (worth retrying)."""


class RefusedTarget(Exception):
    """The callback URL may not be called (not worth retrying)."""


@dataclass(frozen=True)
class DeliveryAnswer:
    status: int
    body: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class WebhookQueue(Protocol):
    def send(self, message: dict[str, Any], *, delay_seconds: int = 0) -> None: ...


@dataclass(frozen=True)
class WebhookFailure:
    """A webhook delivery lapse stopped trying: kept on its record (stored, not in the resource)."""

    delivery_id: str
    event: str
    attempts: int
    reason: str
    failed_at: datetime


class WebhookFailures(Protocol):
    def record_webhook_failure(self, timelapse_id: str, failure: WebhookFailure) -> bool:
        """Keeps the failure on the record; False when the record no longer exists."""
        ...


class WebhookSender(Protocol):
    def post(self, url: str, body: bytes, headers: dict[str, str]) -> DeliveryAnswer: ...
