"""Webhooks, the use case: tell a timelapse's callbackUrl about its terminal state.

`timelapse_ended` (the Notifier the other use cases call) only queues a delivery message: a render
never waits for, nor fails because of, someone else's server, and nothing runs in a thread that
Lambda would freeze. The queue handler then calls `deliver`, which POSTs once and, on a non-2xx
answer or a timeout, queues the next attempt with a growing delay, until `max_attempts`.

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
from typing import Any

from chalicelib import wire
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
            return Outcome.GAVE_UP
        delay = retry_delay(attempt, base_seconds=self.backoff_seconds)
        try:
            self.queue.send({**message, "attempt": attempt + 1}, delay_seconds=delay)
        except Exception:
            logger.exception("webhook retry not queued; given up", extra=context)
            return Outcome.GAVE_UP
        logger.info("webhook will be retried", extra={**context, "reason": reason, "delay": delay})
        return Outcome.RETRYING
