"""Per-user webhook signing secrets: made on first use, rotated on request; after a rotation the
previous one keeps signing deliveries for 24 hours beside the new one."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from chalicelib.domain.timelapse import utcnow
from chalicelib.domain.webhooks import SigningSecrets, new_signing_secret
from chalicelib.errors import ConflictError


class WebhookSecretStore(Protocol):
    def get(self, owner_id: str) -> SigningSecrets | None: ...

    def put(
        self, owner_id: str, secrets: SigningSecrets, *, replacing: SigningSecrets | None
    ) -> None: ...


@dataclass
class WebhookSecretService:
    store: WebhookSecretStore
    clock: Callable[[], datetime] = field(default=utcnow)

    def secrets_of(self, owner_id: str) -> SigningSecrets:
        """The user's secrets, made now if they have none (two first uses agree on one)."""
        found = self.store.get(owner_id)
        if found is not None:
            return found
        made = SigningSecrets(new_signing_secret())
        try:
            self.store.put(owner_id, made, replacing=None)
        except ConflictError:
            return self.secrets_of(owner_id)
        return made

    def current(self, owner_id: str) -> str:
        return self.secrets_of(owner_id).current

    def rotate(self, owner_id: str) -> str:
        """A new current secret; the one it replaces signs too for the next 24 hours."""
        before = self.secrets_of(owner_id)
        after = before.rotated(new_signing_secret(), self.clock())
        self.store.put(owner_id, after, replacing=before)
        return after.current

    def signing(self, owner_id: str) -> list[str]:
        """The secrets a delivery to this user's callback is signed with now."""
        return self.secrets_of(owner_id).active(self.clock())
