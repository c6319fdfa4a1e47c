"""The repository against the real local DynamoDB: each transition of the state machine
(DESIGN.md) is one conditional write, and a false condition is a ConflictError, never an overwrite.
"""

from __future__ import annotations

import base64
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest

from chalicelib.adapters.records import DynamoDBTimelapseRepository
from chalicelib.domain.options import RenderOptions
from chalicelib.domain.timelapse import ErrorInfo, Stage, Status, Timelapse, utcnow
from chalicelib.errors import ConflictError, NotFoundError, ValidationError

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

NewRecord = Callable[..., Timelapse]
LEASE = 60.0
CANCELLED = ErrorInfo("cancelled", "Cancelled by its owner.")
BROKEN = ErrorInfo("invalid_media", "The file is not a video.")
LOST = ErrorInfo("worker_lost", "Processing stopped unexpectedly.")
OUTPUT = {"width": 1280, "height": 720, "fps": 30, "durationSeconds": 10.0, "sizeBytes": 5}


def token() -> str:
    return uuid.uuid4().hex


def queued(repo: DynamoDBTimelapseRepository, new_record: NewRecord) -> Timelapse:
    """Given a record whose upload has arrived and which waits for a worker."""
    return repo.mark_uploaded(new_record().id, queue=True)


def processing(repo: DynamoDBTimelapseRepository, new_record: NewRecord) -> tuple[Timelapse, str]:
    """Given a record a worker holds: (record, the worker's token)."""
    owner = token()
    return repo.claim(queued(repo, new_record).id, owner, LEASE), owner


def status_of(repo: DynamoDBTimelapseRepository, timelapse_id: str) -> Status:
    found = repo.get(timelapse_id)
    assert found is not None
    return found.status


# --- create and read ------------------------------------------------------------------------


def test_create_then_get_round_trips_the_record(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    created = new_record(owner_id="user-7", project_id="p-9", process=False)
    found = repository.get(created.id)
    assert found is not None
    assert (found.id, found.owner_id, found.project_id) == (created.id, "user-7", "p-9")
    assert (found.status, found.stage) == (Status.PENDING, Stage.AWAITING_UPLOAD)
    assert (found.size_bytes, found.content_type) == (1024, "video/mp4")
    assert found.original_video_key == f"videos/{created.id}.mp4"
    assert found.process is False
    assert found.attempts == 0
    assert found.lease_owner is None
    assert found.created_at == created.created_at


def test_speed_and_options_round_trip(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    unsaved = new_record(save=False)
    options = RenderOptions(fps=60, resolution="720p", skip_idle=True, deflicker=True)
    repository.create(replace(unsaved, target_seconds=None, speed=30.0, options=options))
    found = repository.get(unsaved.id)
    assert found is not None
    assert (found.target_seconds, found.speed, found.options) == (None, 30.0, options)


def test_creating_the_same_id_twice_is_a_conflict(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given a stored record
    first = new_record(project_id="first")
    # When another record with the same id is created
    with pytest.raises(ConflictError):
        repository.create(replace(first, project_id="second", owner_id="intruder"))
    # Then the first one is untouched
    found = repository.get(first.id)
    assert found is not None
    assert (found.owner_id, found.project_id) == ("user-1", "first")


def test_unknown_and_foreign_records(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    mine = new_record(owner_id="owner")
    assert repository.get(str(uuid.uuid4())) is None
    assert repository.get_owned(mine.id, "owner").id == mine.id
    with pytest.raises(NotFoundError):
        repository.get_owned(mine.id, "someone-else")
    with pytest.raises(NotFoundError):
        repository.get_owned(str(uuid.uuid4()), "owner")


# --- upload arrived --------------------------------------------------------------------------


def test_mark_uploaded_queues_once(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given a record awaiting its upload
    record = new_record()
    # When the upload is accepted
    marked = repository.mark_uploaded(record.id, queue=True)
    # Then it is queued
    assert (marked.status, marked.stage) == (Status.PENDING, Stage.QUEUED)
    assert marked.uploaded_at is not None
    assert marked.updated_at > record.updated_at
    # and a duplicate event loses the condition
    with pytest.raises(ConflictError):
        repository.mark_uploaded(record.id, queue=True)
    found = repository.get(record.id)
    assert found is not None
    assert found.uploaded_at == marked.uploaded_at


def test_mark_uploaded_without_processing_leaves_it_idle(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record = new_record(process=False)
    idle = repository.mark_uploaded(record.id, queue=False)
    assert (idle.status, idle.stage) == (Status.PENDING, None)
    # an idle record is not claimable until it is queued
    with pytest.raises(ConflictError):
        repository.claim(record.id, token(), LEASE)


def test_mark_uploaded_of_a_missing_record_is_a_conflict(
    repository: DynamoDBTimelapseRepository,
) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(ConflictError):
        repository.mark_uploaded(missing, queue=True)
    # the failed condition did not create an item either
    assert repository.get(missing) is None


# --- claim ------------------------------------------------------------------------------------


def test_claim_twice_with_different_tokens_exactly_one_wins(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given a queued record
    record = queued(repository, new_record)
    first, second = token(), token()
    before = utcnow()
    # When two workers claim it
    claimed = repository.claim(record.id, first, LEASE)
    with pytest.raises(ConflictError):
        repository.claim(record.id, second, LEASE)
    # Then the first holds it, with one attempt counted and a lease of LEASE seconds
    found = repository.get(record.id)
    assert found is not None
    for state in (claimed, found):
        assert (state.status, state.stage) == (Status.PROCESSING, Stage.PROBING)
        assert state.lease_owner == first
        assert state.attempts == 1
        assert state.progress == 0
        assert state.lease_expires_at is not None
        lease_left = (state.lease_expires_at - before).total_seconds()
        assert LEASE - 5 <= lease_left <= LEASE + 5
        assert state.started_at is not None


def test_a_record_still_awaiting_its_upload_cannot_be_claimed(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record = new_record()
    with pytest.raises(ConflictError):
        repository.claim(record.id, token(), LEASE)
    assert status_of(repository, record.id) is Status.PENDING


def test_concurrent_claims_from_threads_have_exactly_one_winner(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given a queued record, on a store that settles writes to one item one at a time (DynamoDB
    # does; plain moto does not, local/moto_server.py makes it so)
    fresh = new_record(save=False)
    repository.create(fresh)
    record = repository.mark_uploaded(fresh.id, queue=True)
    # and eight workers that start claiming at the same moment
    workers = 8
    start = threading.Barrier(workers)
    winners: list[str] = []
    losers: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def claim(worker_token: str) -> None:
        start.wait(timeout=10)
        try:
            repository.claim(record.id, worker_token, LEASE)
        except ConflictError:
            with lock:
                losers.append(worker_token)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                winners.append(worker_token)

    threads = [threading.Thread(target=claim, args=(token(),)) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # Then exactly one won, every other lost its condition, and one attempt was counted
    assert errors == []
    assert len(winners) == 1
    assert len(losers) == workers - 1
    found = repository.get(record.id)
    assert found is not None
    assert found.lease_owner == winners[0]
    assert found.attempts == 1


# --- heartbeat --------------------------------------------------------------------------------


def test_heartbeat_by_the_owner_extends_the_lease_and_records_progress(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record, owner = processing(repository, new_record)
    assert record.lease_expires_at is not None
    # (a probed source as the worker stores it: floats, an unknown size, an empty codec name)
    source = {
        "width": 1080,
        "height": 1920,
        "fps": 29.97,
        "durationSeconds": 600.5,
        "codec": "",
        "sizeBytes": None,
        "rotation": 90,
    }
    beat = repository.heartbeat(
        record.id, owner, LEASE * 10, stage=Stage.RENDERING, progress=42, source=source
    )
    assert beat.stage is Stage.RENDERING
    assert beat.progress == 42
    assert beat.source == source
    assert beat.lease_expires_at is not None
    assert beat.lease_expires_at > record.lease_expires_at + timedelta(seconds=LEASE * 8)
    assert beat.status is Status.PROCESSING


def test_heartbeat_with_a_wrong_token_is_a_conflict(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record, _owner = processing(repository, new_record)
    with pytest.raises(ConflictError):
        repository.heartbeat(record.id, token(), LEASE, progress=50)
    found = repository.get(record.id)
    assert found is not None
    assert found.progress == 0
    assert found.lease_expires_at == record.lease_expires_at


def test_heartbeat_after_cancel_is_a_conflict(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record, owner = processing(repository, new_record)
    repository.cancel(record.id, CANCELLED)
    with pytest.raises(ConflictError):
        repository.heartbeat(record.id, owner, LEASE, progress=10)
    assert status_of(repository, record.id) is Status.CANCELLED


# --- complete and fail ------------------------------------------------------------------------


def test_complete_by_the_owner(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record, owner = processing(repository, new_record)
    done = repository.complete(
        record.id,
        owner,
        processed_video_key=f"timelapses/{record.id}.mp4",
        poster_key=f"posters/{record.id}.jpg",
        output=OUTPUT,
    )
    assert (done.status, done.stage, done.progress) == (Status.COMPLETE, None, 100)
    assert done.video_key == f"timelapses/{record.id}.mp4"
    assert done.poster_key == f"posters/{record.id}.jpg"
    assert done.output == OUTPUT
    assert done.completed_at is not None
    assert (done.lease_owner, done.lease_expires_at) == (None, None)
    # a second completion (a duplicate worker) loses
    with pytest.raises(ConflictError):
        repository.complete(
            record.id, owner, processed_video_key="x", poster_key="y", output=OUTPUT
        )


def test_complete_after_cancel_is_a_conflict_and_it_stays_cancelled(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given a render in progress that its owner cancels
    record, owner = processing(repository, new_record)
    repository.cancel(record.id, CANCELLED)
    # When the worker finishes anyway
    with pytest.raises(ConflictError):
        repository.complete(
            record.id,
            owner,
            processed_video_key=f"timelapses/{record.id}.mp4",
            poster_key=f"posters/{record.id}.jpg",
            output=OUTPUT,
        )
    # Then the cancel is the one terminal state
    found = repository.get(record.id)
    assert found is not None
    assert found.status is Status.CANCELLED
    assert found.processed_video_key is None
    assert found.error == CANCELLED


def test_fail_by_the_owner_only(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record, owner = processing(repository, new_record)
    with pytest.raises(ConflictError):
        repository.fail(record.id, token(), BROKEN)
    failed = repository.fail(record.id, owner, BROKEN)
    assert (failed.status, failed.stage) == (Status.FAILED, None)
    assert failed.error == BROKEN
    assert failed.completed_at is not None
    assert failed.lease_owner is None
    with pytest.raises(ConflictError):
        repository.fail(record.id, owner, BROKEN)


# --- cancel -----------------------------------------------------------------------------------


def test_cancel_of_pending_and_of_processing(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    waiting = new_record()
    running, _owner = processing(repository, new_record)
    for record in (waiting, running):
        cancelled = repository.cancel(record.id, CANCELLED)
        assert (cancelled.status, cancelled.stage) == (Status.CANCELLED, None)
        assert cancelled.error == CANCELLED
        assert cancelled.lease_owner is None
        assert cancelled.completed_at is not None


def test_cancel_of_complete_failed_or_cancelled_is_a_conflict(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    complete, owner = processing(repository, new_record)
    repository.complete(complete.id, owner, processed_video_key="t", poster_key="p", output=OUTPUT)
    failed, owner = processing(repository, new_record)
    repository.fail(failed.id, owner, BROKEN)
    cancelled = new_record()
    repository.cancel(cancelled.id, CANCELLED)
    for record, status in (
        (complete, Status.COMPLETE),
        (failed, Status.FAILED),
        (cancelled, Status.CANCELLED),
    ):
        with pytest.raises(ConflictError):
            repository.cancel(record.id, CANCELLED)
        assert status_of(repository, record.id) is status


# --- requeue (POST /process) --------------------------------------------------------------------


def test_requeue_from_failed_clears_the_failure(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record, owner = processing(repository, new_record)
    repository.heartbeat(record.id, owner, LEASE, progress=70)
    repository.fail(record.id, owner, BROKEN)
    again = repository.requeue(record.id)
    assert (again.status, again.stage, again.progress) == (Status.PENDING, Stage.QUEUED, 0)
    assert (again.error, again.completed_at, again.lease_owner) == (None, None, None)
    # and the owner's retry starts a fresh set of attempts (the watchdog's limit counts anew)
    assert again.attempts == 0
    assert repository.claim(record.id, token(), LEASE).attempts == 1


def test_requeue_from_cancelled_and_from_idle(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    cancelled = new_record()
    repository.cancel(cancelled.id, CANCELLED)
    idle = new_record(process=False)
    repository.mark_uploaded(idle.id, queue=False)
    for record in (cancelled, idle):
        again = repository.requeue(record.id)
        assert (again.status, again.stage, again.error) == (Status.PENDING, Stage.QUEUED, None)


def test_requeue_from_any_other_state_is_a_conflict(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    awaiting = new_record()
    waiting = queued(repository, new_record)
    running, owner = processing(repository, new_record)
    complete, done_by = processing(repository, new_record)
    repository.complete(complete.id, done_by, processed_video_key="t", poster_key="p", output={})
    for record, status, stage in (
        (awaiting, Status.PENDING, Stage.AWAITING_UPLOAD),
        (waiting, Status.PENDING, Stage.QUEUED),
        (running, Status.PROCESSING, Stage.PROBING),
        (complete, Status.COMPLETE, None),
    ):
        with pytest.raises(ConflictError):
            repository.requeue(record.id)
        found = repository.get(record.id)
        assert found is not None
        assert (found.status, found.stage) == (status, stage)
    found = repository.get(running.id)
    assert found is not None
    assert found.lease_owner == owner


# --- lease expiry (watchdog) --------------------------------------------------------------------


def test_expire_lease_only_when_the_lease_ran_out(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given a worker with a live lease
    record, owner = processing(repository, new_record)
    # When the watchdog looks now, the lease holds
    with pytest.raises(ConflictError):
        repository.expire_lease(record.id, owner, utcnow(), retry=True, error=LOST)
    assert status_of(repository, record.id) is Status.PROCESSING
    # When it looks after the lease ran out, the record is queued again for a fresh attempt
    later = utcnow() + timedelta(seconds=LEASE + 1)
    again = repository.expire_lease(record.id, owner, later, retry=True, error=LOST)
    assert (again.status, again.stage, again.progress) == (Status.PENDING, Stage.QUEUED, 0)
    assert (again.lease_owner, again.lease_expires_at) == (None, None)
    assert again.attempts == 1
    # and the worker that lost its lease can no longer write
    with pytest.raises(ConflictError):
        repository.heartbeat(record.id, owner, LEASE, progress=99)
    with pytest.raises(ConflictError):
        repository.complete(record.id, owner, processed_video_key="t", poster_key="p", output={})
    # while a new claim starts attempt 2
    assert repository.claim(record.id, token(), LEASE).attempts == 2


def test_expire_lease_without_retry_fails_with_the_message(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record, owner = processing(repository, new_record)
    later = utcnow() + timedelta(seconds=LEASE + 1)
    failed = repository.expire_lease(record.id, owner, later, retry=False, error=LOST)
    assert (failed.status, failed.stage, failed.error) == (Status.FAILED, None, LOST)
    assert failed.lease_owner is None


def test_expire_lease_of_another_token_is_a_conflict(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given the worker renewed its lease after the watchdog read the record (another token
    # stands for a worker that re-claimed it meanwhile)
    record, _owner = processing(repository, new_record)
    later = utcnow() + timedelta(seconds=LEASE + 1)
    with pytest.raises(ConflictError):
        repository.expire_lease(record.id, token(), later, retry=True, error=LOST)
    assert status_of(repository, record.id) is Status.PROCESSING


def test_find_expired_leases_finds_only_run_out_leases(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record, _owner = processing(repository, new_record)
    waiting = queued(repository, new_record)
    now_ids = {t.id for t in repository.find_expired_leases(utcnow())}
    later_ids = {
        t.id for t in repository.find_expired_leases(utcnow() + timedelta(seconds=LEASE + 1))
    }
    assert record.id not in now_ids
    assert record.id in later_ids
    assert waiting.id not in later_ids


def test_the_next_claim_takes_over_an_expired_lease(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given a worker that claimed with a lease that has already run out
    record = queued(repository, new_record)
    repository.claim(record.id, token(), -1.0)
    # When the message is delivered again to another worker
    successor = token()
    taken = repository.claim(record.id, successor, LEASE)
    # Then it takes over as a new attempt
    assert (taken.lease_owner, taken.attempts) == (successor, 2)


# --- refusing an upload before any worker ----------------------------------------------------


def test_fail_pending_only_before_a_worker_claims(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    awaiting = new_record()
    refused = repository.fail_pending(awaiting.id, BROKEN)
    assert (refused.status, refused.stage, refused.error) == (Status.FAILED, None, BROKEN)
    running, _owner = processing(repository, new_record)
    with pytest.raises(ConflictError):
        repository.fail_pending(running.id, BROKEN)
    assert status_of(repository, running.id) is Status.PROCESSING
    with pytest.raises(ConflictError):
        repository.fail_pending(awaiting.id, BROKEN)


# --- listing a project ------------------------------------------------------------------------


def test_list_by_project_pages_newest_first_with_a_cursor(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given five records of one project, a minute apart, and records of other projects and owners
    owner, project = f"owner-{uuid.uuid4().hex[:8]}", "p-list"
    start = utcnow() - timedelta(hours=1)
    records = [
        new_record(owner_id=owner, project_id=project, created_at=start + timedelta(minutes=i))
        for i in range(5)
    ]
    new_record(owner_id=owner, project_id="p-other")
    new_record(owner_id="someone-else", project_id=project)
    newest_first = [r.id for r in reversed(records)]
    # When the project is listed two at a time
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        items, cursor = repository.list_by_project(owner, project, limit=2, cursor=cursor)
        pages += 1
        assert len(items) <= 2
        seen.extend(item.id for item in items)
        if cursor is None:
            break
        assert pages < 10
    # Then every record of that project comes once, newest first, and no other
    assert seen == newest_first
    assert pages == 3
    # and one big page holds them all with no cursor
    items, cursor = repository.list_by_project(owner, project, limit=100)
    assert [i.id for i in items] == newest_first
    assert cursor is None


def test_list_by_project_filters_by_status(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    owner, project = f"owner-{uuid.uuid4().hex[:8]}", "p-status"
    start = utcnow() - timedelta(hours=1)
    records = [
        new_record(owner_id=owner, project_id=project, created_at=start + timedelta(minutes=i))
        for i in range(6)
    ]
    for record in records[::2]:
        repository.cancel(record.id, CANCELLED)
    cancelled_newest_first = [r.id for r in reversed(records[::2])]
    # When only cancelled ones are asked for, one at a time
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        items, cursor = repository.list_by_project(
            owner, project, limit=1, cursor=cursor, status=Status.CANCELLED
        )
        assert all(item.status is Status.CANCELLED for item in items)
        seen.extend(item.id for item in items)
        if cursor is None:
            break
    assert seen == cancelled_newest_first
    pending, _ = repository.list_by_project(owner, project, limit=50, status=Status.PENDING)
    assert [p.id for p in pending] == [r.id for r in reversed(records[1::2])]


def _cursor(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%%",
        _cursor([1, 2, 3]),
        _cursor("text"),
        _cursor({"id": {}}),
        _cursor({"id": {"S": 5}}),
        _cursor({"id": {"S": "x"}}),
        _cursor({"bogus": {"N": "1"}}),
        base64.urlsafe_b64encode(b"\xff\xfe not json").decode(),
        *(_cursor(key) for key in ({"id": "x"}, {"id": None}, {"id": {"Q": "x"}})),
    ],
)
def test_a_forged_cursor_is_a_validation_error(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord, cursor: str
) -> None:
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    new_record(owner_id=owner, project_id="p-1")
    with pytest.raises(ValidationError, match="cursor"):
        repository.list_by_project(owner, "p-1", limit=10, cursor=cursor)


def test_a_cursor_into_another_owners_project_is_refused(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given a real cursor handed to another owner
    victim = f"owner-{uuid.uuid4().hex[:8]}"
    for _ in range(3):
        new_record(owner_id=victim, project_id="p-1")
    _, cursor = repository.list_by_project(victim, "p-1", limit=1)
    assert cursor is not None
    # When a different caller replays it on their own listing
    thief = f"owner-{uuid.uuid4().hex[:8]}"
    new_record(owner_id=thief, project_id="p-1")
    # Then it never shows the victim's records (DynamoDB refuses a start key outside the queried
    # partition; the local service answers an empty page instead)
    try:
        items, _ = repository.list_by_project(thief, "p-1", limit=10, cursor=cursor)
    except ValidationError:
        items = []
    assert all(item.owner_id == thief for item in items)


# --- the one client upload of a record (Uppy routes) ---------------------------------------------


def test_a_client_upload_is_bound_once_and_only_while_awaited(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record = new_record()
    # Given the first uploadId seen for the record, bound
    assert repository.bind_client_upload(record.id, "up-1").client_upload_id == "up-1"
    # Then binding it again is harmless, and another is refused
    assert repository.bind_client_upload(record.id, "up-1").client_upload_id == "up-1"
    with pytest.raises(ConflictError):
        repository.bind_client_upload(record.id, "up-2")
    # And once the upload is over, nothing more is bound
    other = new_record()
    repository.mark_uploaded(other.id, queue=True, etag='"abc"')
    with pytest.raises(ConflictError):
        repository.bind_client_upload(other.id, "up-3")
    accepted = repository.get(other.id)
    assert accepted is not None
    assert accepted.original_etag == '"abc"'
    assert accepted.client_upload_id is None
