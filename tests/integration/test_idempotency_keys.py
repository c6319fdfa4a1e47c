"""Idempotency keys in the real local table: conditional puts decide who is first."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest

from chalicelib import wiring
from chalicelib.adapters.idempotency import DynamoDBIdempotencyKeys
from chalicelib.domain.idempotency import HOLD_SECONDS, KEEP_SECONDS, EarlierRequest
from chalicelib.domain.timelapse import utcnow

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]


@pytest.fixture
def keys(local_stack: object) -> DynamoDBIdempotencyKeys:
    return wiring.idempotency_keys()


def test_the_first_claim_wins_and_later_ones_see_what_it_made(
    keys: DynamoDBIdempotencyKeys,
) -> None:
    key, now = str(uuid.uuid4()), utcnow()
    assert keys.claim("alice", key, "print-1", now) is None
    assert keys.claim("alice", key, "print-1", now) == EarlierRequest("print-1", None)
    keys.finish("alice", key, "tl-1")
    assert keys.claim("alice", key, "print-2", now) == EarlierRequest("print-1", "tl-1")
    # Another user's key of the same name is another key
    assert keys.claim("bob", key, "print-1", now) is None


def test_a_key_is_free_again_after_its_day_or_when_its_first_request_died(
    keys: DynamoDBIdempotencyKeys,
) -> None:
    done, died, now = str(uuid.uuid4()), str(uuid.uuid4()), utcnow()
    keys.claim("alice", done, "p", now)
    keys.finish("alice", done, "tl-1")
    keys.claim("alice", died, "p", now)
    assert keys.claim("alice", done, "p", now + timedelta(seconds=KEEP_SECONDS + 1)) is None
    assert keys.claim("alice", died, "p", now + timedelta(seconds=HOLD_SECONDS + 1)) is None
    # A finished one is not freed by the hold running out
    again = str(uuid.uuid4())
    keys.claim("alice", again, "p", now)
    keys.finish("alice", again, "tl-2")
    later = now + timedelta(seconds=HOLD_SECONDS + 1)
    assert keys.claim("alice", again, "p", later) == EarlierRequest("p", "tl-2")


def test_release_frees_only_an_unfinished_key(keys: DynamoDBIdempotencyKeys) -> None:
    key, now = str(uuid.uuid4()), utcnow()
    keys.claim("alice", key, "p", now)
    keys.release("alice", key)
    assert keys.claim("alice", key, "p", now) is None
    keys.finish("alice", key, "tl-1")
    keys.release("alice", key)
    assert keys.claim("alice", key, "p", now) == EarlierRequest("p", "tl-1")


def test_of_simultaneous_claims_exactly_one_is_first(keys: DynamoDBIdempotencyKeys) -> None:
    key, now = str(uuid.uuid4()), utcnow()
    results: list[EarlierRequest | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(keys.claim("alice", key, "p", now)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(None) == 1
