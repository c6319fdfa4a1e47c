"""Event handlers: the processing queue (S3 ObjectCreated events and lapse's own messages) and the
scheduled watchdog. Each record → one use case."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from chalice.app import Blueprint, CloudWatchEvent, Rate, SQSEvent

from chalicelib import wiring
from chalicelib.adapters.queue import PART_MESSAGE, PROCESS_MESSAGE
from chalicelib.domain.keys import is_timelapse_id, timelapse_id_from_event_key
from chalicelib.domain.timelapse import utcnow
from chalicelib.domain.webhooks import WEBHOOK_MESSAGE
from chalicelib.logs import logger, metrics, tracer

events = Blueprint(__name__)

# Chalice binds the event source at packaging time, so the queue name is read at import.
QUEUE_NAME = os.environ.get("LAPSE_QUEUE_NAME", "lapse-process")
DEAD_LETTER_QUEUE_NAME = os.environ.get("LAPSE_DLQ_NAME", f"{QUEUE_NAME}-dlq")
# Webhook deliveries have their own queue and function: a slow receiver never holds a render slot.
WEBHOOK_QUEUE_NAME = os.environ.get("LAPSE_WEBHOOK_QUEUE_NAME", "lapse-webhooks")
WEBHOOK_DEAD_LETTER_QUEUE_NAME = os.environ.get(
    "LAPSE_WEBHOOK_DLQ_NAME", f"{WEBHOOK_QUEUE_NAME}-dlq"
)
# Stop rendering this long before Lambda would kill the function, to fail with a clear message
# (a tenth of the time for a function limit under 200 s: the local worker's short test limits).
DEADLINE_MARGIN_SECONDS = 20.0


@dataclass(frozen=True)
class Work:
    """One unit of work found in a queue message."""

    kind: str  # "object_created" | "process" | "part" | "webhook"
    timelapse_id: str
    key: str | None = None
    message: Mapping[str, Any] | None = None  # a webhook delivery, as queued
    token: str | None = None  # a part: its fan-out's token, and its number
    part: int | None = None


def work_in_message(body: str) -> Iterator[Work]:
    """Every unit of work in one SQS message body; unknown shapes yield nothing."""
    try:
        message = json.loads(body)
    except ValueError:
        logger.warning("queue message is not JSON; dropped")
        return
    if not isinstance(message, dict):
        return
    if message.get("Event") == "s3:TestEvent":
        return
    if message.get("type") == PROCESS_MESSAGE and is_timelapse_id(message.get("timelapseId")):
        yield Work("process", message["timelapseId"])
        return
    if message.get("type") == PART_MESSAGE and is_timelapse_id(message.get("timelapseId")):
        token, part = message.get("token"), message.get("part")
        if isinstance(token, str) and isinstance(part, int) and not isinstance(part, bool):
            yield Work("part", message["timelapseId"], token=token, part=part)
        return
    if message.get("type") == WEBHOOK_MESSAGE and is_timelapse_id(message.get("timelapseId")):
        yield Work("webhook", message["timelapseId"], message=message)
        return
    records = message.get("Records")
    for record in records if isinstance(records, list) else []:
        raw_key = _object_created_key(record)
        timelapse_id = timelapse_id_from_event_key(raw_key) if raw_key else None
        if raw_key and timelapse_id:
            yield Work("object_created", timelapse_id, unquote_plus(raw_key))


def _object_created_key(record: Any) -> str | None:
    """The (still URL-encoded) key of an S3 ObjectCreated record, or None for any other shape."""
    if not isinstance(record, dict) or not str(record.get("eventName", "")).startswith(
        "ObjectCreated"
    ):
        return None
    s3 = record.get("s3")
    found = s3.get("object") if isinstance(s3, dict) else None
    key = found.get("key") if isinstance(found, dict) else None
    return key if isinstance(key, str) else None


def _deadline(context: Any) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    seconds_left = float(remaining()) / 1000.0
    margin = min(DEADLINE_MARGIN_SECONDS, seconds_left / 10)
    return time.monotonic() + seconds_left - margin


def handle_work(work: Work, deadline: float | None) -> None:
    if work.kind == "webhook":
        # Queued here before webhooks had their own queue: moved there, not delivered here.
        wiring.webhook_service().queue.send(dict(work.message or {}))
        return
    service = wiring.processing_service()
    # Thread-safe keys: the local worker runs several handlers at once in one process.
    logger.thread_safe_append_keys(timelapse_id=work.timelapse_id)
    try:
        if work.kind == "object_created" and work.key:
            service.object_created(work.timelapse_id, work.key, deadline=deadline)
        elif work.kind == "part" and work.token is not None and work.part is not None:
            wiring.parts_service().run_part(work.timelapse_id, work.token, work.part, deadline)
        else:
            service.run(work.timelapse_id, deadline=deadline)
    finally:
        logger.thread_safe_remove_keys(["timelapse_id"])


def deliver_webhook(work: Work) -> None:
    """One delivery attempt; never raises (a dead callback must not poison the queue)."""
    logger.thread_safe_append_keys(timelapse_id=work.timelapse_id)
    try:
        wiring.webhook_service().deliver(work.message or {})
    finally:
        logger.thread_safe_remove_keys(["timelapse_id"])


@events.on_sqs_message(queue=QUEUE_NAME, batch_size=1)
@tracer.capture_method
def process_uploads(event: SQSEvent) -> None:
    deadline = _deadline(event.context)
    logger.thread_safe_append_keys(request_id=getattr(event.context, "aws_request_id", None))
    try:
        for record in event:
            for work in work_in_message(record.body):
                handle_work(work, deadline)
    finally:
        metrics.flush_metrics()


@events.on_sqs_message(queue=WEBHOOK_QUEUE_NAME, batch_size=10)
def deliver_webhooks(event: SQSEvent) -> None:
    """One delivery attempt per message; a failed one is queued again with a delay by the
    service itself, so the handler never raises for a receiver's sake."""
    logger.thread_safe_append_keys(request_id=getattr(event.context, "aws_request_id", None))
    for record in event:
        for work in work_in_message(record.body):
            if work.kind == "webhook":
                deliver_webhook(work)
            else:
                logger.warning("not a webhook delivery; dropped", extra={"kind": work.kind})


@events.on_sqs_message(queue=DEAD_LETTER_QUEUE_NAME, batch_size=10)
def dead_letters(event: SQSEvent) -> None:
    """Messages that failed too often: their records end `failed`, not silently lost."""
    watchdog_service = wiring.watchdog_service()
    for record in event:
        for work in work_in_message(record.body):
            if work.kind == "webhook":
                # Says nothing about the record's processing (it already ended): just drop it.
                logger.warning("webhook message dead-lettered; dropped")
                continue
            watchdog_service.dead_letter(work.timelapse_id, utcnow())


@events.on_sqs_message(queue=WEBHOOK_DEAD_LETTER_QUEUE_NAME, batch_size=10)
def webhook_dead_letters(event: SQSEvent) -> None:
    """Deliveries lapse gave up on (after every retry, refused, or their handler failing again
    and again): each is kept on its record (services/webhooks.py `dead_lettered`)."""
    service = wiring.webhook_service()
    for record in event:
        for work in work_in_message(record.body):
            if work.kind != "webhook":
                logger.warning("not a webhook delivery; dropped", extra={"kind": work.kind})
                continue
            logger.thread_safe_append_keys(timelapse_id=work.timelapse_id)
            try:
                service.dead_lettered(work.message or {}, utcnow())
            finally:
                logger.thread_safe_remove_keys(["timelapse_id"])


@events.schedule(Rate(1, unit=Rate.MINUTES))
def watchdog(event: CloudWatchEvent) -> None:
    wiring.watchdog_service().sweep(utcnow())
