"""The parts of a fanned-out render (domain/fanout.py): render one, and join them all once.

Each part is its own message on the processing queue, run by the same function. A part renders
its windows to a segment object under the fan-out's prefix, then counts itself done with one
conditional write (`finish_part`: a part is counted once, so a duplicate message or a retry that
overlapped changes nothing). The write that makes the count complete is seen by exactly one
invocation, and that one joins the segments, makes the poster and completes the record.

The parts share the lease token the claiming worker got, and every part's heartbeat renews it: a
cancel, a failure or a takeover changes the record, each running part sees it within a second,
kills its ffmpeg and removes what it wrote, and a part that starts later finds the fan-out gone
and removes the segments left. A part that fails is counted and queued again, up to
`max_attempts`; then the timelapse fails with the reason. A worker that dies stops renewing the
lease, and the watchdog takes the record back as it does for a whole render.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.domain.fanout import SAFE_SHARE, FanOut, fanout_lease_seconds, part_plan
from chalicelib.domain.keys import poster_key, segment_key, segments_prefix, timelapse_key
from chalicelib.domain.timelapse import ErrorInfo, Stage, Status, Timelapse
from chalicelib.errors import ConflictError, LapseError, RenderCancelled, RenderError
from chalicelib.logs import logger, metrics
from chalicelib.services.ports import PartQueue, Rendered
from chalicelib.services.processing import (
    Heartbeat,
    Prepared,
    ProcessingService,
    output_info,
    seconds_left,
    work_dir_for,
)

UNEXPECTED = "an unexpected error on our side"
# Segments a join downloads at once.
JOIN_DOWNLOADS = 8


@dataclass(frozen=True)
class _Job:
    """One invocation's work on one part."""

    record: Timelapse
    fanout: FanOut
    part: int
    heartbeat: Heartbeat
    work_dir: Path
    deadline: float | None
    limit: float | None  # seconds this invocation had when the part started

    @property
    def token(self) -> str:
        return self.fanout.token


@dataclass
class PartsService:
    processing: ProcessingService
    queue: PartQueue

    def run_part(
        self, timelapse_id: str, token: str, part: int, deadline: float | None = None
    ) -> Timelapse | None:
        """Render part `part` of the fan-out `token`; join them all if it is the last one done.
        Returns the record as this invocation left it (None: nothing to do)."""
        records = self.processing.records
        record = records.get(timelapse_id)
        fanout = _fanout_of(record, token)
        if fanout is None:
            logger.info("fan-out over (cancelled, failed, done or taken over); part skipped")
            self._remove_segments(timelapse_id, token)
            return None
        if part in fanout.done or not 0 <= part <= fanout.join_part:
            logger.info("part already done; duplicate skipped", extra={"part": part})
            return None
        if part == fanout.join_part and not fanout.all_done:
            return None  # not a join this fan-out asked for
        assert record is not None
        joining = part == fanout.join_part
        heartbeat = Heartbeat(
            records,
            timelapse_id,
            token,
            lease_seconds=fanout_lease_seconds(
                self.processing.lease_seconds, seconds_left(deadline)
            ),
            interval=self.processing.heartbeat_seconds,
            part=None if joining else (part, fanout.parts[part].frame_count),
        )
        with heartbeat, work_dir_for(timelapse_id) as work_dir:
            job = _Job(record, fanout, part, heartbeat, work_dir, deadline, seconds_left(deadline))
            return self._join_alone(job) if joining else self._attempt(job)

    def _join_alone(self, job: _Job) -> Timelapse | None:
        """A join handed over by the part that completed the count: taken once, then made."""
        try:
            taken = self.processing.records.finish_part(
                job.record.id, job.token, job.part, key="join", frames=0
            )
            prepared = self._prepare(job.record, job.fanout)
        except ConflictError:
            logger.info("join already taken; duplicate skipped")
            return None
        except Exception as exc:
            reason = exc.message if isinstance(exc, LapseError) else UNEXPECTED
            return self._fail_join(job.record, job.fanout, reason)
        assert taken.fanout is not None
        return self._join(job, taken.fanout, prepared)

    def _attempt(self, job: _Job) -> Timelapse | None:
        record, part = job.record, job.part
        key = segment_key(record.id, job.token, part, uuid.uuid4().hex[:8])
        try:
            prepared = self._prepare(record, job.fanout)
            frames = self._render_part(job, prepared, key)
            counted = self.processing.records.finish_part(
                record.id, job.token, part, key=key, frames=frames
            )
        except (RenderCancelled, ConflictError):
            # Cancelled, taken over, or this part was counted by another invocation meanwhile.
            self.processing.storage.delete(key)
            self._remove_segments_if_over(record.id, job.token)
            return None
        except Exception as exc:
            self.processing.storage.delete(key)
            return self._part_failed(job, exc)
        done = counted.fanout
        logger.info("part done", extra={"part": part, "done": len(done.done) if done else None})
        if done is None or not done.all_done:
            return counted
        left = seconds_left(job.deadline)
        if left is not None and job.limit is not None and left < job.limit * SAFE_SHARE:
            # Too little of this invocation is left to join safely: a fresh one joins.
            logger.info("join handed to a fresh invocation", extra={"seconds_left": round(left)})
            self.queue.send_part(record.id, job.token, done.join_part)
            return counted
        return self._join(job, done, prepared)

    def _prepare(self, record: Timelapse, fanout: FanOut) -> Prepared:
        prepared = self.processing.prepare(record)
        if prepared.plan.frame_count != fanout.frame_count:
            raise RenderError("The video changed while it was being rendered in parts.")
        return prepared

    def _render_part(self, job: _Job, prepared: Prepared, key: str) -> int:
        """Render the part's windows to a segment and store it under `key`; its frame count."""
        part, heartbeat = job.part, job.heartbeat
        plan = part_plan(prepared.plan, job.fanout.parts[part])
        segment = job.work_dir / "segment.mp4"
        started = time.monotonic()
        result = self.processing.media.render(
            prepared.url,
            segment,
            plan,
            prepared.described,
            work_dir=job.work_dir,
            on_progress=heartbeat.report_progress,
            should_stop=lambda: heartbeat.lost,
            deadline=job.deadline,
        )
        if result.frame_count != plan.frame_count:
            raise RenderError(
                f"Part {part + 1} of the render made {result.frame_count} frames where "
                f"{plan.frame_count} were planned."
            )
        heartbeat.check()
        self.processing.store(job.record.id, segment, key, "video/mp4", heartbeat.check)
        seconds = time.monotonic() - started
        logger.info("part rendered", extra={"part": part, "seconds": round(seconds, 2)})
        metrics.add_metric(name="PartSeconds", unit=MetricUnit.Seconds, value=seconds)
        return result.frame_count

    def _part_failed(self, job: _Job, exc: Exception) -> Timelapse | None:
        """Count the failure; queue the part again, or fail the timelapse with the reason."""
        record, fanout, part = job.record, job.fanout, job.part
        reason = exc.message if isinstance(exc, LapseError) else UNEXPECTED
        if isinstance(exc, LapseError):
            logger.warning("part failed", extra={"part": part, "reason": reason})
        else:
            logger.exception("part failed unexpectedly", extra={"part": part})
        records = self.processing.records
        try:
            counted = records.fail_part(record.id, fanout.token, part)
        except ConflictError:
            self._remove_segments_if_over(record.id, fanout.token)
            return None
        failures = counted.fanout.failures.get(part, 0) if counted.fanout else 0
        if failures < self.processing.max_attempts:
            self.queue.send_part(record.id, fanout.token, part)
            return counted
        error = ErrorInfo(
            "render_failed",
            f"Part {part + 1} of {len(fanout.parts)} of the render failed {failures} times; "
            f"the last time: {reason}",
        )
        try:
            failed = records.fail(record.id, fanout.token, error)
        except ConflictError:
            return None
        self._remove_segments(record.id, fanout.token)
        metrics.add_metric(name="RendersFailed", unit=MetricUnit.Count, value=1)
        self.processing.notifier.timelapse_ended(failed)
        return failed

    def _join(self, job: _Job, fanout: FanOut, prepared: Prepared) -> Timelapse | None:
        """The last part done: join the segments, make the poster, complete the record."""
        record, heartbeat, work_dir = job.record, job.heartbeat, job.work_dir
        outputs = (timelapse_key(record.id), poster_key(record.id))
        try:
            video, result = self._joined(job, fanout, prepared.plan.output_fps)
            heartbeat.advance(Stage.UPLOADING)
            self.processing.store_outputs(record.id, video, result, work_dir, heartbeat.check)
            heartbeat.check()
            done = self.processing.records.complete(
                record.id,
                fanout.token,
                processed_video_key=outputs[0],
                poster_key=outputs[1],
                output={
                    **output_info(result, prepared.described.info, prepared.plan),
                    "parts": len(fanout.parts),
                },
            )
        except (RenderCancelled, ConflictError):
            self.processing.storage.delete(*outputs)
            self._remove_segments_if_over(record.id, fanout.token)
            return None
        except Exception as exc:
            if not isinstance(exc, LapseError):
                logger.exception("join failed unexpectedly")
            self.processing.storage.delete(*outputs)
            reason = exc.message if isinstance(exc, LapseError) else UNEXPECTED
            return self._fail_join(record, fanout, reason)
        self._remove_segments(record.id, fanout.token)
        logger.info("complete", extra={"parts": len(fanout.parts), "output": done.output})
        metrics.add_metric(name="RendersCompleted", unit=MetricUnit.Count, value=1)
        self.processing.notifier.timelapse_ended(done)
        return done

    def _joined(self, job: _Job, fanout: FanOut, fps: int) -> tuple[Path, Rendered]:
        heartbeat, work_dir = job.heartbeat, job.work_dir
        folder = work_dir / "segments"
        folder.mkdir()
        segments = [folder / f"part-{number:04d}.mp4" for number in range(len(fanout.parts))]

        def fetch(number: int) -> None:
            heartbeat.check()
            self.processing.storage.download(fanout.keys[number], segments[number])

        # Side by side: on the join's critical path, one storage round trip each otherwise.
        with ThreadPoolExecutor(max_workers=JOIN_DOWNLOADS) as pool:
            list(pool.map(fetch, range(len(segments))))
        heartbeat.check()
        video = work_dir / "timelapse.mp4"
        result = self.processing.media.join(
            segments,
            video,
            durations=[part.frame_count / fps for part in fanout.parts],
            should_stop=lambda: heartbeat.lost,
            deadline=job.deadline,
        )
        if result.frame_count != fanout.frame_count:
            raise RenderError(
                f"The joined parts hold {result.frame_count} frames where "
                f"{fanout.frame_count} were planned."
            )
        return video, result

    def _fail_join(self, record: Timelapse, fanout: FanOut, reason: str) -> Timelapse | None:
        error = ErrorInfo("render_failed", f"The rendered parts could not be joined: {reason}")
        try:
            failed = self.processing.records.fail(record.id, fanout.token, error)
        except ConflictError:
            return None
        self._remove_segments(record.id, fanout.token)
        self.processing.notifier.timelapse_ended(failed)
        return failed

    def _remove_segments_if_over(self, timelapse_id: str, token: str) -> None:
        """Remove the fan-out's segments once it is over (a cancel, a failure, a takeover)."""
        if _fanout_of(self.processing.records.get(timelapse_id), token) is None:
            self._remove_segments(timelapse_id, token)

    def _remove_segments(self, timelapse_id: str, token: str) -> None:
        try:
            self.processing.storage.delete_prefix(segments_prefix(timelapse_id, token))
        except Exception:
            logger.exception("segments not removed (the bucket's lifecycle rule will)")


def _fanout_of(record: Timelapse | None, token: str) -> FanOut | None:
    """The record's fan-out if it is still the one `token` names, and running."""
    if record is None or record.status is not Status.PROCESSING:
        return None
    if record.fanout is None or record.fanout.token != token or record.lease_owner != token:
        return None
    return record.fanout
