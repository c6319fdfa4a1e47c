"""`Idempotency-Key` on create (API.md): the pure part — which keys are acceptable, and what makes
two requests the same request."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from chalicelib.errors import ValidationError

MAX_KEY = 255
# How long a key answers with its first answer.
KEEP_SECONDS = 24 * 3600
# A first request that has not finished within this long (its function died) frees its key.
HOLD_SECONDS = 60


@dataclass(frozen=True)
class EarlierRequest:
    """What a key already stands for: the request's fingerprint, and the timelapse it made (None
    while that first request is still being handled)."""

    fingerprint: str
    timelapse_id: str | None


def idempotency_key(raw: str | None) -> str | None:
    if raw is None:
        return None
    if not raw or len(raw) > MAX_KEY or not all(c.isascii() and c.isprintable() for c in raw):
        raise ValidationError(f"Idempotency-Key must be 1–{MAX_KEY} printable ASCII characters")
    return raw


def fingerprint(body: Any) -> str:
    """The same JSON value, however its keys are ordered or spaced, gives the same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
