"""One least-privilege policy per function. Every action is spelled out: no `*` in any action.

Object permissions are split by key prefix, which is what keeps each function in its lane:
the API may let browsers write only under `videos/` and never writes under `timelapses/` or
`posters/`; the processor reads `videos/` (and deletes an upload it refuses) but never writes there.
Note: CreateMultipartUpload and CompleteMultipartUpload are authorised by s3:PutObject, and
HeadObject by s3:GetObject; IAM has no separate actions for them.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import aws_iam as iam

from chalicelib.domain.keys import (
    POSTERS_PREFIX,
    SEGMENTS_PREFIX,
    TIMELAPSES_PREFIX,
    VIDEOS_PREFIX,
)

ORIGINALS = VIDEOS_PREFIX
OUTPUTS = (TIMELAPSES_PREFIX, POSTERS_PREFIX)
# The parts of a fanned-out render (processor only; the bucket's lifecycle expires leftovers).
SEGMENTS = SEGMENTS_PREFIX

MULTIPART = ["s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]


@dataclass(frozen=True)
class Resources:
    """ARNs the policies point at. `bucket_arn` is None where storage is not S3 (R2)."""

    table_arn: str
    queue_arn: str
    dlq_arn: str
    webhook_queue_arn: str
    webhook_dlq_arn: str
    log_group_arn: str
    bucket_arn: str | None


def _objects(bucket_arn: str, *prefixes: str) -> list[str]:
    return [f"{bucket_arn}/{prefix}*" for prefix in prefixes]


def _statement(sid: str, actions: list[str], resources: list[str]) -> iam.PolicyStatement:
    return iam.PolicyStatement(sid=sid, actions=actions, resources=resources)


def _common(res: Resources) -> list[iam.PolicyStatement]:
    return [
        _statement("Logs", ["logs:CreateLogStream", "logs:PutLogEvents"], [res.log_group_arn]),
        # X-Ray's write actions take no resource narrower than "*".
        _statement("Tracing", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], ["*"]),
    ]


def _queue_webhooks(res: Resources) -> iam.PolicyStatement:
    """Every function that ends a timelapse queues its webhook (delivered by deliver_webhooks)."""
    return _statement(
        "QueueWebhooks", ["sqs:SendMessage", "sqs:GetQueueAttributes"], [res.webhook_queue_arn]
    )


def _bucket_listing(bucket_arn: str) -> iam.PolicyStatement:
    # ListBucket lets HeadObject on a missing key answer 404 (not 403), so "not uploaded yet" is
    # recognisable; ListBucketMultipartUploads finds the uploads a client opened on a key (Uppy 6)
    # to abort them.
    return _statement(
        "ListOwnBucket", ["s3:ListBucket", "s3:ListBucketMultipartUploads"], [bucket_arn]
    )


def api_policy(res: Resources) -> list[iam.PolicyStatement]:
    table = [res.table_arn, f"{res.table_arn}/index/*"]
    statements = [
        *_common(res),
        _queue_webhooks(res),
        _statement(
            "Records",
            [
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:DeleteItem",
                "dynamodb:Query",
            ],
            table,
        ),
        _statement("Enqueue", ["sqs:SendMessage", "sqs:GetQueueAttributes"], [res.queue_arn]),
    ]
    if res.bucket_arn:
        statements += [
            _bucket_listing(res.bucket_arn),
            _statement(
                "Uploads",
                ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", *MULTIPART],
                _objects(res.bucket_arn, ORIGINALS),
            ),
            _statement(
                "ReadAndDeleteOutputs",
                ["s3:GetObject", "s3:DeleteObject"],
                _objects(res.bucket_arn, *OUTPUTS),
            ),
        ]
    return statements


def processor_policy(res: Resources) -> list[iam.PolicyStatement]:
    statements = [
        *_common(res),
        _queue_webhooks(res),
        _statement(
            "Records",
            [
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
            ],
            [res.table_arn],
        ),
        _statement(
            "ConsumeAndRequeue",
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                "sqs:SendMessage",
            ],
            [res.queue_arn],
        ),
    ]
    if res.bucket_arn:
        statements += [
            _bucket_listing(res.bucket_arn),
            _statement(
                "ReadAndRefuseOriginals",
                # ListMultipartUploadParts: is the client's bound upload still open (then the
                # object did not come from it)?
                ["s3:GetObject", "s3:DeleteObject", "s3:ListMultipartUploadParts"],
                _objects(res.bucket_arn, ORIGINALS),
            ),
            _statement(
                "WriteOutputs",
                ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", *MULTIPART],
                _objects(res.bucket_arn, *OUTPUTS),
            ),
            _statement(
                "Segments",
                ["s3:PutObject", "s3:GetObject", "s3:DeleteObject", *MULTIPART],
                _objects(res.bucket_arn, SEGMENTS),
            ),
        ]
    return statements


def watchdog_policy(res: Resources) -> list[iam.PolicyStatement]:
    statements = [
        *_common(res),
        _queue_webhooks(res),
        _statement(
            "Records",
            [
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:Query",  # the in-flight index: no Scan
                "dynamodb:UpdateItem",
            ],
            [res.table_arn, f"{res.table_arn}/index/*"],
        ),
        _statement("Requeue", ["sqs:SendMessage", "sqs:GetQueueAttributes"], [res.queue_arn]),
    ]
    if res.bucket_arn:
        # A record whose upload window ended: its multipart uploads are aborted.
        statements += [
            _bucket_listing(res.bucket_arn),
            _statement(
                "AbortOverdueUploads",
                ["s3:AbortMultipartUpload"],
                _objects(res.bucket_arn, ORIGINALS),
            ),
        ]
    return statements


def dead_letters_policy(res: Resources) -> list[iam.PolicyStatement]:
    """Marks records whose messages failed too often as failed (and queues their webhooks)."""
    return [
        *_common(res),
        _queue_webhooks(res),
        _statement(
            "Records",
            ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:UpdateItem"],
            [res.table_arn],
        ),
        _statement(
            "ConsumeDeadLetters",
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            [res.dlq_arn],
        ),
        _statement("Enqueue", ["sqs:SendMessage", "sqs:GetQueueAttributes"], [res.queue_arn]),
    ]


def webhooks_policy(res: Resources) -> list[iam.PolicyStatement]:
    """Delivers webhooks from their own queue: reads the owner's signing secrets (made on first
    use), and queues a failed attempt again with a delay."""
    return [
        *_common(res),
        _statement(
            "SigningSecrets",
            ["dynamodb:DescribeTable", "dynamodb:GetItem", "dynamodb:PutItem"],
            [res.table_arn],
        ),
        _statement(
            "ConsumeWebhooks",
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
                "sqs:SendMessage",
            ],
            [res.webhook_queue_arn],
        ),
        # A delivery given up on goes to the dead-letter queue, whose consumer records it.
        _statement(
            "ForwardFailedWebhooks",
            ["sqs:SendMessage", "sqs:GetQueueAttributes"],
            [res.webhook_dlq_arn],
        ),
    ]


def webhook_dead_letters_policy(res: Resources) -> list[iam.PolicyStatement]:
    """Keeps each webhook delivery given up on, on its record (one attribute, UpdateItem)."""
    return [
        *_common(res),
        _statement("Records", ["dynamodb:DescribeTable", "dynamodb:UpdateItem"], [res.table_arn]),
        _statement(
            "ConsumeWebhookDeadLetters",
            [
                "sqs:ReceiveMessage",
                "sqs:DeleteMessage",
                "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes",
            ],
            [res.webhook_dlq_arn],
        ),
    ]


POLICIES = {
    "api_handler": api_policy,
    "process_uploads": processor_policy,
    "watchdog": watchdog_policy,
    "dead_letters": dead_letters_policy,
    "deliver_webhooks": webhooks_policy,
    "webhook_dead_letters": webhook_dead_letters_policy,
}
