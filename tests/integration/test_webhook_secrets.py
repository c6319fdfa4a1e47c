"""Webhook secrets as items of the real local table: conditional writes, and no trace of them in
what the timelapse repository reads, lists or sweeps."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest

from chalicelib.adapters.records import DynamoDBTimelapseRepository
from chalicelib.adapters.webhook_secrets import (
    ITEM_PREFIX,
    DynamoDBWebhookSecrets,
    bind_secret_table,
)
from chalicelib.domain.timelapse import Stage, Timelapse, utcnow
from chalicelib.domain.webhooks import SigningSecrets, new_signing_secret
from chalicelib.errors import ConflictError
from chalicelib.services.webhook_secrets import WebhookSecretService
from chalicelib.settings import get_settings
from local.config import LocalStack

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]


@pytest.fixture
def store(local_stack: LocalStack) -> Iterator[DynamoDBWebhookSecrets]:
    settings = get_settings()
    bind_secret_table(settings.table, settings.region, settings.aws_endpoint_url)
    yield DynamoDBWebhookSecrets()
    bind_secret_table("lapse-timelapses", "us-east-1", None)


def a_user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def test_a_secret_round_trips_and_writes_are_conditional(store: DynamoDBWebhookSecrets) -> None:
    user = a_user()
    assert store.get(user) is None
    first = SigningSecrets(new_signing_secret())
    store.put(user, first, replacing=None)
    assert store.get(user) == first
    # a second "first" write loses
    with pytest.raises(ConflictError):
        store.put(user, SigningSecrets(new_signing_secret()), replacing=None)
    # a rotation over what was read wins, and keeps the previous one with its end
    rotated = first.rotated(new_signing_secret(), utcnow())
    store.put(user, rotated, replacing=first)
    assert store.get(user) == rotated
    # a rotation over a stale read loses
    with pytest.raises(ConflictError):
        store.put(user, first.rotated(new_signing_secret(), utcnow()), replacing=first)


def test_the_use_case_on_the_table_keeps_both_secrets_for_a_day(
    store: DynamoDBWebhookSecrets,
) -> None:
    user = a_user()
    secrets = WebhookSecretService(store)
    old = secrets.current(user)
    new = secrets.rotate(user)
    assert secrets.signing(user) == [new, old]
    tomorrow = WebhookSecretService(store, clock=lambda: utcnow() + timedelta(hours=24, seconds=1))
    assert tomorrow.signing(user) == [new]


def test_secret_items_are_invisible_to_the_timelapse_repository(
    store: DynamoDBWebhookSecrets,
    repository: DynamoDBTimelapseRepository,
    new_record: Callable[..., Timelapse],
) -> None:
    # Given a user with a timelapse and a webhook secret in the same table
    user = a_user()
    made = new_record(
        owner_id=user, project_id="p-secrets", created_at=utcnow() - timedelta(hours=2)
    )
    WebhookSecretService(store).current(user)
    # Then reading the secret's id as a timelapse finds nothing (404 at the API, not a 500)
    assert repository.get(ITEM_PREFIX + user) is None
    # And the project listing and the watchdog's sweeps hold only timelapses
    items, _ = repository.list_by_project(user, "p-secrets", limit=10)
    assert [t.id for t in items] == [made.id]
    later = utcnow() + timedelta(days=1)
    swept = list(repository.find_stale_pending(Stage.AWAITING_UPLOAD, later))
    swept += list(repository.find_expired_leases(later))
    assert all(t.id != ITEM_PREFIX + user for t in swept)
    assert made.id in {t.id for t in swept}
