"""The watchdog: nothing stays `processing` or `queued` forever.

A worker that died leaves a lease that runs out; the sweep re-queues such a record (a fresh attempt)
until `max_attempts`, then fails it with a message. A queued record whose message was lost is sent
again; the claim's condition makes a duplicate message harmless. An original fully in storage
whose record still awaits it (a lost storage event; on R2, a front end that never called /process)
is queued as the event would have (locally; see wiring.watchdog_service).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chalicelib.domain.limits import Limits
from chalicelib.domain.timelapse import ErrorInfo, Stage, Status, Timelapse
from chalicelib.errors import ConflictError
from chalicelib.logs import logger
from chalicelib.services.ports import Notifier, Storage, TimelapseRepository, WorkQueue
from chalicelib.services.uploads import abort_uploads, original_refusal


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)


@dataclass
class WatchdogService:
    records: TimelapseRepository
    queue: WorkQueue
    notifier: Notifier
    max_attempts: int
    queued_grace_seconds: float = 900.0
    # Storage, for aborting the uploads of records whose upload window ended and (when
    # `recover_uploads`) for finding uploads whose storage event was lost.
    storage: Storage | None = None
    awaiting_grace_seconds: float = 600.0
    limits: Limits = field(default_factory=Limits)
    recover_uploads: bool = True

    def sweep(self, now: datetime) -> SweepReport:
        report = SweepReport()
        for timelapse in self.records.find_expired_leases(now):
            if timelapse.lease_owner is None:
                continue
            retry = timelapse.attempts < self.max_attempts
            error = ErrorInfo(
                "worker_lost",
                f"Processing stopped unexpectedly {timelapse.attempts} times; giving up. "
                "Try again later or with a shorter video.",
            )
            try:
                updated = self.records.expire_lease(
                    timelapse.id, timelapse.lease_owner, now, retry=retry, error=error
                )
            except ConflictError:
                continue  # the worker came back, finished, or was cancelled meanwhile
            if retry:
                self.queue.send_process(timelapse.id)
                report.requeued.append(timelapse.id)
            else:
                report.failed.append(timelapse.id)
                self.notifier.timelapse_ended(updated)
        stale_before = now - timedelta(seconds=self.queued_grace_seconds)
        for timelapse in self.records.find_stale_pending(Stage.QUEUED, stale_before):
            if timelapse.status is Status.PENDING:
                self.queue.send_process(timelapse.id)
                report.resent.append(timelapse.id)
        if self.storage is not None and self.recover_uploads:
            waited_before = now - timedelta(seconds=self.awaiting_grace_seconds)
            for timelapse in self.records.find_stale_pending(Stage.AWAITING_UPLOAD, waited_before):
                self._recover_upload(timelapse, report)
        # A record still awaiting its upload when the upload window ends fails.
        created_before = now - timedelta(seconds=self.limits.upload_window_seconds)
        for timelapse in self.records.find_upload_overdue(created_before):
            self._end_overdue_upload(timelapse, report)
        if any(report.__dict__.values()):
            logger.info("watchdog sweep", extra=report.__dict__)
        return report

    def _end_overdue_upload(self, timelapse: Timelapse, report: SweepReport) -> None:
        """The upload window ended with nothing uploaded: the record fails with a reason and any
        multipart upload opened for it is aborted (storage's own lifecycle rule is the backstop)."""
        hours = self.limits.upload_window_seconds / 3600
        error = ErrorInfo(
            "upload_timed_out",
            f"The video was not uploaded within {hours:g} hours of creating the timelapse; "
            "create a new one to upload it.",
        )
        try:
            failed = self.records.expire_upload(timelapse.id, error)
        except ConflictError:
            return  # uploaded, cancelled or deleted meanwhile
        if self.storage is not None:
            abort_uploads(failed, self.storage)
        report.timed_out.append(timelapse.id)
        self.notifier.timelapse_ended(failed)

    def _recover_upload(self, timelapse: Timelapse, report: SweepReport) -> None:
        """An original that is fully in storage while its record still awaits it: the storage
        event was lost (or, on R2, the front end never called /process). Queue it as the event
        would have; an upload still in progress has no object yet and is left alone."""
        found = self.storage.head(timelapse.original_video_key) if self.storage else None
        if found is None or original_refusal(timelapse, found, self.limits):
            return  # still uploading, or refused: the upload window ends it
        try:
            self.records.mark_uploaded(
                timelapse.id, queue=timelapse.process, etag=found.etag, size_bytes=found.size
            )
        except ConflictError:
            return  # the event (or the owner) got there first
        if timelapse.process:
            self.queue.send_process(timelapse.id)
        report.recovered.append(timelapse.id)

    def dead_letter(self, timelapse_id: str, now: datetime) -> bool:
        """A message for this record kept failing and reached the dead-letter queue: unless a
        worker is still on it, fail the record with a message instead of losing it silently."""
        error = ErrorInfo(
            "processing_failed",
            "Processing failed repeatedly and was stopped. Try again later; if it keeps failing, "
            "the video may be damaged.",
        )
        try:
            failed = self.records.fail_abandoned(timelapse_id, error, now)
        except ConflictError:
            return False
        logger.warning("dead-lettered record failed", extra={"timelapse_id": timelapse_id})
        self.notifier.timelapse_ended(failed)
        return True
