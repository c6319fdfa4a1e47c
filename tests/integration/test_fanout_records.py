"""The fan-out's writes against the local DynamoDB: the parts written once, each part counted done
exactly once however many invocations finish it at the same moment, and exactly one write — so one
invocation — sees the count complete and joins."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import pytest

from chalicelib.adapters.records import DynamoDBTimelapseRepository
from chalicelib.domain.fanout import FanOut, PartRange
from chalicelib.domain.timelapse import ErrorInfo, Stage, Status, Timelapse
from chalicelib.errors import ConflictError

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

NewRecord = Callable[..., Timelapse]
PARTS = (PartRange(0, 300, 0.0), PartRange(300, 600, 199.8), PartRange(600, 900, 399.6))


def fanned_out(repo: DynamoDBTimelapseRepository, new_record: NewRecord) -> tuple[Timelapse, str]:
    """Given a claimed record whose render was handed to three parts: (record, its token)."""
    owner = uuid.uuid4().hex
    record = repo.mark_uploaded(new_record().id, queue=True)
    repo.claim(record.id, owner, 60)
    return repo.fan_out(record.id, owner, FanOut(owner, PARTS, 900), 960), owner


def test_fan_out_writes_the_parts_and_progress_sums_them(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record, owner = fanned_out(repository, new_record)
    assert record.fanout is not None
    assert record.fanout.parts == PARTS
    assert record.fanout.token == owner
    assert record.stage is Stage.RENDERING
    assert record.progress == 0
    # a part's heartbeat writes its own frames; the record's progress is the sum over parts
    repository.heartbeat(record.id, owner, 960, part_frames=(1, 150))
    repository.finish_part(record.id, owner, 0, key="segments/a", frames=300)
    found = repository.get(record.id)
    assert found is not None
    assert found.progress == 450 * 100 // 900
    assert found.fanout is not None
    assert found.fanout.keys == {0: "segments/a"}


def test_concurrent_finishes_count_each_part_once_and_one_write_completes_the_set(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record, owner = fanned_out(repository, new_record)
    # When every part is finished by four invocations at the same moment
    per_part = 4
    jobs = [part for part in range(len(PARTS)) for _ in range(per_part)]
    start = threading.Barrier(len(jobs))
    counted: list[int] = []
    completing: list[int] = []
    refused: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def finish(part: int) -> None:
        start.wait(timeout=10)
        try:
            after = repository.finish_part(
                record.id, owner, part, key=f"segments/{part}-{uuid.uuid4().hex}", frames=300
            )
        except ConflictError:
            with lock:
                refused.append(part)
        except BaseException as exc:
            with lock:
                errors.append(exc)
        else:
            with lock:
                counted.append(part)
                if after.fanout is not None and after.fanout.all_done:
                    completing.append(part)

    threads = [threading.Thread(target=finish, args=(part,)) for part in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    # Then each part was counted once, and exactly one write saw the set complete
    assert errors == []
    assert sorted(counted) == list(range(len(PARTS)))
    assert len(refused) == len(jobs) - len(PARTS)
    assert len(completing) == 1
    found = repository.get(record.id)
    assert found is not None
    assert found.fanout is not None
    assert found.fanout.all_done
    assert found.progress == 99


def test_a_part_failure_is_counted_and_a_done_part_cannot_fail(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record, owner = fanned_out(repository, new_record)
    repository.fail_part(record.id, owner, 2)
    after = repository.fail_part(record.id, owner, 2)
    assert after.fanout is not None
    assert after.fanout.failures == {2: 2}
    repository.finish_part(record.id, owner, 0, key="k", frames=300)
    with pytest.raises(ConflictError):
        repository.fail_part(record.id, owner, 0)


def test_a_cancel_or_a_new_claim_ends_the_fan_out_for_its_parts(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record, owner = fanned_out(repository, new_record)
    cancelled = repository.cancel(record.id, ErrorInfo("cancelled", "Cancelled by its owner."))
    assert cancelled.status is Status.CANCELLED
    assert cancelled.fanout is None
    for write in (
        lambda: repository.finish_part(record.id, owner, 1, key="k", frames=300),
        lambda: repository.fail_part(record.id, owner, 1),
        lambda: repository.heartbeat(record.id, owner, 960, part_frames=(1, 10)),
    ):
        with pytest.raises(ConflictError):
            write()
