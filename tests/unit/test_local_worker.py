"""The local worker's poll loop: as Lambda's SQS poller, it outlives a failed receive or delete."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local import worker


class FlakyQueue:
    """An SQS client whose first calls fail the way a busy or restarting server's do."""

    def __init__(self) -> None:
        self.attribute_failures = 1
        self.receive_failures = 2
        self.delete_failures = 1
        self.messages = [{"MessageId": "m1", "ReceiptHandle": "r1", "Body": "{}"}]
        self.deleted: list[str] = []
        self.delete_attempts = 0

    def get_queue_attributes(self, **_: Any) -> dict[str, Any]:
        if self.attribute_failures:
            self.attribute_failures -= 1
            raise ConnectionError("connection refused")
        return {"Attributes": {"QueueArn": "arn:aws:sqs:us-east-1:123456789012:q"}}

    def receive_message(self, **_: Any) -> dict[str, Any]:
        if self.receive_failures:
            self.receive_failures -= 1
            raise TimeoutError("read timed out")
        if not self.messages:
            worker.stopping.set()
            return {}
        return {"Messages": [self.messages.pop()]}

    def delete_message(self, *, QueueUrl: str, ReceiptHandle: str) -> None:  # noqa: N803
        self.delete_attempts += 1
        if self.delete_failures:
            self.delete_failures -= 1
            self.messages.append({"MessageId": "m1", "ReceiptHandle": "r2", "Body": "{}"})
            raise ConnectionError("connection reset")
        self.deleted.append(ReceiptHandle)


class Stack:
    region = "us-east-1"

    def __init__(self, queue: FlakyQueue) -> None:
        self.queue = queue

    def sqs(self) -> FlakyQueue:
        return self.queue


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(worker, "POLL_RETRY_SECONDS", 0.0)
    monkeypatch.setattr(worker, "FAILED_PAUSE_SECONDS", 0.0)
    worker.stopping.clear()
    yield
    worker.stopping.clear()


def test_the_poller_survives_failed_receives_and_deletes() -> None:
    # Given a queue whose first attribute read, first two receives and first delete fail
    queue = FlakyQueue()
    handled: list[str] = []
    # When the poll loop runs until the queue is empty
    worker.poll(
        Stack(queue),  # type: ignore[arg-type]
        "q",
        lambda event, _: handled.append(event["Records"][0]["receiptHandle"]),
        60,
    )
    # Then every failure was outlived: the message was handled, came back after the failed
    # delete (as it would after its visibility timeout), was handled again and deleted
    assert handled == ["r1", "r2"]
    assert queue.deleted == ["r2"]
    assert queue.delete_attempts == 2


def test_a_failing_handler_leaves_the_message_and_the_poller_goes_on() -> None:
    queue = FlakyQueue()
    queue.receive_failures = queue.attribute_failures = queue.delete_failures = 0
    queue.messages = [
        {"MessageId": "ok", "ReceiptHandle": "ok", "Body": "{}"},
        {"MessageId": "bad", "ReceiptHandle": "bad", "Body": "{}"},
    ]

    def handler(event: dict[str, Any], _: Any) -> None:
        if event["Records"][0]["receiptHandle"] == "bad":
            raise RuntimeError("no such table")

    worker.poll(Stack(queue), "q", handler, 60)  # type: ignore[arg-type]
    assert queue.deleted == ["ok"]
