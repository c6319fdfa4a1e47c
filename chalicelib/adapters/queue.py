"""The processing queue: where work for the worker is sent when no bucket event will send it
(Cloudflare R2, `POST /timelapses/{id}/process`, the watchdog's retries)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

PROCESS_MESSAGE = "lapse.process"
# One part of a fanned-out render: the record's fan-out token and the part's number.
PART_MESSAGE = "lapse.part"


def process_message(timelapse_id: str) -> dict[str, Any]:
    return {"type": PROCESS_MESSAGE, "timelapseId": timelapse_id}


def part_message(timelapse_id: str, token: str, part: int) -> dict[str, Any]:
    return {"type": PART_MESSAGE, "timelapseId": timelapse_id, "token": token, "part": part}


class SQSWorkQueue:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self.queue_url = queue_url

    def send_process(self, timelapse_id: str) -> None:
        self._client.send_message(
            QueueUrl=self.queue_url, MessageBody=json.dumps(process_message(timelapse_id))
        )

    def send_part(self, timelapse_id: str, token: str, part: int) -> None:
        self._client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps(part_message(timelapse_id, token, part)),
        )
