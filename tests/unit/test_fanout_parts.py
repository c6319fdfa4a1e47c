"""A render fanned out to parts, on in-memory fakes: the claim splits it, each part renders its
segment, exactly one invocation joins; duplicates, retries, failures, cancels and the watchdog."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from chalicelib.domain.fanout import _lead_in_seconds, estimate_seconds
from chalicelib.domain.limits import Limits
from chalicelib.domain.plan import RenderPlan
from chalicelib.domain.timelapse import ErrorInfo, Stage, Status, Timelapse
from chalicelib.errors import ConflictError, RenderError
from chalicelib.services.parts import PartsService
from chalicelib.services.processing import ProcessingService
from chalicelib.services.watchdog import WatchdogService
from tests.factories import SOURCE, TIMELAPSE_ID, a_timelapse
from tests.fakes import FakeMedia, FakeQueue, FakeRecords, FakeStorage, RecordingNotifier

KEY = f"videos/{TIMELAPSE_ID}.mp4"
# The invocation's limit as the handler passes it: 100 s left, so each part gets ~33 s of work.
LIMIT_SECONDS = 100.0


def _lead_in(plan: RenderPlan) -> float:
    return _lead_in_seconds(plan, SOURCE, aligned=True)


@dataclass
class World:
    records: FakeRecords
    storage: FakeStorage
    queue: FakeQueue
    notifier: RecordingNotifier
    media: FakeMedia
    processing: ProcessingService
    parts: PartsService

    def record(self) -> Timelapse:
        found = self.records.get(TIMELAPSE_ID)
        assert found is not None
        return found

    def deadline(self) -> float:
        return time.monotonic() + LIMIT_SECONDS

    def fan_out(self) -> Timelapse:
        """Given an uploaded 10-minute 1080p30 recording asked as a 30-s timelapse (every frame
        decoded), claimed by an invocation that has 100 s."""
        self.records.create(a_timelapse(status=Status.PENDING, stage=Stage.QUEUED))
        self.storage.put(KEY, b"x" * 1234)
        self.processing.run(TIMELAPSE_ID, deadline=self.deadline())
        return self.record()

    def run_part(self, part: int, token: str | None = None) -> Timelapse | None:
        fanout = self.record().fanout
        chosen = token or (fanout.token if fanout else "gone")
        return self.parts.run_part(TIMELAPSE_ID, chosen, part, self.deadline())

    def segments(self) -> list[str]:
        return [key for key in self.storage.objects if key.startswith("segments/")]


@pytest.fixture
def world() -> Iterator[World]:
    media = FakeMedia(SOURCE)
    media.keyframes = tuple(i * 2.0 for i in range(300))
    records, storage, queue = FakeRecords(), FakeStorage(), FakeQueue()
    notifier = RecordingNotifier()
    processing = ProcessingService(
        records=records,
        storage=storage,
        limits=Limits(),
        notifier=notifier,
        media=media,
        lease_seconds=30.0,
        heartbeat_seconds=0.02,
        queue=queue,
    )
    parts = PartsService(processing=processing, queue=queue)
    world = World(records, storage, queue, notifier, media, processing, parts)
    yield world
    media.release.set()


def test_a_render_too_long_for_the_function_is_fanned_out_to_parts_on_the_queue(world: World):
    fanned = world.fan_out()
    # Then nothing was rendered yet: the record holds the parts and each part is one message
    assert world.media.renders == 0
    assert fanned.status is Status.PROCESSING
    assert fanned.stage is Stage.RENDERING
    assert fanned.fanout is not None
    parts = fanned.fanout.parts
    assert len(parts) >= 3
    assert world.queue.parts == [(TIMELAPSE_ID, fanned.fanout.token, i) for i in range(len(parts))]
    assert sum(part.frame_count for part in parts) == fanned.fanout.frame_count == 900
    # each part starts on one of the source's keyframes
    assert all(part.seek_seconds in (world.media.keyframes or ()) for part in parts)
    assert fanned.progress == 0


def test_a_render_that_fits_is_rendered_in_one_go(world: World):
    world.records.create(a_timelapse(status=Status.PENDING, stage=Stage.QUEUED))
    world.storage.put(KEY, b"x" * 1234)
    done = world.processing.run(TIMELAPSE_ID, deadline=time.monotonic() + 900)
    assert done is not None
    assert done.status is Status.COMPLETE
    assert world.queue.parts == []


def test_a_render_past_the_latency_target_is_fanned_out_to_parts_of_about_that_size(world: World):
    # Given an invocation with a long limit, which alone would render it in one go, and a target
    world.processing.part_target_seconds = 10.0
    world.records.create(a_timelapse(status=Status.PENDING, stage=Stage.QUEUED))
    world.storage.put(KEY, b"x" * 1234)
    world.processing.run(TIMELAPSE_ID, deadline=time.monotonic() + 900)
    fanout = world.record().fanout
    assert fanout is not None
    assert world.media.renders == 0
    plan = world.processing.prepare(world.record()).plan
    estimates = [estimate_seconds(plan, SOURCE, part.frame_count) for part in fanout.parts]
    assert len(estimates) >= 2
    assert max(estimates) <= 10.0 + _lead_in(plan)
    assert sum(part.frame_count for part in fanout.parts) == plan.frame_count


def test_the_parts_render_their_own_windows_and_the_last_one_joins_them_in_order(world: World):
    fanned = world.fan_out()
    assert fanned.fanout is not None
    count = len(fanned.fanout.parts)
    # When every part runs (the last one first: order does not matter)
    for part in [count - 1, *range(count - 1)]:
        world.run_part(part)
    # Then the record is complete, joined once from the segments in the plan's order
    done = world.record()
    assert done.status is Status.COMPLETE
    assert done.progress == 100
    assert done.output is not None
    assert done.output["parts"] == count
    assert len(world.media.joined) == 1
    expected = [f"frames {p.first_frame}-{p.end_frame}".encode() for p in fanned.fanout.parts]
    assert world.media.joined[0] == expected
    assert sorted((p.first_frame, p.frame_count) for p in world.media.rendered) == sorted(
        (p.first_frame, p.frame_count) for p in fanned.fanout.parts
    )
    assert world.storage.head(f"timelapses/{TIMELAPSE_ID}.mp4") is not None
    assert world.segments() == []
    assert [t.status for t in world.notifier.ended] == [Status.COMPLETE]


def test_progress_is_one_number_over_all_parts(world: World):
    fanned = world.fan_out()
    assert fanned.fanout is not None
    world.run_part(0)
    first = fanned.fanout.parts[0].frame_count
    assert world.record().progress == first * 100 // 900
    # a part half way (FakeMedia reports 50 %, then waits) counts half its frames
    world.media.release.clear()
    runner = threading.Thread(target=world.run_part, args=(1,))
    runner.start()
    half = first + fanned.fanout.parts[1].frame_count // 2
    assert _until(lambda: world.record().progress == half * 100 // 900)
    world.media.release.set()
    runner.join()


def test_a_duplicate_message_for_a_part_already_done_changes_nothing(world: World):
    fanned = world.fan_out()
    assert fanned.fanout is not None
    world.run_part(0)
    renders, writes = world.media.renders, len(world.records.writes)
    assert world.run_part(0) is None
    assert world.media.renders == renders
    assert len(world.records.writes) == writes


def test_a_part_finishing_twice_is_counted_once_and_joined_once(world: World):
    fanned = world.fan_out()
    assert fanned.fanout is not None
    count = len(fanned.fanout.parts)
    for part in range(count - 1):
        world.run_part(part)
    # When the last part runs twice at once (a redelivered message, a retry that overlapped)
    world.media.release.clear()
    runners = [threading.Thread(target=world.run_part, args=(count - 1,)) for _ in range(2)]
    for runner in runners:
        runner.start()
    assert _until(lambda: world.media.renders == count + 1)
    world.media.release.set()
    for runner in runners:
        runner.join()
    # Then it was counted once, joined once, completed once, and no stray segment is left
    assert len(world.media.joined) == 1
    assert [t.status for t in world.notifier.ended] == [Status.COMPLETE]
    assert world.segments() == []
    # and the counter refuses a third finish outright
    with pytest.raises(ConflictError):
        world.records.finish_part(TIMELAPSE_ID, fanned.fanout.token, 0, key="k", frames=1)


def test_a_failed_part_is_queued_again_then_the_timelapse_fails_with_the_reason(world: World):
    fanned = world.fan_out()
    assert fanned.fanout is not None
    token = fanned.fanout.token
    world.run_part(0)
    world.media.fail_render = RenderError("ffmpeg could not render this video: damaged")
    # When part 2 fails: it is counted and queued again
    world.run_part(1)
    assert world.record().fanout.failures == {1: 1}  # type: ignore[union-attr]
    assert world.queue.parts[-1] == (TIMELAPSE_ID, token, 1)
    assert world.record().status is Status.PROCESSING
    # And when it keeps failing, the third failure ends the timelapse with a reason
    world.run_part(1)
    world.run_part(1, token)
    failed = world.record()
    assert failed.status is Status.FAILED
    assert failed.error is not None
    assert failed.error.code == "render_failed"
    assert failed.error.message.startswith(f"Part 2 of {len(fanned.fanout.parts)} of the render")
    assert "damaged" in failed.error.message
    assert world.segments() == []
    assert [t.status for t in world.notifier.ended] == [Status.FAILED]
    # and a part still queued finds the fan-out over and does nothing
    renders = world.media.renders
    assert world.run_part(2, token) is None
    assert world.media.renders == renders


def test_a_cancel_stops_a_running_part_and_removes_every_segment(world: World):
    fanned = world.fan_out()
    assert fanned.fanout is not None
    token = fanned.fanout.token
    world.run_part(0)
    assert len(world.segments()) == 1
    world.media.release.clear()
    runner = threading.Thread(target=world.run_part, args=(1,))
    runner.start()
    assert world.media.rendering.wait(5)
    # When the owner cancels
    world.records.cancel(TIMELAPSE_ID, ErrorInfo("cancelled", "Cancelled by its owner."))
    runner.join(timeout=5)
    # Then the running part stopped on its own and removed the fan-out's segments
    assert not runner.is_alive()
    assert world.segments() == []
    assert world.record().status is Status.CANCELLED
    # and the parts still queued do nothing
    renders = world.media.renders
    assert world.run_part(2, token) is None
    assert world.media.renders == renders


def test_the_watchdog_takes_back_a_fan_out_whose_parts_stopped_renewing_it(world: World):
    fanned = world.fan_out()
    assert fanned.fanout is not None
    token = fanned.fanout.token
    world.run_part(0)
    watchdog = WatchdogService(
        records=world.records, queue=world.queue, notifier=world.notifier, max_attempts=3
    )
    # When no part renews the lease (their workers died) until it runs out
    expires = world.record().lease_expires_at
    assert expires is not None
    later = expires + timedelta(seconds=1)
    report = watchdog.sweep(later)
    # Then the record is queued again as a whole, forgetting the fan-out
    assert report.requeued == [TIMELAPSE_ID]
    again = world.record()
    assert again.status is Status.PENDING
    assert again.fanout is None
    # and a part of the old fan-out that starts now does nothing
    renders = world.media.renders
    assert world.run_part(1, token) is None
    assert world.media.renders == renders


def _until(condition, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_a_last_part_short_of_time_hands_the_join_to_a_fresh_invocation(world: World):
    fanned = world.fan_out()
    assert fanned.fanout is not None
    token, count = fanned.fanout.token, len(fanned.fanout.parts)
    for part in range(count - 1):
        world.run_part(part)
    # When the last part finishes with little of its invocation left (it renders until then)
    world.media.release.clear()
    runner = threading.Thread(
        target=world.parts.run_part, args=(TIMELAPSE_ID, token, count - 1, time.monotonic() + 0.5)
    )
    runner.start()
    time.sleep(0.4)
    world.media.release.set()
    runner.join()
    # Then it queues the join instead of making it
    assert world.media.joined == []
    assert world.queue.parts[-1] == (TIMELAPSE_ID, token, count)
    assert world.record().status is Status.PROCESSING
    # and the join message joins once; a duplicate of it does nothing
    done = world.run_part(count, token)
    assert done is not None
    assert done.status is Status.COMPLETE
    assert world.run_part(count, token) is None
    assert len(world.media.joined) == 1
    assert [t.status for t in world.notifier.ended] == [Status.COMPLETE]


def test_a_join_message_before_every_part_is_done_does_nothing(world: World):
    fanned = world.fan_out()
    assert fanned.fanout is not None
    assert world.run_part(len(fanned.fanout.parts)) is None
    assert world.media.joined == []
    assert world.record().status is Status.PROCESSING
