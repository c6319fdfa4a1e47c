"""infra/backfill_in_flight.py against the local DynamoDB: records in flight from before the sparse
index get `inFlight` (so the watchdog's queries find them); finished ones do not; a second run
changes nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.adapters.records import DynamoDBTimelapseRepository
from chalicelib.domain import schema
from chalicelib.domain.timelapse import ErrorInfo, Timelapse, utcnow
from local.config import LocalStack
from tests.integration.conftest import NewRecord

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]

ROOT = Path(__file__).resolve().parents[2]


def run_backfill(stack: LocalStack) -> str:
    answer = subprocess.run(
        [
            *(sys.executable, "infra/backfill_in_flight.py", "--table", stack.table),
            *("--region", stack.region, "--endpoint-url", stack.endpoint),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
    )
    return answer.stdout


def as_before_the_index(stack: LocalStack, timelapse: Timelapse) -> None:
    stack.dynamodb().update_item(
        TableName=stack.table,
        Key={"id": {"S": timelapse.id}},
        UpdateExpression="REMOVE #f",
        ExpressionAttributeNames={"#f": schema.IN_FLIGHT},
    )


def in_flight_value(stack: LocalStack, timelapse: Timelapse) -> str | None:
    item = stack.dynamodb().get_item(TableName=stack.table, Key={"id": {"S": timelapse.id}})
    value = item["Item"].get(schema.IN_FLIGHT)
    return value["S"] if value else None


def test_the_backfill_indexes_old_records_in_flight_once(
    local_stack: LocalStack, repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given records written before the index: one awaiting its upload, one processing, one ended
    long_ago = utcnow().replace(year=2020)
    awaiting = new_record(created_at=long_ago)
    processing = new_record(created_at=long_ago)
    repository.mark_uploaded(processing.id, queue=True)
    repository.claim(processing.id, "worker-1", 60, max_attempts=3)
    ended = new_record(created_at=long_ago)
    repository.cancel(ended.id, ErrorInfo("cancelled", "Cancelled by its owner."))
    for timelapse in (awaiting, processing):
        as_before_the_index(local_stack, timelapse)
    overdue_before = {t.id for t in repository.find_upload_overdue(utcnow())}
    assert awaiting.id not in overdue_before  # the watchdog cannot see it

    # When the backfill runs, twice
    first = run_backfill(local_stack)
    second = run_backfill(local_stack)

    # Then the records in flight carry their status as `inFlight`, the ended one nothing, the
    # watchdog's queries find them, and the second run found nothing left to do
    assert in_flight_value(local_stack, awaiting) == "pending"
    assert in_flight_value(local_stack, processing) == "processing"
    assert in_flight_value(local_stack, ended) is None
    assert awaiting.id in {t.id for t in repository.find_upload_overdue(utcnow())}
    written = re.search(r"set on (\d+),", first)
    assert written is not None, first
    assert int(written.group(1)) >= 2  # (other tests' records share the table)
    assert "0 in flight without inFlight: set on 0," in second
