"""Webhooks end to end: a loopback HTTP listener in the test receives what the stack's worker POSTs
on each terminal state, signed; failed deliveries are retried; a dead callback changes nothing."""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from chalicelib.domain.webhooks import verify_signature
from tests.e2e.conftest import Api, RunningStack
from tests.support import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

SECRET = os.environ.get("LAPSE_WEBHOOK_SECRET", "local-webhook-secret")


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """A callback endpoint on loopback that answers with `statuses` in turn (then 200)."""

    statuses: list[int] = field(default_factory=list)
    location: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def wait_for(self, count: int, timeout: float = 120) -> list[Delivery]:
        with self.changed:
            arrived = self.changed.wait_for(lambda: len(self.deliveries) >= count, timeout)
        assert arrived, f"{len(self.deliveries)} of {count} deliveries arrived in {timeout} s"
        return list(self.deliveries)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            if receiver.location and 300 <= status < 400:
                self.send_header("Location", receiver.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            with receiver.changed:
                receiver.deliveries.append(
                    Delivery(self.path, dict(self.headers.items()), body, time.monotonic())
                )
                receiver.changed.notify_all()

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def receivers() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(*statuses: int, location: str | None = None) -> Receiver:
        receiver = Receiver(list(statuses), location)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/lapse?src=e2e"
        return receiver

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _webhook_secret(api: Api) -> str:
    answer = api.request("GET", "/webhook-secret")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["secret"])


def _verified(delivery: Delivery, event: str, timelapse_id: str, api: Api) -> dict[str, Any]:
    assert delivery.path == "/hooks/lapse?src=e2e"
    assert delivery.headers["Content-Type"] == "application/json"
    # As a receiver does it: the standardwebhooks library, the owner's secret, the raw body
    assert Webhook(_webhook_secret(api)).verify(delivery.body, delivery.headers) == delivery.json
    assert verify_signature(SECRET, delivery.headers["Lapse-Signature"], delivery.body)
    assert not verify_signature(
        "another-secret", delivery.headers["Lapse-Signature"], delivery.body
    )
    assert delivery.headers["Lapse-Event"] == event
    payload = delivery.json
    assert payload["type"] == event
    assert payload["timelapse"]["id"] == timelapse_id
    return dict(payload["timelapse"])


def test_a_rendered_upload_posts_a_signed_complete(
    alice: Api, clip_5s: Path, receivers: Any
) -> None:
    receiver = receivers()
    created = alice.submit(clip_5s, callbackUrl=receiver.url)
    tid = created["timelapse"]["id"]
    assert created["timelapse"]["callbackUrl"] == receiver.url
    [delivery] = receiver.wait_for(1)
    timelapse = _verified(delivery, "timelapse.complete", tid, alice)
    assert timelapse["status"] == "complete"
    assert timelapse["processedVideoKey"] == f"timelapses/{tid}.mp4"
    assert timelapse["posterKey"] == f"posters/{tid}.jpg"
    assert timelapse["output"]["durationSeconds"] > 0
    assert delivery.headers["Lapse-Attempt"] == "1"
    # The record said complete before the webhook could say so
    assert alice.get(tid)["status"] == "complete"


def test_cancel_posts_cancelled(alice: Api, receivers: Any) -> None:
    receiver = receivers()
    tid = alice.create(1000, callbackUrl=receiver.url)["timelapse"]["id"]
    assert alice.request("POST", f"/timelapses/{tid}/cancel").status_code == 202
    [delivery] = receiver.wait_for(1, timeout=30)
    timelapse = _verified(delivery, "timelapse.cancelled", tid, alice)
    assert (timelapse["status"], timelapse["error"]["code"]) == ("cancelled", "cancelled")
    # Cancelling again is a no-op, and says nothing again
    assert alice.request("POST", f"/timelapses/{tid}/cancel").status_code == 202
    time.sleep(2)
    assert len(receiver.deliveries) == 1


def test_a_size_lie_posts_failed(alice: Api, clip_5s: Path, receivers: Any) -> None:
    receiver = receivers()
    data = clip_5s.read_bytes()
    created = alice.create(len(data) + 1, callbackUrl=receiver.url)
    tid = created["timelapse"]["id"]
    requests.put(created["upload"]["url"], data=data, headers=created["upload"]["headers"],
                 timeout=60)  # fmt: skip
    [delivery] = receiver.wait_for(1, timeout=60)
    timelapse = _verified(delivery, "timelapse.failed", tid, alice)
    assert (timelapse["status"], timelapse["error"]["code"]) == ("failed", "size_mismatch")


def test_failed_deliveries_are_retried_with_backoff(alice: Api, receivers: Any) -> None:
    receiver = receivers(500, 500)  # then 200
    tid = alice.create(1000, callbackUrl=receiver.url)["timelapse"]["id"]
    alice.request("POST", f"/timelapses/{tid}/cancel")
    deliveries = receiver.wait_for(3, timeout=60)
    for delivery in deliveries:
        _verified(delivery, "timelapse.cancelled", tid, alice)
    assert [d.headers["Lapse-Attempt"] for d in deliveries] == ["1", "2", "3"]
    assert len({d.body for d in deliveries}) == 1, "every attempt carries the same body"
    assert len({d.headers["Lapse-Delivery"] for d in deliveries}) == 1
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(deliveries)]
    assert gaps[0] >= 1.5
    assert gaps[1] >= 3.5
    assert gaps[1] > gaps[0]
    # The 200 ended it: no fourth attempt (it would have come 8 s later)
    time.sleep(3)
    assert len(receiver.deliveries) == 3


def test_deliveries_verify_with_the_old_and_new_secret_for_a_day_after_a_rotation(
    alice: Api, bob: Api, receivers: Any
) -> None:
    # Given a receiver that knows alice's secret
    receiver = receivers()
    old = _webhook_secret(alice)
    assert old.startswith("whsec_")
    assert _webhook_secret(alice) == old, "made once, then the same"
    # When alice rotates it and a timelapse of hers ends
    rotated = alice.request("POST", "/webhook-secret/rotate")
    assert rotated.status_code == 200, rotated.text
    assert rotated.headers["Cache-Control"] == "no-store"
    new = rotated.json()["secret"]
    assert new != old
    assert _webhook_secret(alice) == new
    tid = alice.create(1000, callbackUrl=receiver.url)["timelapse"]["id"]
    alice.request("POST", f"/timelapses/{tid}/cancel")
    [delivery] = receiver.wait_for(1, timeout=30)
    # Then the delivery verifies with either secret, and not with another user's
    for secret in (old, new):
        assert Webhook(secret).verify(delivery.body, delivery.headers)["timelapse"]["id"] == tid
    with pytest.raises(WebhookVerificationError):
        Webhook(_webhook_secret(bob)).verify(delivery.body, delivery.headers)
    # And the secret, stored in the timelapse table, is no timelapse to the API
    assert alice.request("GET", f"/timelapses/webhookSecret%23{alice.user}").status_code == 404


def test_redirects_are_not_followed(alice: Api, receivers: Any) -> None:
    elsewhere = receivers()
    receiver = receivers(302, location=elsewhere.url)  # then 200
    tid = alice.create(1000, callbackUrl=receiver.url)["timelapse"]["id"]
    alice.request("POST", f"/timelapses/{tid}/cancel")
    receiver.wait_for(2, timeout=30)
    assert elsewhere.deliveries == []


def test_a_dead_callback_does_not_change_the_outcome(alice: Api, clip_5s: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    created = alice.submit(clip_5s, callbackUrl=dead)
    done = alice.wait_for(created["timelapse"]["id"])
    assert done["status"] == "complete"
    assert done["error"] is None


def test_a_delivery_given_up_on_is_kept_on_its_record(
    alice: Api, receivers: Any, stack: RunningStack
) -> None:
    # Given a receiver that answers 500 to every attempt (5, 2+4+8+16 s apart)
    receiver = receivers(*[500] * 5)
    tid = alice.create(1000, callbackUrl=receiver.url)["timelapse"]["id"]
    # When its timelapse ends and every attempt fails
    alice.request("POST", f"/timelapses/{tid}/cancel")
    receiver.wait_for(5, timeout=90)

    # Then the webhook dead-letter queue's consumer keeps the failure on the record (stored;
    # the resource stays as API.md defines it)
    def kept() -> Any:
        item = stack.config.dynamodb().get_item(
            TableName=stack.config.table, Key={"id": {"S": tid}}
        )["Item"]
        return item.get("webhookDelivery", {}).get("M")

    deadline = time.monotonic() + 30
    while (delivery := kept()) is None:
        assert time.monotonic() < deadline, "the failed delivery was not kept on its record"
        time.sleep(0.5)
    assert delivery["status"] == {"S": "failed"}
    assert delivery["reason"] == {"S": "HTTP 500"}
    assert delivery["attempts"] == {"N": "5"}
    assert delivery["event"] == {"S": "timelapse.cancelled"}
    assert "webhookDelivery" not in alice.get(tid)


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "https://169.254.169.254/latest/meta-data/",
        "http://192.168.1.2:8080/",
        "https://[fe80::1]/",
        "https://user:pw@example.com/",
        "ftp://127.0.0.1/",
    ],
)
def test_create_refuses_callbacks_that_may_not_be_called(alice: Api, url: str) -> None:
    answer = alice.request(
        "POST",
        "/timelapses",
        json={
            "projectId": "p-e2e",
            "contentType": "video/mp4",
            "sizeBytes": 10,
            "callbackUrl": url,
        },
    )
    assert answer.status_code == 400, answer.text
    assert "callbackUrl" in answer.json()["error"]["message"]
