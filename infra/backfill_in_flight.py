"""Backfill for the watchdog's sparse index: records that were pending or processing when the
version with the `inFlight` index was deployed do not carry the attribute, so the watchdog (which
now queries the index instead of scanning) would never see them. This sets `inFlight` (= their
status) on each such record. Run it once after that deploy, when the index is ACTIVE:

    .venv/bin/python infra/backfill_in_flight.py --table <TableName> [--region eu-central-1]

(the table's name is the stack's output `TableName`). An admin tool, not deployed: it scans the
table once, which the runtime never does. Idempotent and safe while the stack runs: each write is
conditional on the record still having the status it was read with and no `inFlight` yet, so a
record that ended or moved meanwhile is left alone, and a second run changes nothing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

IN_FLIGHT = "inFlight"  # chalicelib/domain/schema.py IN_FLIGHT; the value is the status
IN_FLIGHT_STATUSES = ("pending", "processing")


@dataclass
class Backfill:
    read: int = 0  # records the scan read (the whole table)
    missing: int = 0  # in flight without the attribute
    set: int = 0  # written now
    moved: int = 0  # ended or changed between the read and the write: left alone


def backfill(dynamodb: DynamoDBClient, table: str) -> Backfill:
    counts = Backfill()
    pages = dynamodb.get_paginator("scan").paginate(
        TableName=table,
        ProjectionExpression="id, #s",
        FilterExpression="#s IN (:pending, :processing) AND attribute_not_exists(#f)",
        ExpressionAttributeNames={"#s": "status", "#f": IN_FLIGHT},
        ExpressionAttributeValues={
            ":pending": {"S": "pending"},
            ":processing": {"S": "processing"},
        },
    )
    for page in pages:
        counts.read += page["ScannedCount"]
        for item in page["Items"]:
            counts.missing += 1
            if _set_in_flight(dynamodb, table, item):
                counts.set += 1
            else:
                counts.moved += 1
    return counts


def _set_in_flight(dynamodb: DynamoDBClient, table: str, item: dict[str, Any]) -> bool:
    try:
        dynamodb.update_item(
            TableName=table,
            Key={"id": item["id"]},
            UpdateExpression="SET #f = :status",
            ConditionExpression="#s = :status AND attribute_not_exists(#f)",
            ExpressionAttributeNames={"#s": "status", "#f": IN_FLIGHT},
            ExpressionAttributeValues={":status": item["status"]},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", required=True, help="the stack's output TableName")
    parser.add_argument("--region", help="default: the environment's (AWS_REGION)")
    parser.add_argument("--endpoint-url", help="another DynamoDB endpoint (the local stack's moto)")
    args = parser.parse_args(argv)
    dynamodb = boto3.client("dynamodb", region_name=args.region, endpoint_url=args.endpoint_url)
    counts = backfill(dynamodb, args.table)
    print(
        f"{args.table}: read {counts.read} records; {counts.missing} in flight without "
        f"{IN_FLIGHT}: set on {counts.set}, {counts.moved} ended or moved meanwhile (left alone)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
