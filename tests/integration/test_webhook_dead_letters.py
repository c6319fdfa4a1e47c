"""A webhook delivery given up on is kept on its record, in the real local table: one attribute
(`webhookDelivery`), the record's state and `updatedAt` untouched; nothing for a deleted one."""

from __future__ import annotations

import pytest

from chalicelib.adapters.records import DynamoDBTimelapseRepository
from chalicelib.domain import schema
from chalicelib.domain.timelapse import utcnow
from chalicelib.services.ports import WebhookFailure
from local.config import LocalStack
from tests.integration.conftest import NewRecord

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]


def test_a_failed_delivery_is_kept_on_its_record_and_a_deleted_record_is_not_recreated(
    local_stack: LocalStack, repository: DynamoDBTimelapseRepository, new_record: NewRecord
) -> None:
    # Given a record and a delivery given up on
    timelapse = new_record()
    failure = WebhookFailure("d-1", "timelapse.failed", 5, "HTTP 503", utcnow())

    # When it is kept, and kept again for a record that no longer exists
    kept = repository.record_webhook_failure(timelapse.id, failure)
    gone = new_record()
    repository.delete(gone.id)
    kept_for_gone = repository.record_webhook_failure(gone.id, failure)

    # Then the record carries it, its state did not change, and no record came back
    dynamodb = local_stack.dynamodb()
    item = dynamodb.get_item(TableName=local_stack.table, Key={"id": {"S": timelapse.id}})["Item"]
    assert (kept, kept_for_gone) == (True, False)
    delivery = item[schema.WEBHOOK_DELIVERY]["M"]
    assert delivery["status"] == {"S": "failed"}
    assert delivery["reason"] == {"S": "HTTP 503"}
    assert delivery["deliveryId"] == {"S": "d-1"}
    assert repository.get(timelapse.id) == timelapse
    assert "Item" not in dynamodb.get_item(TableName=local_stack.table, Key={"id": {"S": gone.id}})
