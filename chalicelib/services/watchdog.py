"""The watchdog: nothing stays `processing` or `queued` forever.

A worker that died leaves a lease that runs out; the sweep re-queues such a record (a fresh attempt)
until `max_attempts`, then fails it with a message. A queued record whose message was lost is sent
again; the claim's condition makes a duplicate message harmless.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from chalicelib.domain.timelapse import ErrorInfo, Status
from chalicelib.errors import ConflictError
from chalicelib.logs import logger
from chalicelib.services.ports import Notifier, TimelapseRepository, WorkQueue


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)


@dataclass
class WatchdogService:
    records: TimelapseRepository
    queue: WorkQueue
    notifier: Notifier
    max_attempts: int
    queued_grace_seconds: float = 900.0

    def sweep(self, now: datetime) -> SweepReport:
        report = SweepReport()
        for timelapse in self.records.scan_expired_leases(now):
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
        for timelapse in self.records.scan_stale_queued(stale_before):
            if timelapse.status is Status.PENDING:
                self.queue.send_process(timelapse.id)
                report.resent.append(timelapse.id)
        if report.requeued or report.failed or report.resent:
            logger.info("watchdog sweep", extra=report.__dict__)
        return report

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
