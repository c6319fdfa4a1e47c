"""Idempotency keys, as items of the timelapse table (conditional writes, expired by TTL).

One item per (user, key): `id` = `idempotency#<sha256 of user and key>`. It has none of the
indexes' keys, so listings and the watchdog never see it; the repository's `get` answers only for
timelapse ids. DynamoDB's TTL removes an item some time after `ttl`; until then `expiresAt` says
whether it still counts.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError
from pynamodb.models import Model

from chalicelib.domain import schema
from chalicelib.domain.idempotency import HOLD_SECONDS, KEEP_SECONDS, EarlierRequest

CONDITION_FAILED = "ConditionalCheckFailedException"
ITEM_PREFIX = "idempotency#"


class IdempotencyModel(Model):
    class Meta:
        table_name = "lapse-timelapses"
        region = "us-east-1"
        host: str | None = None

    id = UnicodeAttribute(hash_key=True, attr_name=schema.TABLE_KEY)
    owner_id = UnicodeAttribute(attr_name="ownerId")
    fingerprint = UnicodeAttribute()
    timelapse_id = UnicodeAttribute(attr_name="timelapseId", null=True)
    held_until = NumberAttribute(attr_name="heldUntil")
    expires_at = NumberAttribute(attr_name="expiresAt")
    ttl = NumberAttribute(attr_name=schema.TTL)


def bind_idempotency_table(table_name: str, region: str, host: str | None) -> None:
    """Point the model at the timelapse table; called once by wiring.py."""
    IdempotencyModel.Meta.table_name = table_name
    IdempotencyModel.Meta.region = region
    IdempotencyModel.Meta.host = host
    IdempotencyModel._connection = None


def _item_id(owner_id: str, key: str) -> str:
    digest = hashlib.sha256(f"{owner_id}\0{key}".encode()).hexdigest()
    return ITEM_PREFIX + digest


class DynamoDBIdempotencyKeys:
    def claim(
        self, owner_id: str, key: str, fingerprint: str, now: datetime
    ) -> EarlierRequest | None:
        """Take the key for a first request (None), or say what it already stands for. A key
        whose 24 hours are over, or whose first request died unfinished, is taken afresh."""
        moment = now.timestamp()
        expires = (now + timedelta(seconds=KEEP_SECONDS)).timestamp()
        item = IdempotencyModel(
            _item_id(owner_id, key),
            owner_id=owner_id,
            fingerprint=fingerprint,
            held_until=(now + timedelta(seconds=HOLD_SECONDS)).timestamp(),
            expires_at=expires,
            ttl=int(expires),
        )
        free = (
            IdempotencyModel.id.does_not_exist()
            | (IdempotencyModel.expires_at < moment)
            | (
                IdempotencyModel.timelapse_id.does_not_exist()
                & (IdempotencyModel.held_until < moment)
            )
        )
        try:
            item.save(condition=free)
        except PutError as exc:
            if exc.cause_response_code != CONDITION_FAILED:
                raise
        else:
            return None
        try:
            found = IdempotencyModel.get(_item_id(owner_id, key), consistent_read=True)
        except DoesNotExist:  # expired and removed in between: the caller may simply retry
            return EarlierRequest(fingerprint, None)
        return EarlierRequest(found.fingerprint, found.timelapse_id)

    def finish(self, owner_id: str, key: str, timelapse_id: str) -> None:
        IdempotencyModel(_item_id(owner_id, key)).update(
            actions=[IdempotencyModel.timelapse_id.set(timelapse_id)]
        )

    def release(self, owner_id: str, key: str) -> None:
        """The first request failed: the key is free for a retry."""
        try:
            IdempotencyModel(_item_id(owner_id, key)).delete(
                condition=IdempotencyModel.timelapse_id.does_not_exist()
            )
        except DeleteError as exc:
            if exc.cause_response_code != CONDITION_FAILED:
                raise
