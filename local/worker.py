"""The local worker: long-polls the processing queue and calls the very handler Lambda runs
(`chalicelib.events.process_uploads`), drains the webhook queue with its own handler
(`deliver_webhooks`) and its dead-letter queue (`webhook_dead_letters`), and runs the watchdog
every few seconds (`python -m local.worker`)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from types import FrameType
from typing import Any

from chalicelib import wiring
from chalicelib.events import (
    dead_letters,
    deliver_webhooks,
    process_uploads,
    watchdog,
    webhook_dead_letters,
)
from chalicelib.logs import logger
from local.config import LocalStack

stopping = threading.Event()
POLL_RETRY_SECONDS = 1.0
# After a handler failure the poller pauses up to this long, at random, before it receives again
# (Lambda backs off on function errors too). Without it a poller that keeps failing a message
# receives it again the instant it is visible, in step with its visibility timeout, and a
# healthy poller of the same queue may never get it (seen: a dead-letter message failed for a
# minute by a worker with a broken table while the stack's own poller waited).
FAILED_PAUSE_SECONDS = 1.0


class LocalContext:
    """The slice of Lambda's context object the handlers use."""

    def __init__(self, timeout_seconds: float) -> None:
        self._deadline = time.monotonic() + timeout_seconds
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = "lapse-local-worker"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def sqs_event(message: Mapping[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda's SQS integration would hand the function for one message."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        ]
    }


Handler = Callable[[dict[str, Any], LocalContext], Any]


def poll(stack: LocalStack, queue_url: str, handler: Handler, timeout_seconds: float) -> None:
    """Lambda's SQS integration, one message at a time: the handler returns → delete the message.

    Like Lambda's poller it outlives any one failure: a receive or delete that fails (storage
    restarting, a timeout under load) is logged and retried after a pause, never the end of the
    thread — a silently dead poller would leave its queue unread while the process looks alive."""
    sqs = stack.sqs()
    queue_arn: str | None = None
    while not stopping.is_set():
        try:
            if queue_arn is None:
                queue_arn = sqs.get_queue_attributes(
                    QueueUrl=queue_url, AttributeNames=["QueueArn"]
                )["Attributes"]["QueueArn"]
            answer = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=1,
                AttributeNames=["All"],
            )
        except Exception:
            logger.exception("queue unreachable; polling again shortly", extra={"queue": queue_url})
            stopping.wait(POLL_RETRY_SECONDS)
            continue
        for message in answer.get("Messages", []):
            _handle(
                stack,
                sqs=sqs,
                queue_url=queue_url,
                queue_arn=queue_arn,
                message=message,
                handler=handler,
                timeout_seconds=timeout_seconds,
            )


def _handle(
    stack: LocalStack,
    *,
    sqs: Any,
    queue_url: str,
    queue_arn: str,
    message: Mapping[str, Any],
    handler: Handler,
    timeout_seconds: float,
) -> None:
    try:
        handler(sqs_event(message, queue_arn, stack.region), LocalContext(timeout_seconds))
    except Exception:
        # As on Lambda: the message comes back after its visibility timeout, and lands
        # in the dead-letter queue after too many receives.
        logger.exception("handler failed; message left on the queue")
        stopping.wait(random.uniform(0, FAILED_PAUSE_SECONDS))
        return
    try:
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    except Exception:
        # The work is done; the message comes back after its visibility timeout and the
        # handler, idempotent as on Lambda, finds nothing left to do.
        logger.exception("could not delete a handled message", extra={"queue": queue_url})


def run_watchdog(interval: float) -> None:
    event = {
        "version": "0",
        "id": "local",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "",
        "region": "us-east-1",
        "resources": [],
        "detail": {},
    }
    while not stopping.wait(interval):
        try:
            watchdog(event, LocalContext(60))
        except Exception:
            logger.exception("watchdog sweep failed")


def _stop(signum: int, frame: FrameType | None) -> None:
    stopping.set()


def main() -> None:
    stack = LocalStack.from_env()
    concurrency = int(os.environ.get("LAPSE_WORKER_CONCURRENCY", "2"))
    # Each render here has the machine's cores shared by the renders at once (a Lambda function
    # has its own): parts of a fanned-out render are sized for that.
    os.environ.setdefault(
        "LAPSE_RENDER_VCPUS", f"{max(0.5, (os.cpu_count() or 2) / max(1, concurrency)):g}"
    )
    timeout = float(os.environ.get("LAPSE_WORKER_TIMEOUT_SECONDS", "900"))
    watchdog_interval = float(os.environ.get("LAPSE_WATCHDOG_SECONDS", "10"))
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    # One poller per queue, as on AWS one function per queue; webhooks on their own queue and
    # thread, so a slow receiver never holds a render slot.
    pollers: list[tuple[str, str, Handler, float]] = [
        *(
            (f"processing-{n}", stack.queue_url, process_uploads, timeout)
            for n in range(concurrency)
        ),
        ("dead-letters", stack.dlq_url, dead_letters, 60),
        ("webhooks", stack.webhook_queue_url, deliver_webhooks, 60),
        ("webhook-dead-letters", stack.webhook_dlq_url, webhook_dead_letters, 60),
    ]
    threads = [
        threading.Thread(target=poll, args=(stack, url, handler, seconds), name=name, daemon=True)
        for name, url, handler, seconds in pollers
    ]
    threads.append(
        threading.Thread(
            target=run_watchdog, args=(watchdog_interval,), name="watchdog", daemon=True
        )
    )
    wiring.warm_up()
    for thread in threads:
        thread.start()
    logger.info("worker polling", extra={"queue": stack.queue_url, "concurrency": concurrency})
    while not stopping.wait(0.5):
        dead = [thread.name for thread in threads if not thread.is_alive()]
        if dead:
            # Never a process that looks alive with a queue nobody reads: exit, and the stack
            # starts a new worker (as Lambda would start a new environment).
            logger.error("worker thread died; exiting to be restarted", extra={"threads": dead})
            raise SystemExit(1)


if __name__ == "__main__":
    main()
