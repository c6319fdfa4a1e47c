"""Users' webhook signing secrets, as items of the timelapse table.

One item per user, `id` = `webhookSecret#<user>`. It has none of the index's keys (`ownerProject`,
`createdAt`), so project listings never see it, and no `status`, so the watchdog's filters skip it;
the repository's `get` answers only for timelapse ids (UUIDs): no route reads it as a timelapse.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pynamodb.attributes import UnicodeAttribute
from pynamodb.exceptions import DoesNotExist, PutError
from pynamodb.models import Model

from chalicelib.domain.webhooks import SigningSecrets
from chalicelib.errors import ConflictError

CONDITION_FAILED = "ConditionalCheckFailedException"
ITEM_PREFIX = "webhookSecret#"


class WebhookSecretModel(Model):
    class Meta:
        table_name = "lapse-timelapses"
        region = "us-east-1"
        host: str | None = None

    id = UnicodeAttribute(hash_key=True)
    owner_id = UnicodeAttribute(attr_name="ownerId")
    secret = UnicodeAttribute()
    previous_secret = UnicodeAttribute(attr_name="previousSecret", null=True)
    previous_until = UnicodeAttribute(attr_name="previousUntil", null=True)
    updated_at = UnicodeAttribute(attr_name="updatedAt")


def bind_secret_table(table_name: str, region: str, host: str | None) -> None:
    """Point the model at the timelapse table; called once by wiring.py."""
    WebhookSecretModel.Meta.table_name = table_name
    WebhookSecretModel.Meta.region = region
    WebhookSecretModel.Meta.host = host
    WebhookSecretModel._connection = None


def _item_id(owner_id: str) -> str:
    return ITEM_PREFIX + owner_id


def _to_domain(item: WebhookSecretModel) -> SigningSecrets:
    until = datetime.fromisoformat(item.previous_until) if item.previous_until else None
    return SigningSecrets(item.secret, item.previous_secret, until)


class DynamoDBWebhookSecrets:
    def get(self, owner_id: str) -> SigningSecrets | None:
        try:
            return _to_domain(WebhookSecretModel.get(_item_id(owner_id), consistent_read=True))
        except DoesNotExist:
            return None

    def put(
        self, owner_id: str, secrets: SigningSecrets, *, replacing: SigningSecrets | None
    ) -> None:
        """Stores `secrets` if the item still holds `replacing` (None: if there is none yet);
        ConflictError when someone else wrote first."""
        item = WebhookSecretModel(
            _item_id(owner_id),
            owner_id=owner_id,
            secret=secrets.current,
            previous_secret=secrets.previous,
            previous_until=secrets.previous_until.isoformat() if secrets.previous_until else None,
            updated_at=datetime.now(UTC).isoformat(),
        )
        condition = (
            WebhookSecretModel.id.does_not_exist()
            if replacing is None
            else WebhookSecretModel.secret == replacing.current
        )
        try:
            item.save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == CONDITION_FAILED:
                raise ConflictError("the webhook secret changed meanwhile; try again") from exc
            raise
