"""The watchdog reads the work in flight, never the history: records carry the sparse index's key
only while pending or processing, and the watchdog's reads are queries of that index (no Scan),
against the real local DynamoDB. bench/watchdog_reads.py measures the same at 100,000 records."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from chalicelib.adapters.records import DynamoDBTimelapseRepository, TimelapseModel
from chalicelib.domain import schema
from chalicelib.domain.timelapse import ErrorInfo, Stage, Timelapse, utcnow

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

NewRecord = Callable[..., Timelapse]
ENDED = ErrorInfo("cancelled", "Cancelled by its owner.")


class ReadCounter:
    """Every read call the repository's DynamoDB client makes, with the items each one read."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []
        self.scanned: list[int] = []

    def before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if model.name in {"Query", "Scan"}:
            self.calls.append((model.name, params.get("IndexName")))

    def after(self, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in {"Query", "Scan"}:
            self.scanned.append(int(parsed.get("ScannedCount", 0)))


@pytest.fixture
def reads(repository: DynamoDBTimelapseRepository) -> Iterator[ReadCounter]:
    counter = ReadCounter()
    events = TimelapseModel._get_connection().connection.client.meta.events
    events.register("before-parameter-build.dynamodb", counter.before, unique_id="reads-before")
    events.register("after-call.dynamodb", counter.after, unique_id="reads-after")
    try:
        yield counter
    finally:
        events.unregister("before-parameter-build.dynamodb", unique_id="reads-before")
        events.unregister("after-call.dynamodb", unique_id="reads-after")


def in_index(timelapse_id: str) -> bool:
    raw = TimelapseModel._get_connection().get_item(timelapse_id, consistent_read=True)
    return schema.IN_FLIGHT in raw["Item"]


def test_a_record_is_in_the_index_exactly_while_in_flight(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    record = new_record()
    assert in_index(record.id)  # pending/awaiting_upload
    repository.mark_uploaded(record.id, queue=True)
    claimed = repository.claim(record.id, "w-1", 60)
    assert in_index(claimed.id)
    repository.complete(record.id, "w-1", processed_video_key="t", poster_key="p", output={})
    assert not in_index(record.id)
    # Idle (process=false) waits for its owner, not for the watchdog; /process puts it back
    idle = new_record(process=False)
    repository.mark_uploaded(idle.id, queue=False)
    assert not in_index(idle.id)
    repository.requeue(idle.id)
    assert in_index(idle.id)
    for ending in (repository.cancel, repository.fail_pending, repository.expire_upload):
        ended = new_record()
        ending(ended.id, ENDED)
        assert not in_index(ended.id)


def test_the_watchdogs_reads_are_queries_of_the_in_flight_index(
    repository: DynamoDBTimelapseRepository, new_record: NewRecord, reads: ReadCounter
) -> None:
    # Given many finished records and a few in flight
    for _ in range(30):
        repository.cancel(new_record().id, ENDED)
    waiting = new_record(created_at=utcnow() - timedelta(days=2))
    later = utcnow() + timedelta(days=1)
    # When the watchdog's reads run
    expired = list(repository.find_expired_leases(later))
    queued = list(repository.find_stale_pending(Stage.QUEUED, later))
    overdue = list(repository.find_upload_overdue(utcnow() - timedelta(days=1)))
    # Then each one is a query of the sparse index, never a scan of the table
    assert reads.calls
    assert set(reads.calls) == {("Query", schema.IN_FLIGHT_INDEX)}
    # And no finished record is read: only the records in flight (from any test) are in the index
    in_flight = sum(1 for _ in TimelapseModel.by_in_flight.query("pending")) + sum(
        1 for _ in TimelapseModel.by_in_flight.query("processing")
    )
    assert sum(reads.scanned) <= 3 * in_flight
    assert waiting.id in {t.id for t in overdue}
    assert all(t.status.value == "processing" for t in expired)
    assert all(t.stage is Stage.QUEUED for t in queued)
