"""Where the local stack listens and what it is called; shared by `make run` and the tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

ACCOUNT_ID = "123456789012"  # moto's default account


@dataclass(frozen=True)
class LocalStack:
    api_port: int = 8000
    moto_port: int = 4566
    region: str = "us-east-1"
    bucket: str = "lapse-local"
    table: str = "lapse-timelapses"
    queue_name: str = "lapse-process"
    dlq_name: str = "lapse-process-dlq"
    webhook_queue_name: str = "lapse-webhooks"
    host: str = "127.0.0.1"
    # False mimics Cloudflare R2: the bucket sends no ObjectCreated events; the API enqueues.
    storage_events: bool = True
    # The browser upload page (web/) and the files it loads.
    web_port: int = 8001

    @classmethod
    def from_env(cls) -> LocalStack:
        return cls(
            api_port=int(os.environ.get("LAPSE_API_PORT", "8000")),
            moto_port=int(os.environ.get("LAPSE_MOTO_PORT", "4566")),
            web_port=int(os.environ.get("LAPSE_WEB_PORT", "8001")),
            storage_events=os.environ.get("LAPSE_STORAGE_EVENTS", "true").lower()
            not in {"0", "false", "no", "off"},
        )

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.moto_port}"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def web_url(self) -> str:
        return f"http://{self.host}:{self.web_port}"

    @property
    def queue_url(self) -> str:
        return f"{self.endpoint}/{ACCOUNT_ID}/{self.queue_name}"

    @property
    def dlq_url(self) -> str:
        return f"{self.endpoint}/{ACCOUNT_ID}/{self.dlq_name}"

    @property
    def queue_arn(self) -> str:
        return f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{self.queue_name}"

    @property
    def dlq_arn(self) -> str:
        return f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{self.dlq_name}"

    @property
    def webhook_queue_url(self) -> str:
        return f"{self.endpoint}/{ACCOUNT_ID}/{self.webhook_queue_name}"

    @property
    def webhook_dlq_name(self) -> str:
        return f"{self.webhook_queue_name}-dlq"

    @property
    def webhook_dlq_url(self) -> str:
        return f"{self.endpoint}/{ACCOUNT_ID}/{self.webhook_dlq_name}"

    def queue_urls(self) -> dict[str, str]:
        """Every queue of the stack, by name."""
        return {
            self.queue_name: self.queue_url,
            self.dlq_name: self.dlq_url,
            self.webhook_queue_name: self.webhook_queue_url,
            self.webhook_dlq_name: self.webhook_dlq_url,
        }

    @property
    def webhook_dlq_arn(self) -> str:
        return f"arn:aws:sqs:{self.region}:{ACCOUNT_ID}:{self.webhook_dlq_name}"

    def s3(self) -> S3Client:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def sqs(self) -> SQSClient:
        return boto3.client(
            "sqs",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def dynamodb(self) -> DynamoDBClient:
        return boto3.client(
            "dynamodb",
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def environment(self) -> dict[str, str]:
        """What the API and the worker read (chalicelib/settings.py) when run locally."""
        return {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "LAPSE_STAGE": "local",
            # Readable log lines (chalicelib/logs.py); EMF metrics only matter on AWS.
            "POWERTOOLS_METRICS_DISABLED": "true",
            "LAPSE_AWS_ENDPOINT_URL": self.endpoint,
            "LAPSE_BUCKET": self.bucket,
            "LAPSE_TABLE": self.table,
            "LAPSE_QUEUE_NAME": self.queue_name,
            "LAPSE_QUEUE_URL": self.queue_url,
            "LAPSE_DLQ_NAME": self.dlq_name,
            "LAPSE_WEBHOOK_QUEUE_NAME": self.webhook_queue_name,
            "LAPSE_WEBHOOK_QUEUE_URL": self.webhook_queue_url,
            "LAPSE_WEBHOOK_DLQ_NAME": self.webhook_dlq_name,
            "LAPSE_WEBHOOK_DLQ_URL": self.webhook_dlq_url,
            "LAPSE_STORAGE_EVENTS": "true" if self.storage_events else "false",
            "LAPSE_API_PORT": str(self.api_port),
            "LAPSE_MOTO_PORT": str(self.moto_port),
        }
