"""The watchdog on in-memory fakes: nothing stays processing or queued forever, and a record whose
worker came back is left alone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib import wiring
from chalicelib.domain.limits import Limits
from chalicelib.domain.timelapse import Stage, Status, Timelapse, UploadInfo, UploadMethod
from chalicelib.services.watchdog import WatchdogService
from chalicelib.settings import Settings
from tests.factories import CREATED, TIMELAPSE_ID, a_timelapse
from tests.fakes import FakeQueue, FakeRecords, FakeStorage, RecordingNotifier

DEPLOYED = {
    "LAPSE_STAGE": "prod",
    "LAPSE_OIDC_ISSUER": "https://issuer.example.com",
    "LAPSE_WEBHOOK_SECRET": "from-secrets-manager",
}

NOW = datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
KEY = f"videos/{TIMELAPSE_ID}.mp4"


class Watch:
    def __init__(self, *, with_storage: bool = False) -> None:
        self.records = FakeRecords(clock=lambda: NOW)
        self.queue = FakeQueue()
        self.notifier = RecordingNotifier()
        self.storage = FakeStorage()
        self.service = WatchdogService(
            records=self.records,
            queue=self.queue,
            notifier=self.notifier,
            max_attempts=3,
            storage=self.storage if with_storage else None,
        )

    def given(self, **fields: object) -> None:
        self.records.create(a_timelapse(**fields))

    def record(self) -> Timelapse:
        found = self.records.get(TIMELAPSE_ID)
        assert found is not None
        return found


def held(*, lease_ran_out: bool, attempts: int) -> dict[str, object]:
    """A record a worker holds (token "w-1"), whose lease ran out a minute ago or has 30 s left."""
    return {
        "status": Status.PROCESSING,
        "stage": Stage.RENDERING,
        "lease_owner": "w-1",
        "lease_expires_at": NOW + timedelta(seconds=-60 if lease_ran_out else 30),
        "attempts": attempts,
    }


@pytest.fixture
def watch() -> Watch:
    return Watch()


def test_a_lease_that_ran_out_is_queued_again_while_attempts_remain(watch: Watch) -> None:
    watch.given(**held(lease_ran_out=True, attempts=1))
    report = watch.service.sweep(NOW)
    assert report.requeued == [TIMELAPSE_ID]
    requeued = watch.record()
    assert (requeued.status, requeued.stage, requeued.lease_owner) == (
        Status.PENDING,
        Stage.QUEUED,
        None,
    )
    assert watch.queue.sent == [TIMELAPSE_ID]
    assert watch.notifier.ended == []


def test_out_of_attempts_the_record_fails_with_a_message_and_is_announced(watch: Watch) -> None:
    watch.given(**held(lease_ran_out=True, attempts=3))
    report = watch.service.sweep(NOW)
    assert report.failed == [TIMELAPSE_ID]
    failed = watch.record()
    assert failed.status is Status.FAILED
    assert failed.error is not None
    assert failed.error.code == "worker_lost"
    assert "3 times" in failed.error.message
    assert watch.queue.sent == []
    assert [t.status for t in watch.notifier.ended] == [Status.FAILED]


def test_a_live_lease_is_left_alone(watch: Watch) -> None:
    watch.given(**held(lease_ran_out=False, attempts=1))
    report = watch.service.sweep(NOW)
    assert report == type(report)()
    assert watch.record().status is Status.PROCESSING


def test_a_worker_that_renews_between_scan_and_write_keeps_its_record(
    watch: Watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch.given(**held(lease_ran_out=True, attempts=1))
    scan = watch.records.find_expired_leases

    def renewed_after_scan(now: datetime) -> list[Timelapse]:
        found = list(scan(now))
        watch.records.heartbeat(TIMELAPSE_ID, "w-1", 30)  # the worker comes back
        return found

    monkeypatch.setattr(watch.records, "find_expired_leases", renewed_after_scan)
    report = watch.service.sweep(NOW)
    # The expire's condition saw the new lease: nothing requeued, the worker keeps it
    assert report.requeued == []
    assert watch.record().lease_owner == "w-1"
    assert watch.queue.sent == []


def test_a_queued_record_nobody_claimed_for_long_is_sent_again(watch: Watch) -> None:
    watch.given(stage=Stage.QUEUED, updated_at=NOW - timedelta(hours=1))
    report = watch.service.sweep(NOW)
    assert report.resent == [TIMELAPSE_ID]
    assert watch.queue.sent == [TIMELAPSE_ID]


def test_a_recently_queued_record_is_not_sent_again(watch: Watch) -> None:
    watch.given(stage=Stage.QUEUED, updated_at=NOW - timedelta(minutes=1))
    assert watch.service.sweep(NOW).resent == []


# --- lost storage events (the local stack) ---------------------------------------------------


def awaiting(watch: Watch, *, stored: int | None) -> None:
    watch.given(updated_at=CREATED)  # created an hour before NOW, still awaiting its upload
    if stored is not None:
        watch.storage.put(KEY, b"x" * stored)


def test_an_upload_in_storage_whose_event_was_lost_is_queued() -> None:
    watch = Watch(with_storage=True)
    awaiting(watch, stored=1234)
    report = watch.service.sweep(NOW)
    assert report.recovered == [TIMELAPSE_ID]
    assert watch.record().stage is Stage.QUEUED
    assert watch.queue.sent == [TIMELAPSE_ID]


@pytest.mark.parametrize("stored", [None, 100])
def test_an_absent_or_unfinished_upload_is_left_waiting(stored: int | None) -> None:
    watch = Watch(with_storage=True)
    awaiting(watch, stored=stored)
    assert watch.service.sweep(NOW).recovered == []
    assert watch.record().stage is Stage.AWAITING_UPLOAD


def test_without_storage_the_sweep_does_not_look_for_lost_uploads(watch: Watch) -> None:
    awaiting(watch, stored=1234)
    assert watch.service.sweep(NOW).recovered == []


# --- the dead-letter queue ------------------------------------------------------------------


def test_a_dead_lettered_queued_record_fails_with_a_message(watch: Watch) -> None:
    watch.given(stage=Stage.QUEUED)
    assert watch.service.dead_letter(TIMELAPSE_ID, NOW) is True
    failed = watch.record()
    assert failed.status is Status.FAILED
    assert failed.error is not None
    assert failed.error.code == "processing_failed"
    assert [t.status for t in watch.notifier.ended] == [Status.FAILED]


@pytest.mark.parametrize(
    "fields",
    [
        held(lease_ran_out=False, attempts=1),
        {"status": Status.COMPLETE, "stage": None},
    ],
)
def test_a_dead_letter_leaves_a_live_or_finished_record_alone(
    watch: Watch, fields: dict[str, object]
) -> None:
    watch.given(**fields)
    before = watch.record()
    assert watch.service.dead_letter(TIMELAPSE_ID, NOW) is False
    assert watch.record() == before
    assert watch.notifier.ended == []


@pytest.mark.parametrize(
    ("env", "recovers"),
    [
        ({}, True),  # the local stack: a killed worker can swallow a storage event
        (DEPLOYED, False),  # S3 → SQS delivers at least once
        ({**DEPLOYED, "LAPSE_STORAGE_EVENTS": "false"}, True),  # R2: a tab closed before /process
    ],
)
def test_the_watchdog_looks_for_unannounced_uploads_where_an_announcement_can_be_lost(
    env: dict[str, str], recovers: bool
) -> None:
    assert wiring.recovers_unannounced_uploads(Settings.from_env(env)) is recovers


# --- the upload window ---------------------------------------------------------------------------

WINDOW = 24 * 3600.0


def windowed() -> Watch:
    watch = Watch(with_storage=True)
    watch.service.recover_uploads = False  # as deployed on S3
    watch.service.limits = Limits(upload_window_seconds=int(WINDOW))
    return watch


def test_a_record_still_awaiting_its_upload_after_the_window_fails_and_its_upload_is_aborted() -> (
    None
):
    # Given a multipart upload the API opened a day ago, and one a client opened itself
    watch = windowed()
    api_upload = watch.storage.create_multipart(KEY, content_type="video/mp4", metadata={})
    client_upload = watch.storage.create_multipart(KEY, content_type="video/mp4", metadata={})
    other_key = watch.storage.create_multipart(
        "videos/other.mp4", content_type="video/mp4", metadata={}
    )
    watch.given(
        created_at=NOW - timedelta(seconds=WINDOW + 1),
        upload=UploadInfo(UploadMethod.MULTIPART, api_upload, 10, 1),
    )
    # When the watchdog sweeps
    report = watch.service.sweep(NOW)
    # Then the record is failed with a reason, announced, and both uploads to its key are gone
    assert report.timed_out == [TIMELAPSE_ID]
    record = watch.record()
    assert record.status is Status.FAILED
    assert record.error is not None
    assert record.error.code == "upload_timed_out"
    assert "24 hours" in record.error.message
    assert watch.notifier.ended == [record]
    assert set(watch.storage.uploads) == {other_key}
    assert client_upload not in watch.storage.uploads
    # And a second sweep finds nothing more to do
    assert watch.service.sweep(NOW).timed_out == []


@pytest.mark.parametrize(
    "fields",
    [
        {"created_at": NOW - timedelta(seconds=WINDOW - 60)},  # still within the window
        {"created_at": NOW - timedelta(days=3), "stage": Stage.QUEUED},  # uploaded in time
        {"created_at": NOW - timedelta(days=3), "stage": None},  # uploaded, idle
        {"created_at": NOW - timedelta(days=3), "status": Status.COMPLETE, "stage": None},
    ],
    ids=["within", "queued", "idle", "complete"],
)
def test_the_window_ends_only_records_still_awaiting_their_upload(
    fields: dict[str, object],
) -> None:
    watch = windowed()
    watch.given(**fields)
    assert watch.service.sweep(NOW).timed_out == []
    assert watch.record().status is fields.get("status", Status.PENDING)
