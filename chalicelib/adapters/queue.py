"""The processing queue: where work for the worker is sent when no bucket event will send it
(Cloudflare R2, `POST /timelapses/{id}/process`, the watchdog's retries)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

PROCESS_MESSAGE = "lapse.process"


def process_message(timelapse_id: str) -> dict[str, Any]:
    return {"type": PROCESS_MESSAGE, "timelapseId": timelapse_id}


class SQSWorkQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self.queue_url = queue_url

    def send_process(self, timelapse_id: str) -> None:
        self._client.send_message(
            QueueUrl=self.queue_url, MessageBody=json.dumps(process_message(timelapse_id))
        )
