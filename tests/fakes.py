"""In-memory implementations of the ports (chalicelib/services/ports.py), for unit tests.

Small, and honest where it matters: every transition is checked against the domain's transition
table (`allows`) under a lock, exactly as the repository's conditional writes are, so a fake
record refuses what DynamoDB would refuse (tests/integration/test_transitions.py proves the
table and the real table agree).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from chalicelib.domain.fanout import FanOut
from chalicelib.domain.idempotency import HOLD_SECONDS, KEEP_SECONDS, EarlierRequest
from chalicelib.domain.plan import RenderPlan, SourceInfo
from chalicelib.domain.timelapse import (
    ErrorInfo,
    Guard,
    Stage,
    Status,
    Timelapse,
    Transition,
    allows,
    utcnow,
)
from chalicelib.errors import ConflictError, NotFoundError, RenderCancelled
from chalicelib.services.ports import (
    Described,
    ObjectInfo,
    PresignedUrl,
    ReadCount,
    Rendered,
    StoredPart,
)

Clock = Callable[[], datetime]


class FakeRecords:
    """TimelapseRepository in a dict; each transition is one checked, atomic change."""

    def __init__(self, clock: Clock = utcnow) -> None:
        self.items: dict[str, Timelapse] = {}
        self.clock = clock
        self.writes: list[tuple[Transition, str]] = []
        self._lock = threading.Lock()

    # --- reads and plain writes -------------------------------------------------------------

    def create(self, timelapse: Timelapse) -> None:
        with self._lock:
            if timelapse.id in self.items:
                raise ConflictError(f"timelapse {timelapse.id} already exists")
            self.items[timelapse.id] = timelapse

    def get(self, timelapse_id: str) -> Timelapse | None:
        with self._lock:
            return self.items.get(timelapse_id)

    def get_owned(self, timelapse_id: str, owner_id: str) -> Timelapse:
        found = self.get(timelapse_id)
        if found is None or found.owner_id != owner_id:
            raise NotFoundError(f"no timelapse {timelapse_id}")
        return found

    def list_by_project(
        self,
        owner_id: str,
        project_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        status: Status | None = None,
    ) -> tuple[list[Timelapse], str | None]:
        with self._lock:
            mine = [
                t
                for t in self.items.values()
                if t.owner_id == owner_id
                and t.project_id == project_id
                and (status is None or t.status is status)
            ]
        mine.sort(key=lambda t: t.created_at, reverse=True)
        start = int(cursor) if cursor else 0
        page = mine[start : start + limit]
        more = start + limit < len(mine)
        return page, str(start + limit) if more else None

    def find_expired_leases(self, now: datetime) -> Iterator[Timelapse]:
        with self._lock:
            found = [
                t
                for t in self.items.values()
                if t.status is Status.PROCESSING
                and t.lease_expires_at is not None
                and t.lease_expires_at < now
            ]
        yield from found

    def find_stale_pending(self, stage: Stage, before: datetime) -> Iterator[Timelapse]:
        with self._lock:
            found = [
                t
                for t in self.items.values()
                if t.status is Status.PENDING and t.stage is stage and t.updated_at < before
            ]
        yield from found

    def find_upload_overdue(self, created_before: datetime) -> Iterator[Timelapse]:
        with self._lock:
            found = [
                t
                for t in self.items.values()
                if t.status is Status.PENDING
                and t.stage is Stage.AWAITING_UPLOAD
                and t.created_at < created_before
            ]
        yield from found

    def delete(self, timelapse_id: str) -> None:
        with self._lock:
            self.items.pop(timelapse_id, None)

    # --- transitions ----------------------------------------------------------------------------

    def _transition(
        self,
        timelapse_id: str,
        transition: Transition,
        changes: dict[str, Any],
        guard: Guard | None = None,
        *,
        also: Callable[[Timelapse], bool] = lambda _record: True,
    ) -> Timelapse:
        with self._lock:
            current = self.items.get(timelapse_id)
            if current is None or not allows(transition, current, guard) or not also(current):
                raise ConflictError(f"timelapse {timelapse_id} is not in the expected state")
            updated = replace(current, **changes, updated_at=self.clock())
            self.items[timelapse_id] = updated
            self.writes.append((transition, timelapse_id))
            return updated

    def _ending(self, status: Status, error: ErrorInfo) -> dict[str, Any]:
        return {
            "status": status,
            "stage": None,
            "error": error,
            "completed_at": self.clock(),
            "lease_owner": None,
            "lease_expires_at": None,
            "fanout": None,
        }

    def mark_uploaded(
        self,
        timelapse_id: str,
        *,
        queue: bool,
        etag: str | None = None,
        size_bytes: int | None = None,
    ) -> Timelapse:
        stage = Stage.QUEUED if queue else None
        changes: dict[str, Any] = {"stage": stage, "uploaded_at": self.clock()}
        if etag:
            changes["original_etag"] = etag
        if size_bytes is not None:
            changes["size_bytes"] = size_bytes
        return self._transition(timelapse_id, Transition.MARK_UPLOADED, changes)

    def bind_client_upload(self, timelapse_id: str, upload_id: str) -> Timelapse:
        return self._transition(
            timelapse_id,
            Transition.BIND_UPLOAD,
            {"client_upload_id": upload_id},
            also=lambda record: record.client_upload_id in {None, upload_id},
        )

    def requeue(self, timelapse_id: str) -> Timelapse:
        changes = {
            "status": Status.PENDING,
            "stage": Stage.QUEUED,
            "progress": 0,
            "attempts": 0,
            "error": None,
            "completed_at": None,
            "lease_owner": None,
            "lease_expires_at": None,
            "fanout": None,
        }
        return self._transition(timelapse_id, Transition.REQUEUE, changes)

    def claim(
        self, timelapse_id: str, token: str, lease_seconds: float, *, max_attempts: int = 3
    ) -> Timelapse:
        now = self.clock()
        current = self.get(timelapse_id)
        changes = {
            "status": Status.PROCESSING,
            "stage": Stage.PROBING,
            "progress": 0,
            "attempts": (current.attempts if current else 0) + 1,
            "lease_owner": token,
            "lease_expires_at": now + timedelta(seconds=lease_seconds),
            "started_at": now,
            "error": None,
            "fanout": None,
        }
        guard = Guard(now=now, max_attempts=max_attempts)
        return self._transition(timelapse_id, Transition.CLAIM, changes, guard)

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
    ) -> Timelapse:
        changes: dict[str, Any] = {
            "lease_expires_at": self.clock() + timedelta(seconds=lease_seconds)
        }
        if stage is not None:
            changes["stage"] = stage
        if progress is not None:
            changes["progress"] = progress
        if source is not None:
            changes["source"] = source
        if part_frames is not None:
            return self._part_change(
                timelapse_id, Transition.HEARTBEAT, token, changes, frames=part_frames
            )
        return self._transition(timelapse_id, Transition.HEARTBEAT, changes, Guard(token=token))

    def _part_change(
        self,
        timelapse_id: str,
        transition: Transition,
        token: str,
        changes: dict[str, Any],
        *,
        frames: tuple[int, int] | None = None,
        done: tuple[int, str] | None = None,
        failed: int | None = None,
    ) -> Timelapse:
        """One write on a fanned-out record's parts (the record's progress follows them)."""
        with self._lock:
            current = self.items.get(timelapse_id)
            fanout = current.fanout if current else None
            if (
                current is None
                or fanout is None
                or not allows(transition, current, Guard(token=token))
                or (done is not None and done[0] in fanout.done)
                or (failed is not None and failed in fanout.done)
            ):
                raise ConflictError(f"timelapse {timelapse_id} is not in the expected state")
            if frames is not None:
                fanout = replace(fanout, frames={**fanout.frames, frames[0]: frames[1]})
            if done is not None:
                part, key = done
                frames_done = fanout.parts[part].frame_count if part < len(fanout.parts) else 0
                fanout = replace(
                    fanout,
                    done=fanout.done | {part},
                    keys={**fanout.keys, part: key},
                    frames={**fanout.frames, part: frames_done},
                )
            if failed is not None:
                failures = {**fanout.failures, failed: fanout.failures.get(failed, 0) + 1}
                fanout = replace(fanout, failures=failures)
            updated = replace(
                current,
                **changes,
                fanout=fanout,
                progress=fanout.progress,
                updated_at=self.clock(),
            )
            self.items[timelapse_id] = updated
            self.writes.append((transition, timelapse_id))
            return updated

    def fan_out(
        self, timelapse_id: str, token: str, fanout: FanOut, lease_seconds: float
    ) -> Timelapse:
        changes = {
            "fanout": replace(fanout, done=frozenset(), keys={}, frames={}, failures={}),
            "stage": Stage.RENDERING,
            "progress": 0,
            "lease_expires_at": self.clock() + timedelta(seconds=lease_seconds),
        }
        return self._transition(timelapse_id, Transition.FAN_OUT, changes, Guard(token=token))

    def finish_part(
        self, timelapse_id: str, token: str, part: int, *, key: str, frames: int
    ) -> Timelapse:
        return self._part_change(timelapse_id, Transition.FINISH_PART, token, {}, done=(part, key))

    def fail_part(self, timelapse_id: str, token: str, part: int) -> Timelapse:
        return self._part_change(timelapse_id, Transition.FAIL_PART, token, {}, failed=part)

    def complete(
        self,
        timelapse_id: str,
        token: str,
        *,
        processed_video_key: str,
        poster_key: str,
        output: dict[str, Any],
    ) -> Timelapse:
        changes = {
            "status": Status.COMPLETE,
            "stage": None,
            "progress": 100,
            "processed_video_key": processed_video_key,
            "poster_key": poster_key,
            "output": output,
            "completed_at": self.clock(),
            "lease_owner": None,
            "lease_expires_at": None,
            "fanout": None,
        }
        return self._transition(timelapse_id, Transition.COMPLETE, changes, Guard(token=token))

    def fail(self, timelapse_id: str, token: str, error: ErrorInfo) -> Timelapse:
        changes = self._ending(Status.FAILED, error)
        return self._transition(timelapse_id, Transition.FAIL, changes, Guard(token=token))

    def fail_pending(self, timelapse_id: str, error: ErrorInfo) -> Timelapse:
        changes = self._ending(Status.FAILED, error)
        return self._transition(timelapse_id, Transition.FAIL_PENDING, changes)

    def fail_abandoned(self, timelapse_id: str, error: ErrorInfo, now: datetime) -> Timelapse:
        changes = self._ending(Status.FAILED, error)
        return self._transition(timelapse_id, Transition.FAIL_ABANDONED, changes, Guard(now=now))

    def expire_lease(
        self, timelapse_id: str, token: str, now: datetime, *, retry: bool, error: ErrorInfo
    ) -> Timelapse:
        guard = Guard(token=token, now=now)
        if not retry:
            changes = self._ending(Status.FAILED, error)
            return self._transition(timelapse_id, Transition.EXPIRE_LEASE, changes, guard)
        changes = {
            "status": Status.PENDING,
            "stage": Stage.QUEUED,
            "progress": 0,
            "lease_owner": None,
            "lease_expires_at": None,
            "fanout": None,
        }
        return self._transition(timelapse_id, Transition.EXPIRE_LEASE, changes, guard)

    def cancel(self, timelapse_id: str, error: ErrorInfo) -> Timelapse:
        changes = self._ending(Status.CANCELLED, error)
        return self._transition(timelapse_id, Transition.CANCEL, changes)

    def expire_upload(self, timelapse_id: str, error: ErrorInfo) -> Timelapse:
        changes = self._ending(Status.FAILED, error)
        return self._transition(timelapse_id, Transition.EXPIRE_UPLOAD, changes)


@dataclass
class _Multipart:
    key: str
    content_type: str
    parts: dict[int, bytes] = field(default_factory=dict)


class FakeStorage:
    """Storage in a dict of key → bytes; presigned URLs are recognisable fake addresses."""

    def __init__(self, bucket: str = "fake-bucket", clock: Clock = utcnow) -> None:
        self.bucket = bucket
        self.clock = clock
        self.objects: dict[str, tuple[bytes, str, dict[str, str]]] = {}
        self.uploads: dict[str, _Multipart] = {}
        self.deleted: list[str] = []
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes, content_type: str = "video/mp4") -> None:
        """What a client's upload would leave in the bucket."""
        with self._lock:
            self.objects[key] = (data, content_type, {})

    def _signed(self, what: str, seconds: int) -> PresignedUrl:
        return PresignedUrl(
            f"https://{self.bucket}.storage.test/{what}", self.clock() + timedelta(seconds=seconds)
        )

    def presign_put(
        self, key: str, *, content_type: str, size_bytes: int | None, seconds: int
    ) -> PresignedUrl:
        return self._signed(f"{key}?put&size={size_bytes}", seconds)

    def presign_part(
        self, key: str, upload_id: str, part_number: int, seconds: int
    ) -> PresignedUrl:
        return self._signed(f"{key}?uploadId={upload_id}&partNumber={part_number}", seconds)

    def presign_get(self, key: str, seconds: int, *, filename: str | None = None) -> PresignedUrl:
        return self._signed(f"{key}?get" + (f"&filename={filename}" if filename else ""), seconds)

    def presign_request(self, method: str, params: dict[str, Any], seconds: int) -> PresignedUrl:
        query = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        return self._signed(f"{method}?{query}", seconds)

    def create_multipart(self, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        with self._lock:
            upload_id = f"upload-{len(self.uploads) + 1}"
            self.uploads[upload_id] = _Multipart(key, content_type)
            return upload_id

    def put_part(self, upload_id: str, part_number: int, data: bytes) -> None:
        """What a client's PUT to a part URL would store."""
        with self._lock:
            self.uploads[upload_id].parts[part_number] = data

    def _upload(self, key: str, upload_id: str) -> _Multipart:
        upload = self.uploads.get(upload_id)
        if upload is None or upload.key != key:
            raise NotFoundError("the multipart upload is gone (completed or aborted)")
        return upload

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        with self._lock:
            upload = self._upload(key, upload_id)
            return [
                StoredPart(n, f'"etag-{n}"', len(data)) for n, data in sorted(upload.parts.items())
            ]

    def complete_multipart(
        self, key: str, upload_id: str, parts: Iterable[tuple[int, str]]
    ) -> None:
        with self._lock:
            upload = self._upload(key, upload_id)
            data = b"".join(upload.parts[n] for n, _etag in sorted(parts))
            self.objects[key] = (data, upload.content_type, {})
            del self.uploads[upload_id]

    def abort_multipart(self, key: str, upload_id: str) -> None:
        with self._lock:
            if upload_id in self.uploads and self.uploads[upload_id].key == key:
                del self.uploads[upload_id]

    def list_multipart_uploads(self, prefix: str = "") -> list[tuple[str, str]]:
        with self._lock:
            return [(u.key, uid) for uid, u in self.uploads.items() if u.key.startswith(prefix)]

    def head(self, key: str) -> ObjectInfo | None:
        with self._lock:
            found = self.objects.get(key)
        if found is None:
            return None
        data, content_type, metadata = found
        etag = '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'
        return ObjectInfo(key, len(data), content_type, dict(metadata), etag)

    def upload_in_progress(self, key: str, upload_id: str) -> bool:
        with self._lock:
            upload = self.uploads.get(upload_id)
            return upload is not None and upload.key == key

    def delete(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                if key and self.objects.pop(key, None) is not None:
                    self.deleted.append(key)

    def delete_prefix(self, prefix: str) -> None:
        for key, upload_id in self.list_multipart_uploads(prefix):
            self.abort_multipart(key, upload_id)
        with self._lock:
            keys = [key for key in self.objects if key.startswith(prefix)]
        self.delete(*keys)

    def download(self, key: str, path: Path) -> None:
        with self._lock:
            found = self.objects.get(key)
        if found is None:
            raise NotFoundError(f"no object {key}")
        path.write_bytes(found[0])

    def upload_file(
        self,
        path: Path,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        data = path.read_bytes()
        if on_bytes is not None:
            on_bytes(len(data))  # may raise to stop the transfer, as s3transfer's callback can
        with self._lock:
            self.objects[key] = (data, content_type, dict(metadata))


class FakeIdempotencyKeys:
    """IdempotencyKeys in a dict, with the adapter's rules: a key is free when new, when its
    24 hours are over, or when its first request died unfinished."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], tuple[str, str | None, datetime]] = {}
        self._lock = threading.Lock()

    def claim(
        self, owner_id: str, key: str, fingerprint: str, now: datetime
    ) -> EarlierRequest | None:
        with self._lock:
            found = self.entries.get((owner_id, key))
            if found is not None:
                print_, timelapse_id, since = found
                expired = now - since > timedelta(seconds=KEEP_SECONDS)
                died = timelapse_id is None and now - since > timedelta(seconds=HOLD_SECONDS)
                if not (expired or died):
                    return EarlierRequest(print_, timelapse_id)
            self.entries[(owner_id, key)] = (fingerprint, None, now)
            return None

    def finish(self, owner_id: str, key: str, timelapse_id: str) -> None:
        with self._lock:
            print_, _, since = self.entries[(owner_id, key)]
            self.entries[(owner_id, key)] = (print_, timelapse_id, since)

    def release(self, owner_id: str, key: str) -> None:
        with self._lock:
            found = self.entries.get((owner_id, key))
            if found is not None and found[1] is None:
                del self.entries[(owner_id, key)]


class FakeQueue:
    """WorkQueue: remembers what was sent, in order."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.parts: list[tuple[str, str, int]] = []

    def send_process(self, timelapse_id: str) -> None:
        self.sent.append(timelapse_id)

    def send_part(self, timelapse_id: str, token: str, part: int) -> None:
        self.parts.append((timelapse_id, token, part))


class RecordingNotifier:
    """Notifier: remembers every terminal state it was told of."""

    def __init__(self) -> None:
        self.ended: list[Timelapse] = []

    def timelapse_ended(self, timelapse: Timelapse) -> None:
        self.ended.append(timelapse)


class FakeMedia:
    """The Renderer port (ffmpeg's side of the worker) in memory, for the worker's unit tests.

    `source` is what describing finds (or `refuse` is raised); the render reports progress, then
    waits until `release` is set — a test can cancel meanwhile — and writes a small output.
    """

    def __init__(self, source: SourceInfo) -> None:
        self.source = source
        self.refuse: Exception | None = None
        self.release = threading.Event()
        self.release.set()
        self.rendering = threading.Event()
        self.renders = 0
        # What the idle scan finds (skipIdle), and the plans it was asked about.
        self.idle: tuple[tuple[float, float], ...] = ()
        self.scanned: list[RenderPlan] = []
        self.single_passes: list[RenderPlan] = []  # render_skipping_idle's plans, as asked
        self.rendered: list[RenderPlan] = []
        # Fanned-out renders: the keyframe times describing finds, a render that fails, and
        # the joins made (the segments' contents, in order).
        self.keyframes: tuple[float, ...] | None = None
        self.fail_render: Exception | None = None
        self.joined: list[list[bytes]] = []

    def describe(self, url: str) -> Described:
        """What the probe finds, as a file without a usable index (ffmpeg reads it)."""
        if self.refuse is not None:
            raise self.refuse
        return Described(self.source, indexed=False, reads=ReadCount(), keyframes=self.keyframes)

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
    ) -> Rendered:
        self.renders += 1
        self.rendered.append(plan)
        if self.fail_render is not None:
            raise self.fail_render
        on_progress(50)
        self.rendering.set()
        while not self.release.wait(0.01):
            if should_stop():
                raise RenderCancelled("stopped by the caller")
        end = plan.first_frame + plan.frame_count
        output.write_bytes(f"frames {plan.first_frame}-{end}".encode())
        return Rendered(
            width=plan.output_width,
            height=plan.output_height,
            fps=plan.output_fps,
            duration_seconds=plan.expected_duration_seconds,
            frame_count=plan.frame_count,
            size_bytes=output.stat().st_size,
        )

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
        self.scanned.append(plan)
        return self.idle

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
        """As a render whose own decode found `idle` (the frames there are left out)."""
        self.single_passes.append(plan)
        kept = [t for t in plan.sample_times() if not any(a <= t < b for a, b in self.idle)]
        rendered = replace(plan, dropped=self.idle, frame_count=max(1, len(kept)))
        rendered = replace(
            rendered, expected_duration_seconds=rendered.frame_count / plan.output_fps
        )
        return self.render(
            url, output, rendered, described, work_dir=work_dir, on_progress=on_progress,
            should_stop=should_stop, deadline=deadline,
        ), rendered  # fmt: skip

    def poster(self, video: Path, poster: Path, *, at_seconds: float) -> None:
        poster.write_bytes(b"poster")

    def join(
        self,
        segments: list[Path],
        output: Path,
        *,
        durations: list[float],
        should_stop: Callable[[], bool],
        deadline: float | None,
    ) -> Rendered:
        """Segments as FakeMedia.render writes them ("frames a-b"); the frames they name."""
        contents = [segment.read_bytes() for segment in segments]
        self.joined.append(contents)
        output.write_bytes(b"|".join(contents))
        frames = 0
        for content in contents:
            first, end = content.decode().removeprefix("frames ").split("-")
            frames += int(end) - int(first)
        return Rendered(
            width=self.source.width,
            height=self.source.height,
            fps=30,
            duration_seconds=frames / 30,
            frame_count=frames,
            size_bytes=output.stat().st_size,
        )
