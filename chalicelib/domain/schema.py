"""Names the stored layout shares with the infrastructure (infra/) and the local stack: the table's
key and index. The PynamoDB model (adapters/records.py) declares them; the CDK stack and the local
table are built from these and from that model, never spelled again."""

from __future__ import annotations

TABLE_KEY = "id"
OWNER_PROJECT_INDEX = "byOwnerProject"
OWNER_PROJECT = "ownerProject"  # the index's partition key: "<owner>#<project>"
CREATED_AT = "createdAt"  # the index's sort key (ISO 8601, UTC)
TTL = "ttl"
# The watchdog's sparse index: only records in flight carry `inFlight` (their status, pending or
# processing); a record that ends loses it, so the index holds the work in flight, not history.
IN_FLIGHT_INDEX = "inFlight"
IN_FLIGHT = "inFlight"  # the index's partition key; its sort key is CREATED_AT
# The last webhook delivery given up on: {status, event, deliveryId, attempts, reason, failedAt}.
WEBHOOK_DELIVERY = "webhookDelivery"


def owner_project(owner_id: str, project_id: str) -> str:
    return f"{owner_id}#{project_id}"
