"""Standard Webhooks: per-user secrets, and deliveries that the `standardwebhooks` library
verifies the way receivers will (webhook-id, webhook-timestamp, webhook-signature)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from chalicelib.domain.timelapse import Status
from chalicelib.domain.webhooks import (
    ROTATION_OVERLAP,
    SigningSecrets,
    new_signing_secret,
    standard_headers,
    standard_signature,
    verify_signature,
)
from chalicelib.errors import ConflictError
from chalicelib.services.ports import DeliveryAnswer
from chalicelib.services.webhook_secrets import WebhookSecretService
from chalicelib.services.webhooks import Outcome, WebhookService, delivery_message
from tests.factories import a_timelapse

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
LEGACY_SECRET = "service-wide"


@dataclass
class InMemorySecrets:
    """The store's contract: `put` succeeds only over what the caller read (or over nothing)."""

    items: dict[str, SigningSecrets] = field(default_factory=dict)
    writes_before_ours: list[SigningSecrets] = field(default_factory=list)

    def get(self, owner_id: str) -> SigningSecrets | None:
        return self.items.get(owner_id)

    def put(
        self, owner_id: str, secrets: SigningSecrets, *, replacing: SigningSecrets | None
    ) -> None:
        if self.writes_before_ours:  # someone else writes between our read and our write
            self.items[owner_id] = self.writes_before_ours.pop(0)
        held = self.items.get(owner_id)
        if (held.current if held else None) != (replacing.current if replacing else None):
            raise ConflictError("the webhook secret changed meanwhile; try again")
        self.items[owner_id] = secrets


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class RecordingSender:
    answers: list[int]
    calls: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> DeliveryAnswer:
        self.calls.append((body, headers))
        return DeliveryAnswer(self.answers.pop(0), "")


@dataclass
class RecordingQueue:
    sent: list[dict[str, Any]] = field(default_factory=list)

    def send(self, message: dict[str, Any], *, delay_seconds: int = 0) -> None:
        self.sent.append(json.loads(json.dumps(message)))


def received(body: bytes, headers: dict[str, str], secret: str) -> Any:
    """What a receiver does: the library verifies the raw body with the headers and parses it."""
    return Webhook(secret).verify(body, headers)


# --- the pure part ------------------------------------------------------------------------------


def test_a_new_secret_is_whsec_and_the_base64_of_32_random_bytes() -> None:
    first, second = new_signing_secret(), new_signing_secret()
    assert first.startswith("whsec_")
    assert len(base64.b64decode(first.removeprefix("whsec_"))) == 32
    assert first != second


def test_the_library_verifies_our_signature_and_refuses_a_changed_body() -> None:
    secret = new_signing_secret()
    body = b'{"type":"timelapse.complete"}'
    timestamp = int(datetime.now(UTC).timestamp())
    headers = standard_headers([secret], "msg-1", body, timestamp)
    assert headers["webhook-signature"] == standard_signature(secret, "msg-1", timestamp, body)
    assert received(body, headers, secret) == {"type": "timelapse.complete"}
    with pytest.raises(WebhookVerificationError):
        received(body + b" ", headers, secret)
    with pytest.raises(WebhookVerificationError):
        received(body, headers, new_signing_secret())
    with pytest.raises(WebhookVerificationError):
        received(body, {**headers, "webhook-id": "msg-2"}, secret)


def test_a_signature_per_secret_so_either_verifies() -> None:
    old, new = new_signing_secret(), new_signing_secret()
    body = b"{}"
    headers = standard_headers([new, old], "msg-1", body, int(datetime.now(UTC).timestamp()))
    assert headers["webhook-signature"].count("v1,") == 2
    assert received(body, headers, old) == {}
    assert received(body, headers, new) == {}


def test_the_previous_secret_signs_for_24_hours_after_a_rotation() -> None:
    before = SigningSecrets("whsec_b2xk")
    after = before.rotated("whsec_bmV3", NOW)
    assert before.active(NOW) == ["whsec_b2xk"]
    assert after.active(NOW) == ["whsec_bmV3", "whsec_b2xk"]
    assert after.active(NOW + ROTATION_OVERLAP - timedelta(seconds=1)) == [
        "whsec_bmV3",
        "whsec_b2xk",
    ]
    assert after.active(NOW + ROTATION_OVERLAP) == ["whsec_bmV3"]


# --- the secrets use case -----------------------------------------------------------------------


def test_a_secret_is_made_on_first_use_and_then_stays() -> None:
    secrets = WebhookSecretService(InMemorySecrets(), clock=Clock())
    first = secrets.current("alice")
    assert first.startswith("whsec_")
    assert secrets.current("alice") == first
    assert secrets.current("bob") != first


def test_two_first_uses_at_once_agree_on_one_secret() -> None:
    theirs = SigningSecrets(new_signing_secret())
    secrets = WebhookSecretService(InMemorySecrets(writes_before_ours=[theirs]), clock=Clock())
    assert secrets.current("alice") == theirs.current


def test_rotation_answers_a_new_secret_and_both_sign_for_a_day() -> None:
    clock = Clock()
    secrets = WebhookSecretService(InMemorySecrets(), clock=clock)
    old = secrets.current("alice")
    new = secrets.rotate("alice")
    assert new != old
    assert secrets.current("alice") == new
    assert secrets.signing("alice") == [new, old]
    clock.now = NOW + timedelta(hours=24)
    assert secrets.signing("alice") == [new]


def test_a_rotation_racing_another_is_a_conflict_not_a_lost_secret() -> None:
    store = InMemorySecrets()
    secrets = WebhookSecretService(store, clock=Clock())
    secrets.current("alice")
    store.writes_before_ours.append(SigningSecrets(new_signing_secret()))
    with pytest.raises(ConflictError):
        secrets.rotate("alice")


# --- deliveries ---------------------------------------------------------------------------------


def hooks(*answers: int, store: InMemorySecrets | None = None) -> WebhookService:
    return WebhookService(
        queue=RecordingQueue(),
        sender=RecordingSender(list(answers)),
        secret=LEGACY_SECRET,
        signing_secrets=WebhookSecretService(store or InMemorySecrets()),
    )


def a_delivery() -> dict[str, Any]:
    ended = a_timelapse(
        owner_id="alice", status=Status.COMPLETE, stage=None, callback_url="https://example.com/h"
    )
    return delivery_message(ended, "timelapse.complete")


def test_a_delivery_verifies_with_the_owners_secret_as_receivers_verify() -> None:
    service = hooks(200)
    message = a_delivery()
    assert service.deliver(message) is Outcome.DELIVERED
    [(body, headers)] = service.sender.calls  # type: ignore[attr-defined]
    secret = service.signing_secrets.current("alice")  # type: ignore[union-attr]
    assert received(body, headers, secret)["timelapse"]["id"] == message["timelapseId"]
    assert headers["webhook-id"] == message["deliveryId"]
    # the older header stays for receivers written before
    assert verify_signature(LEGACY_SECRET, headers["Lapse-Signature"], body)
    # and another user's secret does not verify it
    with pytest.raises(WebhookVerificationError):
        received(body, headers, service.signing_secrets.current("bob"))  # type: ignore[union-attr]


def test_a_retry_keeps_the_webhook_id_and_verifies_with_both_secrets_after_a_rotation() -> None:
    service = hooks(503, 200)
    assert service.deliver(a_delivery()) is Outcome.RETRYING
    secrets = service.signing_secrets
    assert secrets is not None
    old = secrets.current("alice")
    new = secrets.rotate("alice")
    [retry] = service.queue.sent  # type: ignore[attr-defined]
    assert service.deliver(retry) is Outcome.DELIVERED
    (_, first), (body, second) = service.sender.calls  # type: ignore[attr-defined]
    assert first["webhook-id"] == second["webhook-id"]
    assert received(body, second, old)["type"] == "timelapse.complete"
    assert received(body, second, new)["type"] == "timelapse.complete"


def test_a_message_queued_before_owners_were_recorded_is_still_delivered() -> None:
    service = hooks(200)
    message = {k: v for k, v in a_delivery().items() if k != "ownerId"}
    assert service.deliver(message) is Outcome.DELIVERED
    [(body, headers)] = service.sender.calls  # type: ignore[attr-defined]
    assert "webhook-signature" not in headers
    assert verify_signature(LEGACY_SECRET, headers["Lapse-Signature"], body)


def test_an_unreachable_secret_store_is_retried_not_sent_unsigned() -> None:
    class Down(InMemorySecrets):
        def get(self, owner_id: str) -> SigningSecrets | None:
            raise RuntimeError("DynamoDB is down")

    service = hooks(200, store=Down())
    assert service.deliver(a_delivery()) is Outcome.RETRYING
    assert service.sender.calls == []  # type: ignore[attr-defined]
