"""Creates the bucket (CORS, ObjectCreated → queue), the queue and its dead-letter queue, and the
table on the local services. Idempotent."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from chalicelib.adapters.records import create_table_request
from chalicelib.domain import schema
from chalicelib.domain.keys import VIDEOS_PREFIX
from local.config import LocalStack

MAX_RECEIVES = 3
# Short, unlike AWS's 6 x the function timeout: a message lost to a local worker that died in the
# middle of a receive comes back within two minutes; a duplicate delivery is harmless (the claim).
VISIBILITY_SECONDS = 120


def provision(stack: LocalStack) -> None:
    _queues(stack)
    _bucket(stack)
    _table(stack)


def _queues(stack: LocalStack) -> None:
    sqs = stack.sqs()
    sqs.create_queue(QueueName=stack.dlq_name, Attributes={"MessageRetentionPeriod": "1209600"})
    redrive = {"deadLetterTargetArn": stack.dlq_arn, "maxReceiveCount": str(MAX_RECEIVES)}
    sqs.create_queue(
        QueueName=stack.queue_name,
        Attributes={
            "VisibilityTimeout": str(VISIBILITY_SECONDS),
            "RedrivePolicy": json.dumps(redrive),
        },
    )
    # Webhook deliveries: their own queue and dead-letter queue, drained by their own handler.
    sqs.create_queue(
        QueueName=stack.webhook_dlq_name, Attributes={"MessageRetentionPeriod": "1209600"}
    )
    webhook_redrive = {
        "deadLetterTargetArn": stack.webhook_dlq_arn,
        "maxReceiveCount": str(MAX_RECEIVES),
    }
    sqs.create_queue(
        QueueName=stack.webhook_queue_name,
        Attributes={"VisibilityTimeout": "60", "RedrivePolicy": json.dumps(webhook_redrive)},
    )


def _bucket(stack: LocalStack) -> None:
    s3 = stack.s3()
    try:
        s3.create_bucket(Bucket=stack.bucket)
    except ClientError as exc:
        if exc.response["Error"]["Code"] not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
            raise
    s3.put_bucket_cors(
        Bucket=stack.bucket,
        CORSConfiguration={
            "CORSRules": [
                {
                    "AllowedOrigins": ["*"],
                    "AllowedMethods": ["GET", "PUT", "HEAD", "POST", "DELETE"],
                    "AllowedHeaders": ["*"],
                    "ExposeHeaders": ["ETag"],
                    "MaxAgeSeconds": 3600,
                }
            ]
        },
    )
    if not stack.storage_events:
        return  # like R2: no bucket events; the API enqueues the work itself
    s3.put_bucket_notification_configuration(
        Bucket=stack.bucket,
        NotificationConfiguration={
            "QueueConfigurations": [
                {
                    "QueueArn": stack.queue_arn,
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {
                        "Key": {"FilterRules": [{"Name": "prefix", "Value": VIDEOS_PREFIX}]}
                    },
                }
            ]
        },
    )


def _table(stack: LocalStack) -> None:
    dynamodb = stack.dynamodb()
    try:
        dynamodb.create_table(**create_table_request(stack.table))
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
    dynamodb.update_time_to_live(
        TableName=stack.table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": schema.TTL},
    )
