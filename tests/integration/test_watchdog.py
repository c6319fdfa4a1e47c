"""The watchdog with the real repository and a real SQS queue: a worker that died leaves a lease
that runs out; the sweep queues the record again while attempts remain, then fails it."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from chalicelib.adapters.queue import SQSWorkQueue
from chalicelib.adapters.records import DynamoDBTimelapseRepository
from chalicelib.adapters.storage import S3Storage
from chalicelib.domain.timelapse import Stage, Status, Timelapse, utcnow
from chalicelib.events import Work, work_in_message
from chalicelib.services.watchdog import WatchdogService
from local.config import LocalStack

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

NewRecord = Callable[..., Timelapse]
LEASE = 60.0
MAX_ATTEMPTS = 3


class RecordingNotifier:
    def __init__(self) -> None:
        self.ended: list[Timelapse] = []

    def timelapse_ended(self, timelapse: Timelapse) -> None:
        self.ended.append(timelapse)


class Queue:
    """A fresh SQS queue of the test's own, and a way to read what was sent to it."""

    def __init__(self, sqs: SQSClient, url: str) -> None:
        self.sqs = sqs
        self.url = url
        self.adapter = SQSWorkQueue(sqs, url)

    def received(self, *, expect: int, timeout: float = 10.0) -> list[Work]:
        """Work in the messages on the queue: waits until `expect` arrived, then drains."""
        work: list[Work] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.sqs.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=0 if work else 1
            )
            messages = answer.get("Messages", [])
            for message in messages:
                work.extend(work_in_message(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])
            if not messages and len(work) >= expect:
                break
        return work


@pytest.fixture
def queue(local_stack: LocalStack) -> Iterator[Queue]:
    sqs = local_stack.sqs()
    url = sqs.create_queue(QueueName=f"lapse-watchdog-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    yield Queue(sqs, url)
    sqs.delete_queue(QueueUrl=url)


@pytest.fixture
def notifier() -> RecordingNotifier:
    return RecordingNotifier()


@pytest.fixture
def watchdog(
    repository: DynamoDBTimelapseRepository, queue: Queue, notifier: RecordingNotifier
) -> WatchdogService:
    return WatchdogService(
        records=repository, queue=queue.adapter, notifier=notifier, max_attempts=MAX_ATTEMPTS
    )


def claimed(repository: DynamoDBTimelapseRepository, timelapse_id: str) -> str:
    """A worker claims the record; its token."""
    token = uuid.uuid4().hex
    repository.claim(timelapse_id, token, LEASE)
    return token


def after_the_lease() -> datetime:
    return utcnow() + timedelta(seconds=LEASE + 1)


def test_an_expired_lease_is_queued_again(
    repository: DynamoDBTimelapseRepository,
    new_record: NewRecord,
    watchdog: WatchdogService,
    queue: Queue,
) -> None:
    # Given a worker that claimed a record and died (its lease runs out)
    record = repository.mark_uploaded(new_record().id, queue=True)
    claimed(repository, record.id)
    # When the watchdog sweeps after the lease ran out
    report = watchdog.sweep(after_the_lease())
    # Then the record waits for a worker again, and a process message is on the queue
    assert record.id in report.requeued
    assert record.id not in report.failed
    found = repository.get(record.id)
    assert found is not None
    assert (found.status, found.stage, found.lease_owner) == (Status.PENDING, Stage.QUEUED, None)
    assert found.attempts == 1
    assert Work("process", record.id) in queue.received(expect=1)


def test_retries_until_max_attempts_then_fails_with_a_clear_message(
    repository: DynamoDBTimelapseRepository,
    new_record: NewRecord,
    watchdog: WatchdogService,
    queue: Queue,
    notifier: RecordingNotifier,
) -> None:
    # Given a record whose every worker dies
    record = repository.mark_uploaded(new_record().id, queue=True)
    outcomes: list[str] = []
    for _attempt in range(MAX_ATTEMPTS):
        claimed(repository, record.id)
        report = watchdog.sweep(after_the_lease())
        outcomes.append("requeued" if record.id in report.requeued else "")
        outcomes[-1] += "failed" if record.id in report.failed else ""
    # Then it was queued again after attempts 1 and 2, and failed after attempt 3
    assert outcomes == ["requeued", "requeued", "failed"]
    assert queue.received(expect=2).count(Work("process", record.id)) == 2
    found = repository.get(record.id)
    assert found is not None
    assert (found.status, found.stage, found.attempts) == (Status.FAILED, None, 3)
    assert found.error is not None
    assert found.error.code == "worker_lost"
    assert "stopped unexpectedly 3 times" in found.error.message
    assert found.lease_owner is None
    # and whoever listens for terminal states heard of it once
    assert [t.id for t in notifier.ended] == [record.id]
    assert notifier.ended[0].status is Status.FAILED


def test_a_live_lease_is_left_alone(
    repository: DynamoDBTimelapseRepository,
    new_record: NewRecord,
    watchdog: WatchdogService,
    queue: Queue,
    notifier: RecordingNotifier,
) -> None:
    # Given a worker that holds a live lease
    record = repository.mark_uploaded(new_record().id, queue=True)
    token = claimed(repository, record.id)
    # When the watchdog sweeps now
    report = watchdog.sweep(utcnow())
    # Then nothing happens to it
    assert record.id not in report.requeued + report.failed + report.resent
    found = repository.get(record.id)
    assert found is not None
    assert (found.status, found.lease_owner, found.attempts) == (Status.PROCESSING, token, 1)
    assert Work("process", record.id) not in queue.received(expect=0, timeout=1.5)
    assert notifier.ended == []


class WorkerComesBack(DynamoDBTimelapseRepository):
    """The worker renews its lease between the watchdog's scan and its conditional write."""

    def __init__(self, timelapse_id: str, token: str) -> None:
        self.timelapse_id = timelapse_id
        self.token = token

    def find_expired_leases(self, now: datetime) -> Iterator[Timelapse]:
        expired = list(super().find_expired_leases(now))
        self.heartbeat(self.timelapse_id, self.token, LEASE * 10, progress=50)
        yield from expired


def test_a_worker_that_renews_its_lease_during_the_sweep_keeps_it(
    repository: DynamoDBTimelapseRepository,
    new_record: NewRecord,
    queue: Queue,
) -> None:
    # Given a lease that looks expired to the watchdog's scan
    record = repository.mark_uploaded(new_record().id, queue=True)
    token = claimed(repository, record.id)
    racing = WorkerComesBack(record.id, token)
    watchdog = WatchdogService(
        records=racing,
        queue=queue.adapter,
        notifier=RecordingNotifier(),
        max_attempts=MAX_ATTEMPTS,
    )
    # When the worker heartbeats before the watchdog's write
    report = watchdog.sweep(after_the_lease())
    # Then the write's condition sees the fresh lease: the worker keeps the record
    assert record.id not in report.requeued + report.failed
    found = repository.get(record.id)
    assert found is not None
    assert (found.status, found.lease_owner, found.progress) == (Status.PROCESSING, token, 50)
    assert Work("process", record.id) not in queue.received(expect=0, timeout=1.5)


def test_a_queued_record_whose_message_was_lost_is_sent_again(
    repository: DynamoDBTimelapseRepository,
    new_record: NewRecord,
    watchdog: WatchdogService,
    queue: Queue,
) -> None:
    # Given a queued record no worker picked up
    record = repository.mark_uploaded(new_record().id, queue=True)
    # When the watchdog sweeps after the grace period
    report = watchdog.sweep(utcnow() + timedelta(seconds=watchdog.queued_grace_seconds + 1))
    # Then its message is sent again, and it stays queued for the claim to settle duplicates
    assert record.id in report.resent
    assert Work("process", record.id) in queue.received(expect=1)
    found = repository.get(record.id)
    assert found is not None
    assert (found.status, found.stage) == (Status.PENDING, Stage.QUEUED)


def test_the_queued_message_is_the_one_the_worker_reads(queue: Queue) -> None:
    queue.adapter.send_process("0193f0c2-1234-4abc-8def-0123456789ab")
    answer = queue.sqs.receive_message(QueueUrl=queue.url, WaitTimeSeconds=1)
    (message,) = answer["Messages"]
    assert json.loads(message["Body"]) == {
        "type": "lapse.process",
        "timelapseId": "0193f0c2-1234-4abc-8def-0123456789ab",
    }


@pytest.fixture
def storage(local_stack: LocalStack) -> S3Storage:
    return S3Storage(local_stack.s3(), local_stack.bucket)


def test_an_upload_whose_event_was_lost_is_queued_by_the_sweep(
    repository: DynamoDBTimelapseRepository,
    new_record: NewRecord,
    queue: Queue,
    notifier: RecordingNotifier,
    storage: S3Storage,
    local_stack: LocalStack,
) -> None:
    watchdog = WatchdogService(
        records=repository,
        queue=queue.adapter,
        notifier=notifier,
        max_attempts=MAX_ATTEMPTS,
        storage=storage,
    )
    # Given records still awaiting their upload: one whose object is fully stored (its storage
    # event was lost), one whose object is not there yet, one holding fewer bytes than declared
    stored, missing, partial = new_record(), new_record(), new_record()
    s3 = local_stack.s3()  # the bucket, as a client's PUT would have left it
    s3.put_object(Bucket=storage.bucket, Key=stored.original_video_key, Body=b"\0" * 1024)
    s3.put_object(Bucket=storage.bucket, Key=partial.original_video_key, Body=b"\0" * 10)
    try:
        # When the sweep runs long after they were created
        report = watchdog.sweep(utcnow() + timedelta(hours=1))
        # Then only the fully stored one is queued, with a message for the worker
        assert stored.id in report.recovered
        assert missing.id not in report.recovered
        assert partial.id not in report.recovered
        assert repository.get(stored.id).stage is Stage.QUEUED  # type: ignore[union-attr]
        assert repository.get(missing.id).stage is Stage.AWAITING_UPLOAD  # type: ignore[union-attr]
        assert repository.get(partial.id).stage is Stage.AWAITING_UPLOAD  # type: ignore[union-attr]
        assert Work("process", stored.id) in queue.received(expect=1)
        # And a fresh record is left to its upload
        assert watchdog.sweep(utcnow()).recovered == []
    finally:
        storage.delete(stored.original_video_key, partial.original_video_key)
