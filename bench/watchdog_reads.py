"""What one watchdog sweep reads with 100,000 finished records in the table: the table scans it
used to make, against the queries of the sparse in-flight index it makes now.

    python -m bench.watchdog_reads [finished] [in_flight]

In-process moto (no server). The records are written straight into moto's DynamoDB backend (the
same storage its API reads; going through boto3 only adds request encoding). The sweeps then go
through boto3 and moto's own Scan and Query code, page by page, as the watchdog's requests would.

Two things moto does not do as DynamoDB does, and how this bench gets around them:
- **Pagination is quadratic.** Each Scan page sorts the whole table again (`Table.all_items`) and
  walks from its first item, comparing each against ExclusiveStartKey, until it reaches the page's
  start; 100,000 records is ~70 pages of 1 MB per scan, each costing a full sort and walk, so a
  paginated scan did not finish in 30 minutes. `linear_pages` gives moto's `Table.scan` the table
  already sorted (once) and starting after ExclusiveStartKey (a dict lookup), and runs moto's own
  page logic on it unchanged: the 1 MB limit, the filter, LastEvaluatedKey, ScannedCount.
- **ConsumedCapacity is a flat 1.0 per call.** DynamoDB bills a Scan or Query by the size of the
  items it *reads* (before the filter), summed over the call and rounded up to 4 KB; eventually
  consistent reads cost half a unit per 4 KB. `linear_pages` records the items each call read and
  their size by moto's `Item.size()` (attribute names plus values, DynamoDB's rule); the capacity
  column is computed from those bytes.
"""

from __future__ import annotations

import inspect
import math
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import boto3
from boto3.dynamodb.types import TypeSerializer
from moto import mock_aws
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

from chalicelib.adapters import records
from chalicelib.adapters.records import DynamoDBTimelapseRepository
from chalicelib.domain.timelapse import Stage, Status, utcnow
from local.config import ACCOUNT_ID

TABLE = "lapse-bench-watchdog"
REGION = "us-east-1"
UNIT = 4096  # bytes per read unit


@dataclass
class Call:
    """One Scan or Query request as DynamoDB would bill it."""

    operation: str
    items_read: int
    bytes_read: int
    returned: int = 0

    @property
    def capacity(self) -> float:
        return 0.5 * math.ceil(max(self.bytes_read, 1) / UNIT)


@dataclass
class Reads:
    calls: list[Call] = field(default_factory=list)

    def line(self, label: str) -> str:
        read = sum(call.items_read for call in self.calls)
        returned = sum(call.returned for call in self.calls)
        megabytes = sum(call.bytes_read for call in self.calls) / 1e6
        capacity = sum(call.capacity for call in self.calls)
        operations = "/".join(sorted({call.operation for call in self.calls}))
        return (
            f"| {label} | {len(self.calls)} {operations} | {read:,} | {returned} "
            f"| {megabytes:,.2f} | {capacity:,.1f} |"
        )


@contextmanager
def linear_pages(calls: list[Call]) -> Iterator[None]:
    """moto's Scan and Query with pagination in linear time, each call's reads recorded."""
    original_scan, original_query = Table.scan, Table.query
    query_signature = inspect.signature(original_query)
    ordered: dict[int, tuple[list[Item], dict[Any, int]]] = {}

    def table_in_order(table: Table) -> tuple[list[Item], dict[Any, int]]:
        if id(table) not in ordered:
            items = Table.all_items(table)  # moto's order: sorted by the partition key
            ordered[id(table)] = (items, {item.hash_key: n for n, item in enumerate(items)})
        return ordered[id(table)]

    def scan(self: Table, filters: Any, limit: Any, start_key: Any, *args: Any, **kw: Any) -> Any:
        if (args[1:2] and args[1]) or kw.get("index_name"):
            raise NotImplementedError("the watchdog never scanned an index")
        items, position = table_in_order(self)
        first = 0
        if start_key:
            first = position[DynamoType(start_key[self.hash_key_attr])] + 1
        rest = items[first:]
        self.all_items = lambda: rest  # type: ignore[method-assign]
        try:
            no_start: Any = None  # the page starts at `rest`'s first item
            results, scanned, last = original_scan(self, filters, limit, no_start, *args, **kw)
        finally:
            del self.all_items
        read = sum(item.size() for item in rest[:scanned])
        calls.append(Call("Scan", scanned, read, len(results)))
        return results, scanned, last

    def query(self: Table, *args: Any, **kw: Any) -> Any:
        items, _ = table_in_order(self)
        self.all_items = lambda: list(items)  # type: ignore[method-assign]
        try:
            results, scanned, last = original_query(self, *args, **kw)
            # What the page read: the same page without the filter (DynamoDB filters after it
            # reads, and bills what it read); the index projects every attribute.
            unfiltered = query_signature.bind(self, *args, **kw)
            unfiltered.arguments["filter_expression"] = None
            read_items, _, _ = original_query(*unfiltered.args, **unfiltered.kwargs)
        finally:
            del self.all_items
        read = sum(item.size() for item in read_items)
        calls.append(Call("Query", len(read_items), read, len(results)))
        return results, scanned, last

    Table.scan, Table.query = scan, query  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        Table.scan, Table.query = original_scan, original_query  # type: ignore[method-assign]


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


def fill(finished: int, in_flight: int) -> float:
    """Writes the records into moto's backend; returns the finished records' average size."""
    backend = dynamodb_backends[ACCOUNT_ID][REGION]
    serialize = TypeSerializer().serialize
    day_ago = (utcnow() - timedelta(days=1)).isoformat()
    sizes = 0
    for _ in range(finished):
        item = _item(Status.COMPLETE, None, ended=True, when=day_ago)
        typed = {name: serialize(value) for name, value in item.items()}
        sizes += backend.put_item(TABLE, typed).size()
    for n in range(in_flight):
        stage = (Stage.AWAITING_UPLOAD, Stage.QUEUED, Stage.RENDERING)[n % 3]
        status = Status.PROCESSING if stage is Stage.RENDERING else Status.PENDING
        item = _item(status, stage, ended=False, when=day_ago)
        if stage is Stage.RENDERING:
            item["leaseExpiresAt"] = int(utcnow().timestamp()) + 600  # a live lease
        backend.put_item(TABLE, {name: serialize(value) for name, value in item.items()})
    return sizes / max(finished, 1)


def sweep_by_scan(client: Any) -> Reads:
    """The sweep as it was (records.py before 9374d98): one full-table Scan per question (expired
    leases, stale queued, stale awaiting upload), each paginated over the whole table."""
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
    with linear_pages(reads.calls):
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
                assert page["ScannedCount"] == reads.calls[-1].items_read
                start = page.get("LastEvaluatedKey")
                if not start:
                    break
    return reads


def sweep_by_index() -> Reads:
    """The sweep now: the repository's own reads (records.py's find_* queries)."""
    reads = Reads()
    repository = DynamoDBTimelapseRepository()
    now = utcnow()
    with linear_pages(reads.calls):
        list(repository.find_expired_leases(now))
        list(repository.find_stale_pending(Stage.QUEUED, now - timedelta(minutes=15)))
        list(repository.find_stale_pending(Stage.AWAITING_UPLOAD, now - timedelta(minutes=10)))
        list(repository.find_upload_overdue(now - timedelta(hours=24)))
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
        elapsed = time.monotonic() - started
        print(f"filled {finished:,} finished + {in_flight} in-flight records "
              f"(finished ~{average:.0f} B each) in {elapsed:.0f} s")  # fmt: skip
        print("| sweep | calls | items read | returned | MB read | read units |")
        print("|---|---|---|---|---|---|")
        for label in ("before: Scan of the table", "after: Query of the in-flight index"):
            started = time.monotonic()
            reads = sweep_by_scan(client) if label.startswith("before") else sweep_by_index()
            line = reads.line(label)
            print(f"{line}   ({time.monotonic() - started:.0f} s in moto)", flush=True)


if __name__ == "__main__":
    main()
