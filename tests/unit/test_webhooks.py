"""Webhooks without a network: signing and verifying, which callback URLs and addresses are allowed,
the retry schedule, and the use case with a fake queue and a fake HTTP sender."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from chalicelib import events, wiring
from chalicelib.adapters import webhooks as adapter
from chalicelib.domain import requests
from chalicelib.domain import webhooks as domain
from chalicelib.domain.timelapse import (
    ErrorInfo,
    Stage,
    Status,
    Timelapse,
)
from chalicelib.domain.webhooks import (
    CallbackPolicy,
    address_refusal,
    retry_delay,
    signature_header,
    validate_callback_url,
    verify_signature,
)
from chalicelib.errors import ValidationError
from chalicelib.services.ports import (
    DeliveryAnswer,
    DeliveryError,
    RefusedTarget,
    WebhookFailure,
)
from chalicelib.services.webhooks import Outcome, WebhookService, delivery_message, request_body
from chalicelib.settings import Settings, SettingsError
from tests.factories import a_timelapse

SECRET = "local-webhook-secret"
ID = "0193f0c2-0000-4000-8000-000000000001"
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
DEPLOYED = CallbackPolicy(allow_loopback=False)
LOCAL = CallbackPolicy(allow_loopback=True)


def timelapse(
    status: Status = Status.COMPLETE, callback: str | None = "https://example.com/h"
) -> Timelapse:
    return a_timelapse(
        owner_id="alice",
        status=status,
        stage=None,
        created_at=NOW,
        updated_at=NOW,
        callback_url=callback,
        error=ErrorInfo("cancelled", "Cancelled by its owner.")
        if status is Status.CANCELLED
        else None,
    )


# --- signing and verifying ----------------------------------------------------------------------


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"type":"timelapse.complete"}'
    header = signature_header(SECRET, body, timestamp=1714564800)
    expected = hmac.new(SECRET.encode(), b"1714564800." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1714564800,v1={expected}"


def test_a_fresh_signature_verifies() -> None:
    body = b'{"a":1}'
    assert verify_signature(SECRET, signature_header(SECRET, body), body)


@pytest.mark.parametrize(
    ("secret", "body", "age"),
    [
        ("another-secret", b'{"a":1}', 0),  # wrong key
        (SECRET, b'{"a":2}', 0),  # body changed after signing
        (SECRET, b'{"a":1} ', 0),  # even by one byte
        (SECRET, b'{"a":1}', 301),  # too old: a replay
        (SECRET, b'{"a":1}', -301),  # too far in the future
    ],
)
def test_what_does_not_verify(secret: str, body: bytes, age: int) -> None:
    header = signature_header(SECRET, b'{"a":1}', timestamp=1_000_000)
    assert not verify_signature(secret, header, body, now=1_000_000 + age)


def test_the_tolerance_is_the_receivers_choice() -> None:
    header = signature_header(SECRET, b"x", timestamp=1_000_000)
    assert verify_signature(SECRET, header, b"x", now=1_000_300)
    assert not verify_signature(SECRET, header, b"x", tolerance_seconds=60, now=1_000_300)


@pytest.mark.parametrize(
    "header", ["", "t=,v1=", "v1=abc", "t=123", "t=abc,v1=00", "garbage", "t=-5,v1=00"]
)
def test_malformed_headers_do_not_verify(header: str) -> None:
    assert not verify_signature(SECRET, header, b"x", now=123)


def test_any_of_several_v1_signatures_may_match() -> None:
    good = signature_header(SECRET, b"x", timestamp=1000).split("v1=")[1]
    assert verify_signature(SECRET, f"t=1000,v1=deadbeef,v1={good}", b"x", now=1000)


# --- the retry schedule -------------------------------------------------------------------------


def test_backoff_doubles_from_two_seconds_and_stops_at_sqs_maximum() -> None:
    assert [retry_delay(n) for n in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 512, 900]
    assert retry_delay(1000) == 900
    assert [retry_delay(n, base_seconds=5) for n in (1, 2, 3)] == [5, 10, 20]
    with pytest.raises(ValueError, match="start at 1"):
        retry_delay(0)


# --- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("100.64.0.1", "private"),  # carrier-grade NAT: not private, not global either
        ("169.254.169.254", "link-local"),  # the instance metadata service
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "reserved"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("::", "reserved"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fd00::1", "private"),
        ("ff02::1", "multicast"),
        ("::ffff:10.0.0.1", "private"),  # IPv4-mapped
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local"),
        ("2002:a9fe:a9fe::", "link-local"),  # 6to4 around 169.254.169.254
        ("64:ff9b::a00:1", "private"),  # NAT64 around 10.0.0.1
        ("2001:db8::1", "private"),  # documentation range
        ("fec0::1", "site-local"),  # deprecated site-local, still routed inside some networks
        ("fec0:1:2:3::42", "site-local"),
        ("feff::1", "site-local"),  # the top of fec0::/10
        ("fe00::1", "reserved"),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "private"),  # Teredo: a tunnel relay
        ("2001:10::1", "private"),  # ORCHID
        ("2001:2::1", "private"),  # benchmarking
        ("3fff::1", "private"),  # documentation (2024)
        ("4000::1", "reserved"),  # outside global unicast 2000::/3
        ("64:ff9b:1::a00:1", "reserved"),  # local-use NAT64
        ("::10.0.0.1", "reserved"),  # IPv4-compatible (deprecated)
        ("::ffff:100.64.0.1", "private"),  # mapped carrier-grade NAT
        ("192.0.0.8", "private"),  # IETF protocol assignments
        ("192.0.2.1", "private"),  # TEST-NET-1
        ("198.18.0.1", "private"),  # benchmarking
        ("198.51.100.7", "private"),  # TEST-NET-2
        ("203.0.113.9", "private"),  # TEST-NET-3
        ("192.88.99.1", "private"),  # 6to4 relay anycast (deprecated)
        ("not-an-ip", "not an IP"),
    ],
)
def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    reason = address_refusal(address, allow_loopback=False)
    assert reason is not None
    assert kind in reason


@pytest.mark.parametrize(
    "address",
    [
        "93.184.215.14",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "2002:808:808::1",  # 6to4 around 8.8.8.8
    ],
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert address_refusal(address, allow_loopback=False) is None


def test_loopback_only_where_allowed() -> None:
    assert address_refusal("127.0.0.1", allow_loopback=True) is None
    assert address_refusal("::1", allow_loopback=True) is None
    # allowing loopback does not open the private ranges
    assert address_refusal("10.0.0.1", allow_loopback=True) is not None
    assert address_refusal("169.254.169.254", allow_loopback=True) is not None


# --- URLs ---------------------------------------------------------------------------------------


def resolving(*addresses: str) -> CallbackPolicy:
    return CallbackPolicy(allow_loopback=False, resolve=lambda host, port: list(addresses))


@pytest.mark.parametrize(
    "url",
    ["https://example.com/hook", "https://example.com:8443/a/b?c=d", "https://93.184.215.14/h"],
)
def test_deployed_accepts_https_to_public_hosts(url: str) -> None:
    assert validate_callback_url(url, DEPLOYED) == url
    assert validate_callback_url(url, resolving("93.184.215.14")) == url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/hook", "https://"),
        ("ftp://example.com/hook", "http(s) URL"),
        ("/relative", "http(s) URL"),
        ("https:///nohost", "http(s) URL"),
        ("https://user:pw@example.com/", "credentials"),
        ("https://example.com:99999/", "not a valid URL"),
        ("https://127.0.0.1/", "loopback"),
        ("https://localhost:8000/", "localhost"),
        ("https://api.localhost/", "localhost"),
        ("https://[::1]/", "loopback"),
        ("https://10.0.0.1/", "private"),
        ("https://169.254.169.254/latest/meta-data/", "link-local"),
        ("https://[fe80::1]/", "link-local"),
        ("https://[::ffff:192.168.0.1]/", "private"),
        ("https://[fd12:3456::1]/", "private"),
        ("https://0.0.0.0/", "reserved"),
        ("https://exa mple.com/", "whitespace"),
    ],
)
def test_deployed_refuses(url: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words.replace("(", r"\(").replace(")", r"\)")):
        validate_callback_url(url, DEPLOYED)


@pytest.mark.parametrize(
    ("addresses", "words"),
    [
        (["10.0.0.7"], "resolves to 10.0.0.7: private"),
        (["93.184.215.14", "127.0.0.1"], "loopback"),  # one bad answer is enough
        (["fd00::5"], "private"),
        ([], "has no address"),
    ],
)
def test_deployed_resolves_names_and_refuses_private_answers(
    addresses: list[str], words: str
) -> None:
    with pytest.raises(ValidationError, match=words):
        validate_callback_url("https://hooks.example.com/x", resolving(*addresses))


def test_a_name_that_does_not_resolve_is_refused() -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    policy = CallbackPolicy(allow_loopback=False, resolve=fail)
    with pytest.raises(ValidationError, match="does not resolve"):
        validate_callback_url("https://nowhere.invalid/", policy)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://localhost:9000/hook",
        "http://[::1]:9000/hook",
        "https://127.0.0.1/hook",
        "https://example.com/hook",
    ],
)
def test_locally_loopback_is_allowed_over_http(url: str) -> None:
    assert validate_callback_url(url, LOCAL) == url


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://example.com/", "https://"),
        ("http://10.0.0.1/", "private"),
        ("https://192.168.1.10/", "private"),
        ("https://169.254.169.254/", "link-local"),
    ],
)
def test_locally_other_rules_still_hold(url: str, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        validate_callback_url(url, LOCAL)


def test_plain_http_to_a_name_must_resolve_to_loopback() -> None:
    policy = CallbackPolicy(allow_loopback=True, resolve=lambda host, port: ["127.0.0.1"])
    target = domain.parse_callback_url("http://localhost:9/x", allow_loopback=True)
    domain.check_addresses(target, ["127.0.0.1", "::1"], allow_loopback=True)
    assert validate_callback_url("http://localhost:9/x", policy)
    with pytest.raises(ValidationError, match="private"):
        domain.check_addresses(target, ["10.0.0.1"], allow_loopback=True)


def test_request_parsing_follows_the_policy_it_is_given() -> None:
    with pytest.raises(ValidationError, match="loopback"):
        requests.callback_url("http://127.0.0.1:9/h", DEPLOYED)
    assert requests.callback_url("http://127.0.0.1:9/h", LOCAL) == "http://127.0.0.1:9/h"
    assert requests.callback_url(None, DEPLOYED) is None


def test_the_wired_policy_follows_the_settings() -> None:
    local = wiring.callback_policy(Settings.from_env({}))
    assert local.allow_loopback is True
    assert local.resolve is None  # locally, delivery checks addresses; unit tests touch no DNS


def test_settings_allow_loopback_only_locally() -> None:
    assert Settings.from_env({}).webhook_allow_loopback is True
    deployed = {
        "LAPSE_STAGE": "prod",
        "LAPSE_OIDC_ISSUER": "https://issuer.example.com",
        "LAPSE_WEBHOOK_SECRET": "from-secrets-manager",
    }
    assert Settings.from_env(deployed).webhook_allow_loopback is False
    with pytest.raises(SettingsError, match="LAPSE_WEBHOOK_ALLOW_LOOPBACK"):
        Settings.from_env({**deployed, "LAPSE_WEBHOOK_ALLOW_LOOPBACK": "true"})
    tuned = Settings.from_env(
        {"LAPSE_WEBHOOK_MAX_ATTEMPTS": "8", "LAPSE_WEBHOOK_TIMEOUT_SECONDS": "2.5"}
    )
    assert (tuned.webhook_max_attempts, tuned.webhook_timeout_seconds) == (8, 2.5)


# --- the sender's checks before it connects ----------------------------------------------------


def test_the_sender_refuses_a_name_that_resolves_to_a_private_address(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(adapter, "resolve", lambda host, port: ["169.254.169.254"])
    sender = adapter.HttpWebhookSender(timeout_seconds=5, allow_loopback=False)
    with pytest.raises(RefusedTarget, match="link-local"):
        sender.post("https://rebind.example.com/", b"{}", {})


def test_the_sender_connects_to_the_address_it_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(adapter, "resolve", lambda host, port: ["93.184.215.14", "8.8.8.8"])
    sender = adapter.HttpWebhookSender(timeout_seconds=5, allow_loopback=False)
    target, address = sender.target("https://hooks.example.com:8443/in?x=1")
    assert (target.host, target.port, target.path, address) == (
        "hooks.example.com",
        8443,
        "/in?x=1",
        "93.184.215.14",
    )


def test_the_sender_reports_an_unresolvable_host_as_worth_retrying(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(host: str, port: int) -> list[str]:
        raise OSError("temporary failure in name resolution")

    monkeypatch.setattr(adapter, "resolve", fail)
    sender = adapter.HttpWebhookSender(timeout_seconds=5, allow_loopback=False)
    with pytest.raises(DeliveryError, match="cannot resolve"):
        sender.post("https://hooks.example.com/", b"{}", {})


# --- the use case -------------------------------------------------------------------------------


@dataclass
class FakeQueue:
    sent: list[tuple[dict[str, Any], int]] = field(default_factory=list)
    broken: bool = False

    def send(self, message: dict[str, Any], *, delay_seconds: int = 0) -> None:
        if self.broken:
            raise RuntimeError("SQS is down")
        self.sent.append((json.loads(json.dumps(message)), delay_seconds))


@dataclass
class FakeSender:
    answers: list[int | Exception]
    calls: list[tuple[str, bytes, dict[str, str]]] = field(default_factory=list)

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> DeliveryAnswer:
        self.calls.append((url, body, headers))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return DeliveryAnswer(answer, "")


def service(*answers: int | Exception, queue: FakeQueue | None = None) -> WebhookService:
    return WebhookService(
        queue=queue or FakeQueue(), sender=FakeSender(list(answers)), secret=SECRET
    )


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (Status.COMPLETE, "timelapse.complete"),
        (Status.FAILED, "timelapse.failed"),
        (Status.CANCELLED, "timelapse.cancelled"),
    ],
)
def test_a_terminal_state_queues_one_delivery(status: Status, event: str) -> None:
    queue = FakeQueue()
    service(queue=queue).timelapse_ended(timelapse(status))
    [(message, delay)] = queue.sent
    assert delay == 0
    assert message["type"] == "lapse.webhook"
    assert (message["timelapseId"], message["event"], message["attempt"]) == (ID, event, 1)
    assert message["timelapse"]["status"] == status.value
    assert message["callbackUrl"] == "https://example.com/h"
    # and the queue handler knows it
    [work] = events.work_in_message(json.dumps(message))
    assert (work.kind, work.timelapse_id, work.message) == ("webhook", ID, message)


def test_nothing_is_queued_without_a_callback_or_before_the_end() -> None:
    queue = FakeQueue()
    hooks = service(queue=queue)
    hooks.timelapse_ended(timelapse(callback=None))
    hooks.timelapse_ended(timelapse(Status.PROCESSING))
    assert queue.sent == []


def test_a_broken_queue_never_reaches_the_caller() -> None:
    service(queue=FakeQueue(broken=True)).timelapse_ended(timelapse())


def first_message(status: Status = Status.COMPLETE) -> dict[str, Any]:
    return delivery_message(timelapse(status), domain.EVENTS[status])


def test_a_2xx_answer_delivers_a_signed_body() -> None:
    hooks = service(204)
    message = first_message()
    assert hooks.deliver(message) is Outcome.DELIVERED
    [(url, body, headers)] = hooks.sender.calls  # type: ignore[attr-defined]
    assert url == "https://example.com/h"
    assert json.loads(body) == {"type": "timelapse.complete", "timelapse": message["timelapse"]}
    assert verify_signature(SECRET, headers["Lapse-Signature"], body)
    assert headers["Lapse-Event"] == "timelapse.complete"
    assert headers["Lapse-Delivery"] == message["deliveryId"]
    assert hooks.queue.sent == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "failure", [500, 404, 302, DeliveryError("timed out"), RuntimeError("surprise")]
)
def test_a_failed_attempt_is_queued_again_with_a_delay(failure: int | Exception) -> None:
    queue = FakeQueue()
    hooks = service(failure, queue=queue)
    assert hooks.deliver(first_message()) is Outcome.RETRYING
    [(again, delay)] = queue.sent
    assert (again["attempt"], delay) == (2, 2)
    assert request_body(again) == request_body(first_message() | {"attempt": 2})


def test_retries_follow_the_schedule_and_give_up_after_max_attempts() -> None:
    queue = FakeQueue()
    hooks = service(500, 500, 500, 500, 500, 500, queue=queue)
    message = first_message()
    outcomes = []
    for _ in range(5):
        outcomes.append(hooks.deliver(message))
        if queue.sent:
            message = queue.sent[-1][0]
    assert outcomes == [Outcome.RETRYING] * 4 + [Outcome.GAVE_UP]
    assert [delay for _, delay in queue.sent] == [2, 4, 8, 16]
    assert [m["attempt"] for m, _ in queue.sent] == [2, 3, 4, 5]
    bodies = {body for _, body, _ in hooks.sender.calls}  # type: ignore[attr-defined]
    assert len(bodies) == 1  # every attempt sends the same bytes


def test_a_refused_url_is_not_retried() -> None:
    queue = FakeQueue()
    hooks = service(RefusedTarget("private"), queue=queue)
    assert hooks.deliver(first_message()) is Outcome.REFUSED
    assert queue.sent == []


def test_a_retry_that_cannot_be_queued_is_given_up_quietly() -> None:
    hooks = service(500, queue=FakeQueue(broken=True))
    assert hooks.deliver(first_message()) is Outcome.GAVE_UP


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"type": "lapse.webhook", "timelapseId": ID},
        first_message() | {"event": "timelapse.exploded"},
        first_message() | {"attempt": 0},
        first_message() | {"callbackUrl": None},
    ],
)
def test_malformed_messages_are_dropped(message: dict[str, Any]) -> None:
    hooks = service()
    assert hooks.deliver(message) is Outcome.DROPPED


def test_webhooks_are_delivered_by_their_own_handler_never_by_processing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hooks = service(200)
    monkeypatch.setattr(wiring, "webhook_service", lambda: hooks)

    def no_processing() -> None:
        raise AssertionError("a webhook message must not reach processing")

    monkeypatch.setattr(wiring, "processing_service", no_processing)
    message = json.dumps(first_message(Status.CANCELLED))
    # The webhook queue's handler delivers it
    events.deliver_webhooks(sqs_event(message), None)
    assert len(hooks.sender.calls) == 1  # type: ignore[attr-defined]
    # One that reached the processing queue (queued there before webhooks had their own) is
    # moved to the webhook queue, not delivered on the render path
    events.process_uploads(sqs_event(message), None)
    assert len(hooks.sender.calls) == 1  # type: ignore[attr-defined]
    [(moved, delay)] = hooks.queue.sent  # type: ignore[attr-defined]
    assert moved == json.loads(message)
    assert delay == 0


def sqs_event(body: str) -> dict[str, Any]:
    record = {
        "messageId": "m-1",
        "receiptHandle": "r-1",
        "body": body,
        "attributes": {},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:lapse-webhooks",
        "awsRegion": "us-east-1",
    }
    return {"Records": [record]}


def test_stage_is_not_part_of_the_event_name() -> None:
    # Only terminal statuses have events; stages never do.
    assert domain.event_for(Status.PENDING) is None
    assert all(domain.event_for(s) for s in (Status.COMPLETE, Status.FAILED, Status.CANCELLED))
    assert Stage.QUEUED.value not in domain.EVENTS.values()


# --- deliveries given up on: the webhook dead-letter queue and its consumer ---------------------


@dataclass
class KeptFailures:
    """WebhookFailures: the records still there, and what was kept on each."""

    existing: set[str] = field(default_factory=lambda: {ID})
    kept: dict[str, WebhookFailure] = field(default_factory=dict)

    def record_webhook_failure(self, timelapse_id: str, failure: WebhookFailure) -> bool:
        if timelapse_id not in self.existing:
            return False
        self.kept[timelapse_id] = failure
        return True


def test_a_delivery_given_up_on_goes_to_the_dead_letter_queue_with_its_reason() -> None:
    dead_letters = FakeQueue()
    hooks = service(500, queue=FakeQueue())
    hooks.dead_letters = dead_letters
    last = first_message() | {"attempt": hooks.max_attempts}
    assert hooks.deliver(last) is Outcome.GAVE_UP
    [(forwarded, delay)] = dead_letters.sent
    assert forwarded == last | {"failure": "HTTP 500"}
    assert delay == 0


def test_a_refused_url_goes_to_the_dead_letter_queue_and_a_retry_does_not() -> None:
    dead_letters = FakeQueue()
    hooks = service(RefusedTarget("a private address"), 500)
    hooks.dead_letters = dead_letters
    assert hooks.deliver(first_message()) is Outcome.REFUSED
    assert hooks.deliver(first_message()) is Outcome.RETRYING
    [(forwarded, _)] = dead_letters.sent
    assert forwarded["failure"] == "refused: a private address"


def test_a_dead_letter_queue_that_is_down_does_not_reach_the_caller() -> None:
    hooks = service(500)
    hooks.dead_letters = FakeQueue(broken=True)
    assert hooks.deliver(first_message() | {"attempt": 5}) is Outcome.GAVE_UP


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"failure": "HTTP 503"}, "HTTP 503"),  # given up by deliver
        ({}, "the delivery handler failed repeatedly"),  # moved there by SQS
    ],
)
def test_a_dead_lettered_delivery_is_kept_on_its_record(extra: dict[str, Any], reason: str) -> None:
    failures = KeptFailures()
    hooks = service()
    hooks.failures = failures
    message = first_message(Status.FAILED) | {"attempt": 3} | extra
    assert hooks.dead_lettered(message, NOW) is Outcome.RECORDED
    assert failures.kept[ID] == WebhookFailure(
        delivery_id=message["deliveryId"],
        event="timelapse.failed",
        attempts=3,
        reason=reason,
        failed_at=NOW,
    )


def test_a_dead_letter_of_a_deleted_timelapse_or_of_no_delivery_is_dropped() -> None:
    failures = KeptFailures(existing=set())
    hooks = service()
    hooks.failures = failures
    assert hooks.dead_lettered(first_message(), NOW) is Outcome.DROPPED
    assert hooks.dead_lettered({"type": "lapse.webhook", "timelapseId": ID}, NOW) is (
        Outcome.DROPPED
    )
    assert failures.kept == {}


def test_the_webhook_dead_letter_handler_keeps_each_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failures = KeptFailures()
    hooks = service()
    hooks.failures = failures
    monkeypatch.setattr(wiring, "webhook_service", lambda: hooks)
    message = first_message() | {"failure": "timed out"}
    events.webhook_dead_letters(sqs_event(json.dumps(message)), None)
    assert failures.kept[ID].reason == "timed out"
    assert hooks.sender.calls == []  # type: ignore[attr-defined]  # not delivered again
