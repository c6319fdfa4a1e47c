"""What one watchdog sweep reads with 100,000 finished records in the table: the table scans it
used to make, against the queries of the sparse in-flight index it makes now.

    python -m bench.watchdog_reads [finished] [in_flight]

In-process moto (no server), filled with batch writes. Counts what DynamoDB reports per call:
items read (ScannedCount), items returned, and the read capacity DynamoDB would bill, computed
from the items' sizes (0.5 unit per 4 KB read, eventually consistent; moto's own ConsumedCapacity
is a flat figure per call, so it is not used).
"""

from __future__ import annotations

import json
import math
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
from moto import mock_aws

from chalicelib.adapters import records
from chalicelib.adapters.records import DynamoDBTimelapseRepository, TimelapseModel
from chalicelib.domain.timelapse import Stage, Status, utcnow

TABLE = "lapse-bench-watchdog"
REGION = "us-east-1"


@dataclass
class Reads:
    calls: list[str] = field(default_factory=list)
    scanned: int = 0
    returned: int = 0
    bytes_read: int = 0
    capacity: float = 0.0

    def add(self, operation: str, page: dict[str, Any], page_bytes: int) -> None:
        self.calls.append(operation)
        self.scanned += int(page.get("ScannedCount", 0))
        self.returned += int(page.get("Count", 0))
        self.bytes_read += page_bytes
        # As DynamoDB bills a Scan or Query (moto reports a flat figure): 0.5 unit per 4 KB of
        # items read, eventually consistent, rounded up per call.
        self.capacity += 0.5 * math.ceil(max(page_bytes, 1) / 4096)

    def line(self, label: str) -> str:
        return (
            f"{label:<36} {len(self.calls):>5} calls {self.scanned:>9,} items read "
            f"{self.returned:>5} returned {self.bytes_read / 1e6:>8.1f} MB "
            f"{self.capacity:>9,.1f} RCU"
        )


def _item(status: Status, stage: Stage | None, *, ended: bool, when: str) -> dict[str, Any]:
    tid = str(uuid.uuid4())
    item: dict[str, Any] = {
        "id": tid,
        "ownerId": "bench-user",
        "projectId": "p-bench",
        "ownerProject": "bench-user#p-bench",
        "status": status.value,
        "contentType": "video/mp4",
        "sizeBytes": 123_456_789,
        "originalVideoKey": f"videos/{tid}.mp4",
        "targetSeconds": 30,
        "process": True,
        "attempts": 1,
        "progress": 100 if ended else 0,
        "upload": {"method": "PUT"},
        "createdAt": when,
        "updatedAt": when,
    }
    if stage is not None:
        item["stage"] = stage.value
    if ended:
        item.update(
            processedVideoKey=f"timelapses/{tid}.mp4",
            posterKey=f"posters/{tid}.jpg",
            completedAt=when,
            output={"width": 1920, "height": 1080, "fps": 30, "durationSeconds": 30},
            source={"width": 1920, "height": 1080, "fps": 30, "durationSeconds": 5400},
        )
    else:
        item["inFlight"] = status.value
    return item


def _size(item: dict[str, Any]) -> int:
    """DynamoDB's item size, closely enough: attribute names plus their values' lengths."""
    return sum(len(name) + len(json.dumps(value)) for name, value in item.items())


def fill(finished: int, in_flight: int) -> int:
    """Batch-writes the records; returns the average item size in bytes."""
    day_ago = (utcnow() - timedelta(days=1)).isoformat()
    table = boto3.resource("dynamodb", region_name=REGION).Table(TABLE)
    sizes = 0
    with table.batch_writer() as batch:
        for _ in range(finished):
            item = _item(Status.COMPLETE, None, ended=True, when=day_ago)
            sizes += _size(item)
            batch.put_item(Item=item)
        for n in range(in_flight):
            stage = (Stage.AWAITING_UPLOAD, Stage.QUEUED, Stage.RENDERING)[n % 3]
            status = Status.PROCESSING if stage is Stage.RENDERING else Status.PENDING
            batch.put_item(Item=_item(status, stage, ended=False, when=day_ago))
    return sizes // max(finished, 1)


def sweep_by_scan(client: Any, average_item: int) -> Reads:
    """The sweep as it was: one full-table Scan per question (expired leases, stale queued, stale
    awaiting upload), each paginated over the whole table."""
    reads = Reads()
    now, before = utcnow(), (utcnow() - timedelta(minutes=15)).isoformat()
    questions = [
        ("#s = :processing AND leaseExpiresAt < :now", {":processing": {"S": "processing"},
                                                        ":now": {"N": str(now.timestamp())}}),
        ("#s = :pending AND stage = :queued AND updatedAt < :before",
         {":pending": {"S": "pending"}, ":queued": {"S": "queued"}, ":before": {"S": before}}),
        ("#s = :pending AND stage = :awaiting AND updatedAt < :before",
         {":pending": {"S": "pending"}, ":awaiting": {"S": "awaiting_upload"},
          ":before": {"S": before}}),
    ]  # fmt: skip
    for expression, values in questions:
        start: dict[str, Any] | None = None
        while True:
            page = client.scan(
                TableName=TABLE,
                FilterExpression=expression,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=values,
                **({"ExclusiveStartKey": start} if start else {}),
            )
            reads.add("Scan", page, int(page["ScannedCount"]) * average_item)
            start = page.get("LastEvaluatedKey")
            if not start:
                break
    return reads


def sweep_by_index(average_item: int) -> Reads:
    """The sweep now: the repository's own reads, counted on its client."""
    reads = Reads()
    events = TimelapseModel._get_connection().connection.client.meta.events

    def counted(parsed: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name in {"Query", "Scan"}:
            reads.add(model.name, parsed, int(parsed.get("ScannedCount", 0)) * average_item)

    events.register("after-call.dynamodb", counted, unique_id="bench-reads")
    repository = DynamoDBTimelapseRepository()
    now = utcnow()
    list(repository.find_expired_leases(now))
    list(repository.find_stale_pending(Stage.QUEUED, now - timedelta(minutes=15)))
    list(repository.find_stale_pending(Stage.AWAITING_UPLOAD, now - timedelta(minutes=10)))
    list(repository.find_upload_overdue(now - timedelta(hours=24)))
    events.unregister("after-call.dynamodb", unique_id="bench-reads")
    return reads


def main() -> None:
    finished = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    in_flight = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(**records.create_table_request(TABLE))
        records.bind_table(TABLE, REGION, None)
        started = time.monotonic()
        average = fill(finished, in_flight)
        print(f"filled {finished:,} finished + {in_flight} in-flight records "
              f"(~{average} B each) in {time.monotonic() - started:.0f} s")  # fmt: skip
        print(sweep_by_scan(client, average).line("before: Scan of the table"))
        print(sweep_by_index(average).line("after: Query of the in-flight index"))


if __name__ == "__main__":
    main()
