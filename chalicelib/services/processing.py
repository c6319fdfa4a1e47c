"""The worker's use case: claim → probe → plan → render → upload → complete.

One attempt holds the record through a lease (owner token + expiry). A heartbeat thread extends the
lease and sees a cancel (or a lost lease) within `heartbeat_seconds`; the render then stops, the
worker's uploads are aborted, the temporary folder is removed, and nothing more is written.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.domain.fanout import (
    REFERENCE_VCPUS,
    FanOut,
    PartRange,
    fanout_lease_seconds,
    part_budget_seconds,
    split_render,
)
from chalicelib.domain.keys import poster_key, segments_prefix, timelapse_key
from chalicelib.domain.limits import Limits
from chalicelib.domain.parts import MULTIPART_THRESHOLD
from chalicelib.domain.plan import RenderPlan, SourceInfo, check_source_limits, plan_timelapse
from chalicelib.domain.timelapse import ErrorInfo, Stage, Status, Timelapse
from chalicelib.errors import (
    ConflictError,
    InvalidMediaError,
    LapseError,
    RenderCancelled,
    UploadRefused,
)
from chalicelib.logs import logger, metrics
from chalicelib.services.ports import (
    Described,
    Notifier,
    ObjectInfo,
    PartQueue,
    Rendered,
    Renderer,
    Storage,
    TimelapseRepository,
)
from chalicelib.services.uploads import acceptance_refusal, original_refusal

PROGRESS_WRITE_SECONDS = 2.0
INTERNAL_ERROR = ErrorInfo(
    "internal_error", "Something went wrong on our side while processing this video. Try again."
)


class Heartbeat:
    """Keeps the lease alive, writes stage and progress, and notices when the claim is lost."""

    def __init__(
        self,
        records: TimelapseRepository,
        timelapse_id: str,
        token: str,
        *,
        lease_seconds: float,
        interval: float,
        part: tuple[int, int] | None = None,
    ) -> None:
        self._records = records
        # A part of a fanned-out render (its number, its frames) writes its own frames instead
        # of the record's progress, which is then the sum over all parts.
        self._part = part
        self._id = timelapse_id
        self._token = token
        self._lease = lease_seconds
        self._interval = interval
        self._lost = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._progress = 0
        self._stage: Stage | None = None
        self._last_write = time.monotonic()
        self._thread = threading.Thread(
            target=self._run, name=f"heartbeat-{timelapse_id}", daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """No more writes from the thread (it is joined); `lost` still tells what it saw."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    def check(self) -> None:
        if self.lost:
            raise RenderCancelled("the timelapse was cancelled or another worker took it over")

    def report_progress(self, percent: int) -> None:
        with self._lock:
            self._progress = max(self._progress, min(99, percent))

    def advance(self, stage: Stage, *, source: dict[str, Any] | None = None) -> None:
        """Record a new stage now (one conditional write); raises RenderCancelled if lost."""
        self.check()
        with self._lock:
            self._stage = stage
        self._write(source=source)
        self.check()

    def _write(self, *, source: dict[str, Any] | None = None) -> None:
        with self._lock:
            progress, stage = self._progress, self._stage
        part_frames = None
        if self._part is not None:
            number, frames = self._part
            part_frames = (number, frames * progress // 100)
        try:
            self._records.heartbeat(
                self._id,
                self._token,
                self._lease,
                stage=stage,
                progress=None if part_frames is not None else progress,
                source=source,
                part_frames=part_frames,
            )
        except ConflictError:
            self._lost.set()
            return
        with self._lock:
            self._last_write = time.monotonic()

    def _run(self) -> None:
        while not self._done.wait(self._interval):
            try:
                self._beat()
            except Exception:  # a transient store error must not kill the heartbeat
                logger.exception("heartbeat failed")
                self._give_up_if_expired()

    def _give_up_if_expired(self) -> None:
        # Unable to renew for a whole lease: the watchdog may have handed the record to another
        # worker by now, so this one must stop as if it had lost its claim.
        with self._lock:
            unrenewed = time.monotonic() - self._last_write
        if unrenewed >= self._lease:
            logger.warning("lease not renewed in time; stopping", extra={"seconds": unrenewed})
            self._lost.set()

    def _beat(self) -> None:
        # A conditional write at most every PROGRESS_WRITE_SECONDS; a cheap read in between.
        with self._lock:
            due = time.monotonic() - self._last_write >= PROGRESS_WRITE_SECONDS
        if due:
            self._write()
            return
        current = self._records.get(self._id)
        if (
            current is None
            or current.status is not Status.PROCESSING
            or current.lease_owner != self._token
        ):
            self._lost.set()


@dataclass(frozen=True)
class Prepared:
    """An original checked, described and planned: what a render (or one part) starts from."""

    original: ObjectInfo
    url: str
    described: Described
    plan: RenderPlan


@dataclass
class ProcessingService:
    records: TimelapseRepository
    storage: Storage
    limits: Limits
    notifier: Notifier
    media: Renderer
    lease_seconds: float = 60.0
    heartbeat_seconds: float = 1.0
    max_attempts: int = 3
    download_url_seconds: int = 6 * 3600
    # Where a render too long for one invocation sends its parts (None: never fanned out).
    queue: PartQueue | None = None
    # vCPUs one invocation has (Lambda's 4096 MB: ~2.3; the local worker: cores / renders at once).
    vcpus: float = REFERENCE_VCPUS
    # Estimated seconds past which a render is split into parts of about this size that run side
    # by side (None: split only what would not fit the invocation's time limit).
    part_target_seconds: float | None = None

    # --- entry points -----------------------------------------------------------------------

    def object_created(self, timelapse_id: str, key: str, *, deadline: float | None = None) -> None:
        """A storage event: an original landed. Check it, queue it, then run it."""
        timelapse = self.records.get(timelapse_id)
        if timelapse is None or timelapse.original_video_key != key:
            logger.info("no record for uploaded object; ignored", extra={"key": key})
            return
        if timelapse.status is Status.PENDING and timelapse.stage is Stage.AWAITING_UPLOAD:
            accepted = self._accept_upload(timelapse)
            if accepted is None:
                return
            try:
                timelapse = self.records.mark_uploaded(
                    timelapse_id,
                    queue=timelapse.process,
                    etag=accepted.etag,
                    size_bytes=accepted.size,
                )
            except ConflictError:
                logger.info("upload already accepted (duplicate event)")
                return
            if not timelapse.process:
                return
        self.run(timelapse_id, deadline)

    def _accept_upload(self, timelapse: Timelapse) -> ObjectInfo | None:
        """Server-side checks on what the client uploaded; a refusal fails the record and
        deletes the object."""
        found = self.storage.head(timelapse.original_video_key)
        if found is None:
            return None  # a stale event for an object already gone
        refusal = acceptance_refusal(timelapse, found, self.storage, self.limits)
        if refusal is not None:
            self._refuse(timelapse, refusal)
            return None
        return found

    def _refuse(self, timelapse: Timelapse, error: ErrorInfo) -> None:
        # The refused object goes first: once the record reads `failed`, nothing of it is left
        # to download (a poller seeing `failed` could otherwise still read the original).
        self.storage.delete(timelapse.original_video_key)
        try:
            failed = self.records.fail_pending(timelapse.id, error)
        except ConflictError:
            return
        self.notifier.timelapse_ended(failed)

    def run(self, timelapse_id: str, deadline: float | None = None) -> Timelapse | None:
        """Claim the record and render it. Returns the final record, or None when not claimed."""
        token = uuid.uuid4().hex
        try:
            timelapse = self.records.claim(
                timelapse_id, token, self.lease_seconds, max_attempts=self.max_attempts
            )
        except ConflictError:
            logger.info("not claimable (already taken, finished or cancelled); skipped")
            return None
        logger.info("claimed", extra={"attempt": timelapse.attempts})
        heartbeat = Heartbeat(
            self.records,
            timelapse_id,
            token,
            lease_seconds=self.lease_seconds,
            interval=self.heartbeat_seconds,
        )
        with heartbeat, work_dir_for(timelapse_id) as work_dir:
            return self._attempt(timelapse, token, heartbeat, work_dir, deadline)

    # --- one attempt ------------------------------------------------------------------------

    def _attempt(
        self,
        timelapse: Timelapse,
        token: str,
        heartbeat: Heartbeat,
        work_dir: Path,
        deadline: float | None,
    ) -> Timelapse | None:
        outputs = (timelapse_key(timelapse.id), poster_key(timelapse.id))
        try:
            output = self._render_and_upload(timelapse, token, heartbeat, work_dir, deadline)
            if output is None:
                return self.records.get(timelapse.id)  # fanned out: its parts go on
            heartbeat.check()
            done = self.records.complete(
                timelapse.id,
                token,
                processed_video_key=outputs[0],
                poster_key=outputs[1],
                output=output,
            )
        except (RenderCancelled, ConflictError):
            logger.info("stopped: cancelled or claim lost; removing partial outputs")
            metrics.add_metric(name="RendersStopped", unit=MetricUnit.Count, value=1)
            self._discard(timelapse.id, token, outputs)
            return None
        except InvalidMediaError as exc:
            self._discard(timelapse.id, token, (*outputs, timelapse.original_video_key))
            return self._fail(timelapse, token, ErrorInfo(exc.code, exc.message))
        except LapseError as exc:
            self._discard(timelapse.id, token, outputs)
            return self._fail(timelapse, token, ErrorInfo(exc.code, exc.message))
        except Exception:
            logger.exception("processing failed unexpectedly")
            self._discard(timelapse.id, token, outputs)
            return self._fail(timelapse, token, INTERNAL_ERROR)
        logger.info("complete", extra={"output": output})
        metrics.add_metric(name="RendersCompleted", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="SpeedUp", unit=MetricUnit.Count, value=output["speedup"])
        metrics.add_metric(name="BytesWritten", unit=MetricUnit.Bytes, value=output["sizeBytes"])
        self.notifier.timelapse_ended(done)
        return done

    def _discard(self, timelapse_id: str, token: str, keys: tuple[str, ...]) -> None:
        """Delete what this attempt wrote (and, for a bad upload, the original), unless another
        attempt owns those keys now: the output keys are the same for every attempt, and a worker
        that lost its lease must not delete what its successor wrote, nor pull the original from
        under it."""
        try:
            current = self.records.get(timelapse_id)
        except Exception:
            logger.exception("cannot tell whether another attempt owns the outputs; kept")
            return
        successor = current is not None and (
            current.status is Status.COMPLETE
            or (current.status is Status.PROCESSING and current.lease_owner != token)
        )
        if successor:
            logger.info("another attempt owns the outputs now; nothing deleted")
            return
        self.storage.delete(*keys)

    def _fail(self, timelapse: Timelapse, token: str, error: ErrorInfo) -> Timelapse | None:
        logger.info("failed", extra={"error": {"code": error.code, "message": error.message}})
        metrics.add_metric(name="RendersFailed", unit=MetricUnit.Count, value=1)
        try:
            failed = self.records.fail(timelapse.id, token, error)
        except ConflictError:
            return None  # cancelled meanwhile: the cancel is the one terminal state
        self.notifier.timelapse_ended(failed)
        return failed

    def _stored_original(self, timelapse: Timelapse) -> ObjectInfo:
        """The original, checked again just before it is read: whatever path queued the record,
        only the upload it was made for is rendered."""
        found = self.storage.head(timelapse.original_video_key)
        refusal = original_refusal(timelapse, found, self.limits)
        if refusal is not None:
            raise UploadRefused(refusal.code, refusal.message)
        assert found is not None
        return found

    def prepare(self, timelapse: Timelapse) -> Prepared:
        """The original checked again, described and planned (no idle scan)."""
        original = self._stored_original(timelapse)
        url = self.storage.presign_get(timelapse.original_video_key, self.download_url_seconds).url
        described = self.media.describe(url)
        check_source_limits(described.info, self.limits)
        plan = plan_timelapse(
            described.info,
            timelapse.target_seconds,
            self.limits,
            indexed=described.indexed,
            speed=timelapse.speed,
            options=timelapse.options,
        )
        return Prepared(original, url, described, plan)

    def _render_and_upload(
        self,
        timelapse: Timelapse,
        token: str,
        heartbeat: Heartbeat,
        work_dir: Path,
        deadline: float | None,
    ) -> dict[str, Any] | None:
        """Render and store the timelapse; None when it was handed to parts instead."""
        prepared = self.prepare(timelapse)
        original, url, described, plan = (
            prepared.original,
            prepared.url,
            prepared.described,
            prepared.plan,
        )
        source = described.info
        source_api = {**source.as_api(), "sizeBytes": original.size}
        heartbeat.advance(Stage.RENDERING, source=source_api)
        if timelapse.options.skip_idle and timelapse.speed is None:
            plan = self._without_idle(
                timelapse,
                url,
                plan,
                described=described,
                heartbeat=heartbeat,
                work_dir=work_dir,
                deadline=deadline,
            )
        # skipIdle decides what to leave out over the whole source (a first pass, or the render
        # itself with a speed): such renders are not split.
        parts = () if timelapse.options.skip_idle else self._parts(plan, described, deadline)
        if parts:
            self._fan_out(timelapse, token, heartbeat, plan=plan, parts=parts, deadline=deadline)
            return None
        video = work_dir / "timelapse.mp4"
        started = time.monotonic()
        rendering: dict[str, Any] = {
            "work_dir": work_dir,
            "on_progress": heartbeat.report_progress,
            "should_stop": lambda: heartbeat.lost,
            "deadline": deadline,
        }
        if timelapse.options.skip_idle and timelapse.speed is not None:
            # With a speed the kept frames are the plan's own: idle is decided in the same decode.
            result, plan = self.media.render_skipping_idle(url, video, plan, described, **rendering)
        else:
            result = self.media.render(url, video, plan, described, **rendering)
        render_seconds = time.monotonic() - started
        read = _source_read(described, result)
        logger.info(
            "rendered",
            extra={"seconds": round(render_seconds, 2), "plan": plan.strategy, **read},
        )
        if read:
            metrics.add_metric(
                name="SourceBytesRead", unit=MetricUnit.Bytes, value=read["bytes_read"]
            )
        metrics.add_metric(name="RenderSeconds", unit=MetricUnit.Seconds, value=render_seconds)
        metrics.add_metric(name="SourceBytes", unit=MetricUnit.Bytes, value=original.size)
        heartbeat.advance(Stage.UPLOADING)
        self.store_outputs(timelapse.id, video, result, work_dir, heartbeat.check)
        return output_info(result, source, plan)

    def store_outputs(
        self,
        timelapse_id: str,
        video: Path,
        result: Rendered,
        work_dir: Path,
        check: Callable[[], None],
    ) -> None:
        """Make the poster from the timelapse and store both under the record's output keys."""
        poster = work_dir / "poster.jpg"
        self.media.poster(video, poster, at_seconds=result.duration_seconds / 2)
        self.store(timelapse_id, video, timelapse_key(timelapse_id), "video/mp4", check)
        self.store(timelapse_id, poster, poster_key(timelapse_id), "image/jpeg", check)

    def _parts(
        self, plan: RenderPlan, described: Described, deadline: float | None
    ) -> tuple[PartRange, ...]:
        """The parts to fan the render out to, when it would pass a safe share of the time this
        invocation has (the function's limit) or the latency target; () to render it here."""
        if self.queue is None:
            return ()
        limit = (
            math.inf
            if deadline is None
            else part_budget_seconds(deadline - time.monotonic(), self.vcpus)
        )
        target = math.inf if self.part_target_seconds is None else self.part_target_seconds
        budget = min(limit, target)
        if math.isinf(budget):
            return ()
        return split_render(
            plan, described.info, budget_seconds=budget, keyframes=described.keyframes
        )

    def _fan_out(
        self,
        timelapse: Timelapse,
        token: str,
        heartbeat: Heartbeat,
        *,
        plan: RenderPlan,
        parts: tuple[PartRange, ...],
        deadline: float | None,
    ) -> None:
        """Hand the render to parts: one write on the record, one message per part."""
        assert self.queue is not None
        heartbeat.stop()  # from here on the parts keep the lease
        heartbeat.check()
        self.storage.delete_prefix(segments_prefix(timelapse.id))  # an earlier attempt's
        lease = fanout_lease_seconds(self.lease_seconds, seconds_left(deadline))
        self.records.fan_out(timelapse.id, token, FanOut(token, parts, plan.frame_count), lease)
        for number in range(len(parts)):
            self.queue.send_part(timelapse.id, token, number)
        logger.info(
            "fanned out",
            extra={"parts": len(parts), "frames": plan.frame_count, "plan": plan.strategy},
        )
        metrics.add_metric(name="RendersFannedOut", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name="RenderParts", unit=MetricUnit.Count, value=len(parts))

    def _without_idle(
        self,
        timelapse: Timelapse,
        url: str,
        plan: RenderPlan,
        *,
        described: Described,
        heartbeat: Heartbeat,
        work_dir: Path,
        deadline: float | None,
    ) -> RenderPlan:
        """The plan again, leaving out the idle stretches its own sampled frames show (with
        `targetSeconds`: the active parts are then sampled more densely, so this is a pass of its
        own)."""
        started = time.monotonic()
        dropped = self.media.find_idle(
            url,
            plan,
            described,
            work_dir=work_dir,
            should_stop=lambda: heartbeat.lost,
            deadline=deadline,
        )
        logger.info(
            "idle scanned",
            extra={"seconds": round(time.monotonic() - started, 2), "stretches": len(dropped)},
        )
        return plan_timelapse(
            described.info,
            timelapse.target_seconds,
            self.limits,
            indexed=described.indexed,
            speed=timelapse.speed,
            options=timelapse.options,
            dropped=dropped,
        )

    def store(
        self,
        timelapse_id: str,
        path: Path,
        key: str,
        content_type: str,
        check: Callable[[], None],
    ) -> None:
        """Upload a file the worker made; `check` raising (a cancel) stops and aborts it."""
        size = path.stat().st_size
        method = "multipart" if size > MULTIPART_THRESHOLD else "simple"
        self.storage.upload_file(
            path,
            key,
            content_type=content_type,
            metadata={
                "timelapse-id": timelapse_id,
                "upload-method": method,
                "file-size": str(size),
            },
            on_bytes=lambda _sent: check(),
        )


def output_info(result: Rendered, source: SourceInfo, plan: RenderPlan) -> dict[str, Any]:
    """The record's `output`: the timelapse as measured from the file."""
    return {
        "width": result.width,
        "height": result.height,
        "fps": result.fps,
        "durationSeconds": round(result.duration_seconds, 3),
        "sizeBytes": result.size_bytes,
        "speedup": round(source.duration_seconds / max(result.duration_seconds, 1e-3), 2),
        "idleSecondsSkipped": round(plan.idle_seconds_skipped, 3),
    }


def seconds_left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _source_read(described: Described, result: Rendered) -> dict[str, int]:
    """What the job read of the original by ranges (index + keyframes); empty where ffmpeg read
    the file itself and nobody counted."""
    if result.reads is None:
        return {}
    return {
        "bytes_read": described.reads.bytes_read + result.reads.bytes_read,
        "requests": described.reads.requests + result.reads.requests,
    }


@contextlib.contextmanager
def work_dir_for(timelapse_id: str) -> Iterator[Path]:
    """One fresh temporary folder per job, always removed."""
    path = Path(tempfile.mkdtemp(prefix=f"lapse-{timelapse_id[:8]}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
