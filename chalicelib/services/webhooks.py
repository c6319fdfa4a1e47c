"""Webhooks, the use case: tell a timelapse's callbackUrl about its terminal state.

`timelapse_ended` (the Notifier the other use cases call) only queues a delivery message: a render
never waits for, nor fails because of, someone else's server, and nothing runs in a thread that
Lambda would freeze. The queue handler then calls `deliver`, which POSTs once and, on a non-2xx
answer or a timeout, queues the next attempt with a growing delay, until `max_attempts`.

A delivery that lapse stops trying ends in the webhook dead-letter queue: given up after
`max_attempts` or refused (forwarded there by `deliver`, with the reason), or one whose handler
failed again and again (moved there by SQS). Its consumer calls `dead_lettered`, which keeps
the failure on the record (`webhookDelivery`: stored, not part of the resource, which API.md
fixes) and logs it, so the owner can be told why their receiver heard nothing.

The message freezes the resource as it was at the terminal state, so a late retry still says what
happened then, even if the timelapse was processed again or deleted meanwhile.
"""

from __future__ import annotations

import enum
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib import wire
from chalicelib.domain.keys import is_timelapse_id
from chalicelib.domain.timelapse import Timelapse
from chalicelib.domain.webhooks import (
    EVENTS,
    SIGNATURE_HEADER,
    WEBHOOK_MESSAGE,
    event_for,
    retry_delay,
    signature_header,
    standard_headers,
)
from chalicelib.logs import logger
from chalicelib.services.ports import (
    DeliveryError,
    RefusedTarget,
    WebhookFailure,
    WebhookFailures,
    WebhookQueue,
    WebhookSender,
)
from chalicelib.services.webhook_secrets import WebhookSecretService


class Outcome(enum.StrEnum):
    DELIVERED = "delivered"
    RETRYING = "retrying"
    GAVE_UP = "gave_up"
    REFUSED = "refused"  # the URL may not be called (any more): not retried
    DROPPED = "dropped"  # not a delivery message lapse could have sent
    RECORDED = "recorded"  # a failed delivery kept on its record


def delivery_message(timelapse: Timelapse, event: str) -> dict[str, Any]:
    """The queue message for the first attempt, with the payload frozen as it is now."""
    return {
        "type": WEBHOOK_MESSAGE,
        "timelapseId": timelapse.id,
        "ownerId": timelapse.owner_id,
        "event": event,
        "attempt": 1,
        "deliveryId": str(uuid.uuid4()),
        "callbackUrl": timelapse.callback_url,
        "timelapse": wire.timelapse(timelapse),
    }


def request_body(message: Mapping[str, Any]) -> bytes:
    """What is POSTed: the same bytes on every attempt of one delivery."""
    payload = {"type": message["event"], "timelapse": message["timelapse"]}
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def _valid(message: Mapping[str, Any]) -> bool:
    return (
        message.get("event") in EVENTS.values()
        and isinstance(message.get("callbackUrl"), str)
        and isinstance(message.get("timelapse"), dict)
        and isinstance(message.get("attempt"), int)
        and message["attempt"] >= 1
    )


@dataclass
class WebhookService:
    queue: WebhookQueue
    sender: WebhookSender
    secret: str  # signs `Lapse-Signature`, for receivers written before Standard Webhooks
    signing_secrets: WebhookSecretService | None = None
    max_attempts: int = 5
    backoff_seconds: int = 2
    # The webhook dead-letter queue, where deliveries given up on go, and the records they are
    # kept on (by the dead-letter consumer).
    dead_letters: WebhookQueue | None = None
    failures: WebhookFailures | None = None

    # --- Notifier: called on every terminal state -----------------------------------------------

    def timelapse_ended(self, timelapse: Timelapse) -> None:
        event = event_for(timelapse.status)
        if not timelapse.callback_url or event is None:
            return
        try:
            self.queue.send(delivery_message(timelapse, event))
        except Exception:
            # The timelapse's own state is already written; a lost webhook must not undo that.
            logger.exception("webhook not queued", extra={"event": event})

    # --- the queue handler's half ---------------------------------------------------------------

    def deliver(self, message: Mapping[str, Any]) -> Outcome:
        """One attempt. Never raises: the queue message is always consumed."""
        if not _valid(message):
            logger.warning("malformed webhook message; dropped")
            return Outcome.DROPPED
        attempt: int = message["attempt"]
        context = {
            "event": message["event"],
            "attempt": attempt,
            "delivery_id": message.get("deliveryId"),
        }
        body = request_body(message)
        try:
            headers = self._headers(message, body)
        except Exception:
            logger.exception("webhook signing secret not available", extra=context)
            return self._retry(message, attempt, "signing secret not available", context)
        try:
            answer = self.sender.post(message["callbackUrl"], body, headers)
        except RefusedTarget as exc:
            logger.warning("webhook refused; not sent", extra={**context, "reason": str(exc)})
            self._forward_failure(message, f"refused: {exc}", context)
            return Outcome.REFUSED
        except DeliveryError as exc:
            reason = str(exc)
        except Exception as exc:
            logger.exception("webhook delivery failed unexpectedly", extra=context)
            reason = type(exc).__name__
        else:
            if answer.ok:
                logger.info("webhook delivered", extra={**context, "status": answer.status})
                return Outcome.DELIVERED
            reason = f"HTTP {answer.status}"
        return self._retry(message, attempt, reason, context)

    def _headers(self, message: Mapping[str, Any], body: bytes) -> dict[str, str]:
        delivery_id = str(message.get("deliveryId") or "")
        headers = {
            SIGNATURE_HEADER: signature_header(self.secret, body),
            "Lapse-Event": message["event"],
            "Lapse-Delivery": delivery_id,
            "Lapse-Attempt": str(message["attempt"]),
        }
        owner = message.get("ownerId")
        if self.signing_secrets is not None and isinstance(owner, str) and delivery_id:
            secrets = self.signing_secrets.signing(owner)
            headers.update(standard_headers(secrets, delivery_id, body, int(time.time())))
        return headers

    def _retry(
        self, message: Mapping[str, Any], attempt: int, reason: str, context: dict[str, Any]
    ) -> Outcome:
        if attempt >= self.max_attempts:
            logger.warning("webhook given up", extra={**context, "reason": reason})
            self._forward_failure(message, reason, context)
            return Outcome.GAVE_UP
        delay = retry_delay(attempt, base_seconds=self.backoff_seconds)
        try:
            self.queue.send({**message, "attempt": attempt + 1}, delay_seconds=delay)
        except Exception:
            logger.exception("webhook retry not queued; given up", extra=context)
            self._forward_failure(message, reason, context)
            return Outcome.GAVE_UP
        logger.info("webhook will be retried", extra={**context, "reason": reason, "delay": delay})
        return Outcome.RETRYING

    def _forward_failure(
        self, message: Mapping[str, Any], reason: str, context: dict[str, Any]
    ) -> None:
        """A delivery given up on goes to the dead-letter queue, whose consumer records it."""
        if self.dead_letters is None:
            return
        try:
            self.dead_letters.send({**message, "failure": reason})
        except Exception:
            logger.exception("failed webhook not forwarded to its dead-letter queue", extra=context)

    # --- the dead-letter queue's consumer -------------------------------------------------------

    def dead_lettered(self, message: Mapping[str, Any], now: datetime) -> Outcome:
        """Keeps a delivery lapse gave up on, on its record. Raises only when the record could not
        be written (the message then comes back, as SQS does)."""
        if not _valid(message) or not is_timelapse_id(message.get("timelapseId")):
            logger.warning("malformed webhook dead letter; dropped")
            return Outcome.DROPPED
        # Without `failure`, SQS moved it here: its handler failed maxReceiveCount times.
        reason = str(message.get("failure") or "the delivery handler failed repeatedly")
        failure = WebhookFailure(
            delivery_id=str(message.get("deliveryId") or ""),
            event=message["event"],
            attempts=message["attempt"],
            reason=reason[:200],
            failed_at=now,
        )
        context = {"event": failure.event, "delivery_id": failure.delivery_id, "reason": reason}
        logger.error("webhook delivery failed for good", extra=context)
        if self.failures is None:
            return Outcome.DROPPED
        if not self.failures.record_webhook_failure(message["timelapseId"], failure):
            logger.info("its timelapse was deleted; nothing kept", extra=context)
            return Outcome.DROPPED
        return Outcome.RECORDED
