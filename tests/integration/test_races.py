"""Races at the processing use case, against the local services with real ffmpeg: duplicate
deliveries, two workers on one record, cancels at random moments, late heartbeats, and a worker
that lost its lease while uploading. Every one is settled by a conditional write, never by timing:
each record ends in exactly one terminal state, rendered at most once, with at most one output.

These run against a moto server of their own whose DynamoDB writes are atomic, as the real
service's are (local/moto_server.py); plain moto lets two conditional writes both win.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from chalicelib import wiring
from chalicelib.adapters.media import FfmpegRenderer
from chalicelib.adapters.records import DynamoDBTimelapseRepository, bind_table
from chalicelib.adapters.storage import S3Storage
from chalicelib.domain.keys import poster_key, timelapse_key
from chalicelib.domain.timelapse import ErrorInfo, Status, Timelapse, utcnow
from chalicelib.errors import ConflictError
from chalicelib.services.ports import NoNotifier
from chalicelib.services.processing import Heartbeat, ProcessingService
from chalicelib.services.timelapses import TimelapseService
from chalicelib.services.watchdog import WatchdogService
from chalicelib.settings import Settings, get_settings
from local.config import LocalStack
from local.provision import provision
from tests.integration.conftest import clear_cached_wiring, wait_until_answering
from tests.support import FFMPEG, free_port, make_clip

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

NewRecord = Callable[..., Timelapse]
CANCELLED = ErrorInfo("cancelled", "Cancelled by its owner.")
TERMINAL = {Status.COMPLETE, Status.FAILED, Status.CANCELLED}


class CountingStorage:
    """The real storage, counting what each key received (and optionally holding an upload)."""

    def __init__(self, inner: S3Storage) -> None:
        self._inner = inner
        self.uploads: dict[str, int] = {}
        self._lock = threading.Lock()
        self.hold: threading.Event | None = None  # set: uploads wait for it
        self.holding = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def upload_file(self, path: Path, key: str, **kwargs: Any) -> None:
        with self._lock:
            self.uploads[key] = self.uploads.get(key, 0) + 1
        if self.hold is not None:
            self.holding.set()
            self.hold.wait(timeout=60)
        self._inner.upload_file(path, key, **kwargs)


class PartitionedRecords:
    """The real repository, except that once `cut` is set lease renewals no longer reach it
    (a network partition, or a process frozen past its lease)."""

    def __init__(self, inner: DynamoDBTimelapseRepository, *, cut: bool = False) -> None:
        self._inner = inner
        self.cut = threading.Event()
        if cut:
            self.cut.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def heartbeat(self, *args: Any, **kwargs: Any) -> Timelapse:
        if self.cut.is_set():
            raise ConnectionError("the table cannot be reached")
        return self._inner.heartbeat(*args, **kwargs)


class RecordingQueue:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def send_process(self, timelapse_id: str) -> None:
        self.sent.append(timelapse_id)


@dataclass
class Uploaded:
    record: Timelapse
    storage: S3Storage

    @property
    def id(self) -> str:
        return self.record.id

    def outputs(self) -> list[str]:
        keys = [timelapse_key(self.id), poster_key(self.id)]
        return [key for key in keys if self.storage.head(key) is not None]


@pytest.fixture(scope="module")
def atomic_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """Provisioned local services with atomic DynamoDB writes; the code under test points at them
    for this module, and back at whatever it pointed at before afterwards."""
    stack = LocalStack(moto_port=free_port(), api_port=free_port())
    log = tmp_path_factory.mktemp("atomic-moto") / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "local.moto_server", "-p", str(stack.moto_port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_answering(f"{stack.endpoint}/moto-api/", server, log)
        provision(stack)
        with pytest.MonkeyPatch.context() as env:
            for name, value in stack.environment().items():
                env.setenv(name, value)
            clear_cached_wiring()
            yield stack
        clear_cached_wiring()
    finally:
        previous = get_settings()
        bind_table(previous.table, previous.region, previous.aws_endpoint_url)
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def settings(atomic_stack: LocalStack) -> Settings:
    return get_settings()


@pytest.fixture
def repository(settings: Settings) -> DynamoDBTimelapseRepository:
    bind_table(settings.table, settings.region, settings.aws_endpoint_url)
    return DynamoDBTimelapseRepository()


@pytest.fixture
def storage(settings: Settings) -> S3Storage:
    return S3Storage(wiring.s3_client(settings), settings.bucket)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("races") / "clip.mp4", seconds=1, size="320x240")


@pytest.fixture
def uploaded(
    new_record: NewRecord,
    repository: DynamoDBTimelapseRepository,
    storage: S3Storage,
    clip: Path,
) -> Iterator[Callable[[], Uploaded]]:
    """Records whose original is in storage and whose upload was not yet accepted."""
    made: list[Uploaded] = []

    def make() -> Uploaded:
        template = new_record(save=False)
        record = replace(template, size_bytes=clip.stat().st_size, target_seconds=1.0)
        repository.create(record)
        storage.upload_file(clip, record.original_video_key, content_type="video/mp4", metadata={})
        made.append(Uploaded(record, storage))
        return made[-1]

    yield make
    for item in made:
        storage.delete(item.record.original_video_key, timelapse_key(item.id), poster_key(item.id))


def service(
    settings: Settings, records: Any, storage: Any, *, lease: float = 60.0, beat: float = 0.2
) -> ProcessingService:
    return ProcessingService(
        records=records,
        storage=storage,
        limits=settings.limits,
        notifier=NoNotifier(),
        media=FfmpegRenderer(FFMPEG),
        lease_seconds=lease,
        heartbeat_seconds=beat,
    )


def all_at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run `calls` on threads released together; their results (or the exceptions raised)."""
    start = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        start.wait()
        try:
            results[index] = call()
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def get(repository: DynamoDBTimelapseRepository, timelapse_id: str) -> Timelapse:
    found = repository.get(timelapse_id)
    assert found is not None
    return found


def test_the_same_storage_event_three_times_at_once_renders_once(
    settings: Settings,
    repository: DynamoDBTimelapseRepository,
    storage: S3Storage,
    uploaded: Callable[[], Uploaded],
) -> None:
    # Given an uploaded original whose storage event is delivered three times, at once
    item = uploaded()
    counting = CountingStorage(storage)
    worker = service(settings, repository, counting)
    key = item.record.original_video_key
    # When three workers handle the three deliveries
    all_at_once(*[lambda: worker.object_created(item.id, key) for _ in range(3)])
    # Then it was claimed and rendered once: one attempt, one upload of each output
    done = get(repository, item.id)
    assert done.status is Status.COMPLETE
    assert done.attempts == 1
    assert counting.uploads == {timelapse_key(item.id): 1, poster_key(item.id): 1}


def test_two_workers_claiming_one_queued_record_render_it_once(
    settings: Settings,
    repository: DynamoDBTimelapseRepository,
    storage: S3Storage,
    uploaded: Callable[[], Uploaded],
) -> None:
    for _ in range(5):
        # Given a queued record
        item = uploaded()
        repository.mark_uploaded(item.id, queue=True)
        counting = CountingStorage(storage)
        workers = [service(settings, repository, counting) for _ in range(2)]
        # When two workers run it at the same moment
        results = all_at_once(*[lambda w=w, tid=item.id: w.run(tid) for w in workers])
        # Then one of them did, and the other stopped without a side effect
        assert sorted(r is None for r in results) == [False, True], results
        assert get(repository, item.id).attempts == 1
        assert counting.uploads == {timelapse_key(item.id): 1, poster_key(item.id): 1}


def test_cancel_racing_completion_has_exactly_one_winner(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    rng = random.Random(5)
    winners = {"complete": 0, "cancel": 0}
    for _ in range(40):
        # Given a record a worker holds, about to complete
        record = repository.mark_uploaded(new_record().id, queue=True)
        repository.claim(record.id, token := f"t-{rng.random()}", 60.0)
        output = {"width": 2, "height": 2, "fps": 30, "durationSeconds": 1.0, "sizeBytes": 1}

        def complete(token: str = token, tid: str = record.id, output: Any = output) -> Timelapse:
            time.sleep(rng.random() / 500)
            return repository.complete(
                tid, token, processed_video_key="k", poster_key="p", output=output
            )

        def cancel(tid: str = record.id) -> Timelapse:
            time.sleep(rng.random() / 500)
            return repository.cancel(tid, CANCELLED)

        # When the owner cancels just as the worker completes
        done, cancelled = all_at_once(complete, cancel)
        # Then exactly one write succeeded, and the record shows that one
        succeeded = [r for r in (done, cancelled) if isinstance(r, Timelapse)]
        assert len(succeeded) == 1, (done, cancelled)
        assert all(isinstance(r, (Timelapse, ConflictError)) for r in (done, cancelled))
        final = get(repository, record.id)
        assert final.status is succeeded[0].status
        winners["complete" if final.status is Status.COMPLETE else "cancel"] += 1
    print(f"cancel vs complete, 40 trials: {winners}")


def test_cancels_at_random_moments_of_a_real_render_end_in_one_terminal_state(
    settings: Settings,
    repository: DynamoDBTimelapseRepository,
    storage: S3Storage,
    uploaded: Callable[[], Uploaded],
) -> None:
    rng = random.Random(7)
    api = TimelapseService(repository, storage, RecordingQueue(), settings.limits, NoNotifier())
    worker = service(settings, repository, storage)
    # A first run measures how long one takes, so cancels land anywhere in it
    probe_item = uploaded()
    started = time.monotonic()
    worker.object_created(probe_item.id, probe_item.record.original_video_key)
    typical = time.monotonic() - started
    assert get(repository, probe_item.id).status is Status.COMPLETE
    outcomes = {"complete": 0, "cancelled": 0}
    for _ in range(10):
        # Given a render under way
        item = uploaded()
        thread = threading.Thread(
            target=worker.object_created, args=(item.id, item.record.original_video_key)
        )
        thread.start()
        # When its owner cancels at a random moment
        time.sleep(rng.uniform(0, typical * 1.2))
        try:
            answer: Timelapse | ConflictError = api.cancel(item.record.owner_id, item.id)
        except ConflictError as exc:
            answer = exc
        thread.join(timeout=60)
        assert not thread.is_alive()
        # Then the record ends in the one terminal state the cancel's answer implies
        final = get(repository, item.id)
        if isinstance(answer, ConflictError):
            assert final.status is Status.COMPLETE
            assert item.outputs() == [timelapse_key(item.id), poster_key(item.id)]
            outcomes["complete"] += 1
        else:
            # And once cancelled, the worker wrote nothing more and left no output behind
            assert final.status is Status.CANCELLED
            assert final.updated_at == answer.updated_at
            assert final.processed_video_key is None
            assert item.outputs() == []
            outcomes["cancelled"] += 1
        assert final.status in TERMINAL
    print(f"random cancels over {typical:.2f} s renders: {outcomes}")


def test_a_heartbeat_after_the_cancel_writes_nothing(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given a worker's heartbeat running on a record it claimed
    record = repository.mark_uploaded(new_record().id, queue=True)
    repository.claim(record.id, "owner", 60.0)
    with Heartbeat(repository, record.id, "owner", lease_seconds=60.0, interval=0.05) as beat:
        beat.report_progress(40)
        # When the owner cancels
        cancelled = repository.cancel(record.id, CANCELLED)
        # Then the heartbeat notices within a few beats...
        deadline = time.monotonic() + 5
        while not beat.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert beat.lost
        beat.report_progress(80)
        time.sleep(0.3)
    # ...and neither it nor a late write by the worker changes the record
    with pytest.raises(ConflictError):
        repository.heartbeat(record.id, "owner", 60.0, progress=90)
    final = get(repository, record.id)
    assert final.status is Status.CANCELLED
    assert final.updated_at == cancelled.updated_at
    assert final.progress == cancelled.progress


def test_a_worker_that_cannot_renew_its_lease_stops_by_itself(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given a worker whose lease renewals no longer reach the table
    record = repository.mark_uploaded(new_record().id, queue=True)
    repository.claim(record.id, "owner", 0.5)
    cut_off = PartitionedRecords(repository, cut=True)
    with Heartbeat(cut_off, record.id, "owner", lease_seconds=0.5, interval=0.05) as beat:
        # Then once its lease has run out it no longer considers itself the owner
        deadline = time.monotonic() + 5
        while not beat.lost and time.monotonic() < deadline:
            time.sleep(0.05)
        assert beat.lost, "a worker must stop once it could not renew its lease in time"


def test_a_superseded_worker_leaves_the_winners_outputs_alone(
    settings: Settings,
    repository: DynamoDBTimelapseRepository,
    storage: S3Storage,
    uploaded: Callable[[], Uploaded],
) -> None:
    # Given worker A stalled in its upload, cut off from the table until its lease has run out
    item = uploaded()
    repository.mark_uploaded(item.id, queue=True)
    held = CountingStorage(storage)
    held.hold = threading.Event()
    partitioned = PartitionedRecords(repository)
    stalled = service(settings, partitioned, held, lease=3.0, beat=0.1)
    thread = threading.Thread(target=stalled.run, args=(item.id,))
    thread.start()
    assert held.holding.wait(timeout=30), "worker A never reached its upload"
    partitioned.cut.set()
    deadline = time.monotonic() + 10
    while (lease := get(repository, item.id).lease_expires_at) and lease > utcnow():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    # When the watchdog re-queues the record and worker B completes it
    queue = RecordingQueue()
    watchdog = WatchdogService(repository, queue, NoNotifier(), max_attempts=3)
    report = watchdog.sweep(utcnow() + timedelta(seconds=0.1))
    assert item.id in report.requeued
    winner = service(settings, repository, storage).run(item.id)
    assert winner is not None
    assert winner.status is Status.COMPLETE
    # And then worker A wakes up and finds out it lost
    held.hold.set()
    thread.join(timeout=60)
    # Then B's complete record still has its outputs: A deleted nothing that B owns
    final = get(repository, item.id)
    assert final.status is Status.COMPLETE
    assert final.attempts == 2
    assert item.outputs() == [timelapse_key(item.id), poster_key(item.id)]
