"""The worker's use case on in-memory fakes: what each path writes to the record, the bucket and
the notifier — accept or refuse an upload, claim, render, complete, fail, stop on a cancel."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest

from chalicelib.domain.limits import Limits
from chalicelib.domain.options import RenderOptions
from chalicelib.domain.timelapse import ErrorInfo, Stage, Status, Timelapse
from chalicelib.errors import InvalidMediaError
from chalicelib.services import processing
from chalicelib.services.processing import ProcessingService
from tests.factories import SOURCE, TIMELAPSE_ID, a_timelapse
from tests.fakes import FakeMedia, FakeRecords, FakeStorage, RecordingNotifier

KEY = f"videos/{TIMELAPSE_ID}.mp4"


@dataclass
class World:
    records: FakeRecords
    storage: FakeStorage
    notifier: RecordingNotifier
    media: FakeMedia
    service: ProcessingService

    def record(self) -> Timelapse:
        found = self.records.get(TIMELAPSE_ID)
        assert found is not None
        return found


@pytest.fixture
def world() -> Iterator[World]:
    media = FakeMedia(SOURCE)
    records, storage, notifier = FakeRecords(), FakeStorage(), RecordingNotifier()
    service = ProcessingService(
        records=records,
        storage=storage,
        limits=Limits(),
        notifier=notifier,
        media=media,
        lease_seconds=30.0,
        heartbeat_seconds=0.02,
    )
    world = World(records, storage, notifier, media, service)
    yield world
    media.release.set()


def uploaded(world: World, *, size: int = 1234, **overrides: object) -> None:
    """Given a created record whose original (of `size` bytes) is now in the bucket."""
    world.records.create(a_timelapse(**overrides))
    world.storage.put(KEY, b"x" * size)


# --- the storage event --------------------------------------------------------------------------


def test_an_upload_of_the_declared_size_is_rendered_and_completed(world: World) -> None:
    uploaded(world)
    # When the storage event arrives
    world.service.object_created(TIMELAPSE_ID, KEY)
    # Then the record is complete with its outputs in the bucket, and the notifier was told
    done = world.record()
    assert done.status is Status.COMPLETE
    assert done.progress == 100
    assert done.attempts == 1
    assert done.lease_owner is None
    assert done.processed_video_key == f"timelapses/{TIMELAPSE_ID}.mp4"
    assert done.poster_key == f"posters/{TIMELAPSE_ID}.jpg"
    assert world.storage.head(done.processed_video_key) is not None
    assert world.storage.head(done.poster_key) is not None
    assert done.output is not None
    assert done.output["speedup"] > 1
    assert done.source is not None
    assert done.source["sizeBytes"] == 1234
    assert [t.status for t in world.notifier.ended] == [Status.COMPLETE]


def test_an_upload_of_another_size_fails_the_record_and_is_deleted(world: World) -> None:
    uploaded(world, size=1235)
    world.service.object_created(TIMELAPSE_ID, KEY)
    failed = world.record()
    assert failed.status is Status.FAILED
    assert failed.error == ErrorInfo(
        "size_mismatch",
        "The uploaded file has 1235 bytes but 1234 were declared; upload the file again.",
    )
    assert world.storage.head(KEY) is None
    assert world.media.renders == 0


def test_without_a_declared_size_the_stored_one_is_recorded_and_rendered(world: World) -> None:
    uploaded(world, size=2000, size_bytes=None)  # made through Uppy's routes: no size given
    world.service.object_created(TIMELAPSE_ID, KEY)
    done = world.record()
    assert done.status is Status.COMPLETE
    assert done.size_bytes == 2000


def test_without_a_declared_size_an_oversized_upload_fails_and_is_deleted(world: World) -> None:
    world.service = replace(world.service, limits=Limits(max_upload_bytes=1999))
    uploaded(world, size=2000, size_bytes=None)
    world.service.object_created(TIMELAPSE_ID, KEY)
    failed = world.record()
    assert failed.status is Status.FAILED
    assert failed.error is not None
    assert failed.error.code == "too_large"
    assert "2000 bytes, over the limit of 1999" in failed.error.message
    assert world.storage.head(KEY) is None
    assert world.media.renders == 0
    assert [t.status for t in world.notifier.ended] == [Status.FAILED]
    assert [t.status for t in world.notifier.ended] == [Status.FAILED]


def test_an_event_for_an_unknown_key_changes_nothing(world: World) -> None:
    uploaded(world)
    world.service.object_created(TIMELAPSE_ID, "videos/someone-else.mp4")
    assert world.record().stage is Stage.AWAITING_UPLOAD
    assert world.media.renders == 0


def test_an_upload_created_with_process_false_waits_idle(world: World) -> None:
    uploaded(world, process=False)
    world.service.object_created(TIMELAPSE_ID, KEY)
    idle = world.record()
    assert (idle.status, idle.stage) == (Status.PENDING, None)
    assert world.media.renders == 0


def test_a_duplicate_event_after_completion_renders_nothing_more(world: World) -> None:
    uploaded(world)
    world.service.object_created(TIMELAPSE_ID, KEY)
    completed = world.record()
    # When the same event is delivered again
    world.service.object_created(TIMELAPSE_ID, KEY)
    # Then the claim's condition refuses it: one render, one notification, record untouched
    assert world.media.renders == 1
    assert world.record() == completed
    assert len(world.notifier.ended) == 1


# --- one attempt ------------------------------------------------------------------------------


def test_a_run_on_a_record_nobody_queued_is_not_claimed(world: World) -> None:
    uploaded(world)
    assert world.service.run(TIMELAPSE_ID) is None
    assert world.record().status is Status.PENDING
    assert world.media.renders == 0


def test_a_file_that_is_not_a_video_fails_with_the_probe_s_reason(world: World) -> None:
    uploaded(world)
    world.media.refuse = InvalidMediaError("The file is not a video we can read.")
    world.service.object_created(TIMELAPSE_ID, KEY)
    failed = world.record()
    assert failed.status is Status.FAILED
    assert failed.error == ErrorInfo("invalid_media", "The file is not a video we can read.")
    # The bad original goes too, and nothing was written
    assert world.storage.objects == {}
    assert [t.status for t in world.notifier.ended] == [Status.FAILED]


def test_an_unexpected_error_fails_with_a_readable_internal_error(world: World) -> None:
    uploaded(world)
    world.media.refuse = RuntimeError("ffmpeg exploded")
    world.service.object_created(TIMELAPSE_ID, KEY)
    failed = world.record()
    assert failed.status is Status.FAILED
    assert failed.error == processing.INTERNAL_ERROR
    assert world.storage.head(KEY) is not None  # not the upload's fault: kept for a retry


def test_an_original_gone_from_storage_fails_with_a_message(world: World) -> None:
    uploaded(world)
    world.records.mark_uploaded(TIMELAPSE_ID, queue=True)
    world.storage.delete(KEY)
    world.service.run(TIMELAPSE_ID)
    failed = world.record()
    assert failed.status is Status.FAILED
    assert failed.error is not None
    assert "gone from storage" in failed.error.message


def test_a_cancel_during_the_render_stops_it_and_writes_nothing_more(world: World) -> None:
    uploaded(world)
    world.media.release.clear()  # the render runs until the test lets it go
    worker = threading.Thread(target=world.service.object_created, args=(TIMELAPSE_ID, KEY))
    worker.start()
    assert world.media.rendering.wait(5)
    # When the owner cancels while it renders
    world.records.cancel(TIMELAPSE_ID, ErrorInfo("cancelled", "Cancelled by its owner."))
    worker.join(timeout=5)
    # Then the worker saw it at a heartbeat and stopped: still cancelled, no outputs, no notice
    assert not worker.is_alive()
    assert world.record().status is Status.CANCELLED
    assert set(world.storage.objects) == {KEY}
    assert world.notifier.ended == []


def test_the_heartbeat_records_stage_and_progress_while_rendering(world: World) -> None:
    uploaded(world)
    world.media.release.clear()
    worker = threading.Thread(target=world.service.object_created, args=(TIMELAPSE_ID, KEY))
    worker.start()
    assert world.media.rendering.wait(5)
    rendering = world.record()
    assert (rendering.status, rendering.stage) == (Status.PROCESSING, Stage.RENDERING)
    assert rendering.source is not None
    world.media.release.set()
    worker.join(timeout=5)
    assert world.record().status is Status.COMPLETE


def test_a_worker_whose_lease_was_taken_over_deletes_nothing_of_its_successor(
    world: World,
) -> None:
    uploaded(world)
    world.media.release.clear()
    worker = threading.Thread(target=world.service.object_created, args=(TIMELAPSE_ID, KEY))
    worker.start()
    assert world.media.rendering.wait(5)
    # When another worker takes the record over (its lease token changes under the first)
    with world.records._lock:
        current = world.records.items[TIMELAPSE_ID]
        world.records.items[TIMELAPSE_ID] = replace(current, lease_owner="successor")
    world.storage.put(f"timelapses/{TIMELAPSE_ID}.mp4", b"the successor's output")
    worker.join(timeout=5)
    # Then the first stops without touching the successor's output or the record
    assert world.record().lease_owner == "successor"
    assert world.storage.head(f"timelapses/{TIMELAPSE_ID}.mp4") is not None
    assert world.notifier.ended == []


def test_skip_idle_with_a_speed_is_decided_in_the_render_itself(world: World) -> None:
    # Given a 10-minute recording whose render finds 6 idle minutes, asked at speed 30
    world.media.idle = ((120.0, 480.0),)
    uploaded(world, target_seconds=None, speed=30.0, options=RenderOptions(skip_idle=True))
    # When it is processed
    world.service.object_created(TIMELAPSE_ID, KEY)
    # Then one pass renders the plan without its idle frames: no scan of its own
    done = world.record()
    assert done.status is Status.COMPLETE
    assert done.output is not None
    assert done.output["idleSecondsSkipped"] == 360
    assert world.media.scanned == []
    assert [plan.dropped for plan in world.media.single_passes] == [()]
    assert [plan.dropped for plan in world.media.rendered] == [((120.0, 480.0),)]
    assert world.media.rendered[0].expected_duration_seconds == pytest.approx(8)


def test_skip_idle_with_a_length_scans_then_fills_it_with_the_active_parts(world: World) -> None:
    world.media.idle = ((120.0, 480.0),)
    uploaded(world, target_seconds=20, options=RenderOptions(skip_idle=True))
    world.service.object_created(TIMELAPSE_ID, KEY)
    done = world.record()
    assert done.output is not None
    assert done.output["idleSecondsSkipped"] == 360
    assert [plan.dropped for plan in world.media.scanned] == [()]
    assert world.media.single_passes == []
    assert [plan.dropped for plan in world.media.rendered] == [((120.0, 480.0),)]
    assert world.media.rendered[0].expected_duration_seconds == pytest.approx(20)


def test_without_skip_idle_nothing_is_scanned(world: World) -> None:
    uploaded(world)
    world.service.object_created(TIMELAPSE_ID, KEY)
    assert world.record().output["idleSecondsSkipped"] == 0  # type: ignore[index]
    assert world.media.scanned == []
