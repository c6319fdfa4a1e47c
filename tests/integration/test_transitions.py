"""One state machine: for every transition and every state a record can be in, the real table's
conditional write succeeds exactly when the domain's transition table (`allows`) says it may — so
the repository's conditions and the in-memory fake (tests/fakes.py, built on `allows`) agree."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from pynamodb.expressions.update import Action

from chalicelib.adapters.records import DynamoDBTimelapseRepository, TimelapseModel
from chalicelib.domain.fanout import FanOut, PartRange
from chalicelib.domain.timelapse import (
    ErrorInfo,
    Guard,
    Stage,
    Status,
    Timelapse,
    Transition,
    allows,
    utcnow,
)
from chalicelib.errors import ConflictError

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

NewRecord = Callable[..., Timelapse]
OWNER = "w-1"
MAX_ATTEMPTS = 3
ERROR = ErrorInfo("test", "A test ended it.")

# (status, stage, lease runs out in seconds or None for no lease, attempts)
STATES = {
    "awaiting_upload": (Status.PENDING, Stage.AWAITING_UPLOAD, None, 0),
    "queued": (Status.PENDING, Stage.QUEUED, None, 0),
    "idle": (Status.PENDING, None, None, 0),
    "held": (Status.PROCESSING, Stage.RENDERING, 600, 1),
    "abandoned": (Status.PROCESSING, Stage.RENDERING, -60, 1),
    "abandoned, out of attempts": (Status.PROCESSING, Stage.RENDERING, -60, MAX_ATTEMPTS),
    "complete": (Status.COMPLETE, None, None, 1),
    "failed": (Status.FAILED, None, None, 1),
    "cancelled": (Status.CANCELLED, None, None, 0),
}

Write = Callable[[DynamoDBTimelapseRepository, str, datetime], Timelapse]

PARTS = (PartRange(0, 10, 0.0), PartRange(10, 20, 5.0))


def _with_parts(tid: str) -> str:
    """The record holds a fan-out's parts (one unconditional write; its status is untouched)."""
    TimelapseModel(tid).update(
        actions=[
            TimelapseModel.fanout.set(
                {"token": OWNER, "parts": [[0, 10, 0], [10, 20, 5]], "frames": 20}
            ),
            TimelapseModel.part_keys.set({}),
            TimelapseModel.part_frames.set({}),
            TimelapseModel.part_failures.set({}),
        ]
    )
    return tid


WRITES: dict[Transition, Write] = {
    Transition.MARK_UPLOADED: lambda repo, tid, _now: repo.mark_uploaded(tid, queue=True),
    Transition.BIND_UPLOAD: lambda repo, tid, _now: repo.bind_client_upload(tid, "upload-1"),
    Transition.REQUEUE: lambda repo, tid, _now: repo.requeue(tid),
    Transition.CLAIM: lambda repo, tid, _now: repo.claim(
        tid, "w-new", 60, max_attempts=MAX_ATTEMPTS
    ),
    Transition.HEARTBEAT: lambda repo, tid, _now: repo.heartbeat(tid, OWNER, 60, progress=5),
    Transition.COMPLETE: lambda repo, tid, _now: repo.complete(
        tid, OWNER, processed_video_key="t.mp4", poster_key="p.jpg", output={"fps": 30}
    ),
    Transition.FAIL: lambda repo, tid, _now: repo.fail(tid, OWNER, ERROR),
    Transition.FAN_OUT: lambda repo, tid, _now: repo.fan_out(
        tid, OWNER, FanOut(OWNER, PARTS, 20), 60
    ),
    Transition.FINISH_PART: lambda repo, tid, _now: repo.finish_part(
        _with_parts(tid), OWNER, 1, key="segments/x", frames=10
    ),
    Transition.FAIL_PART: lambda repo, tid, _now: repo.fail_part(_with_parts(tid), OWNER, 1),
    Transition.FAIL_PENDING: lambda repo, tid, _now: repo.fail_pending(tid, ERROR),
    Transition.FAIL_ABANDONED: lambda repo, tid, now: repo.fail_abandoned(tid, ERROR, now),
    Transition.EXPIRE_LEASE: lambda repo, tid, now: repo.expire_lease(
        tid, OWNER, now, retry=True, error=ERROR
    ),
    Transition.CANCEL: lambda repo, tid, _now: repo.cancel(tid, ERROR),
    Transition.EXPIRE_UPLOAD: lambda repo, tid, _now: repo.expire_upload(tid, ERROR),
}


def in_state(repo: DynamoDBTimelapseRepository, new_record: NewRecord, state: str) -> Timelapse:
    """A record put straight into `state` (one unconditional write after the create)."""
    status, stage, lease_in, attempts = STATES[state]
    record = new_record()
    item = TimelapseModel(record.id)
    actions: list[Action] = [
        TimelapseModel.status.set(status.value),
        TimelapseModel.attempts.set(attempts),
    ]
    actions.append(
        TimelapseModel.stage.set(stage.value) if stage else TimelapseModel.stage.remove()
    )
    if lease_in is not None:
        expires = (utcnow() + timedelta(seconds=lease_in)).timestamp()
        actions += [
            TimelapseModel.lease_owner.set(OWNER),
            TimelapseModel.lease_expires_at.set(expires),
        ]
    item.update(actions=actions)
    found = repo.get(record.id)
    assert found is not None
    return found


def test_every_transition_covers_the_same_states_in_the_table_and_in_dynamodb(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    disagreements = []
    for transition, write in WRITES.items():
        for state in STATES:
            # Given a record in `state`
            record = in_state(repository, new_record, state)
            now = utcnow()
            guard = Guard(token=OWNER, now=now, max_attempts=MAX_ATTEMPTS)
            expected = allows(transition, record, guard)
            # When the repository attempts the transition
            try:
                write(repository, record.id, now)
                happened = True
            except ConflictError:
                happened = False
            # Then the table's condition decided as the domain's rule does
            if happened is not expected:
                disagreements.append((transition.value, state, expected, happened))
    assert not disagreements, disagreements


def test_the_table_names_a_write_for_every_transition() -> None:
    assert set(WRITES) == set(Transition)
