"""Webhook side effects: resolving a callback host, POSTing a signed body to it, and queueing
a delivery (with a delay) on the processing queue.

The POST connects to the very address that was checked (no second DNS lookup a rebinding answer
could change) and never follows redirects (a 3xx could point anywhere): both would let a callback
reach a private address after it passed the check. TLS is still verified against the host name.
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chalicelib.domain.webhooks import CallbackTarget, check_addresses, parse_callback_url
from chalicelib.errors import ValidationError
from chalicelib.services.ports import DeliveryAnswer, DeliveryError, RefusedTarget

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

USER_AGENT = "lapse-webhooks/1"
# Enough of an answer to log; receivers are told to answer quickly and briefly.
MAX_ANSWER_BYTES = 4096


def resolve(host: str, port: int) -> list[str]:
    """Every address `host` resolves to (TCP), in the resolver's order, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, address: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(
        self, host: str, address: str, port: int, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


class HttpWebhookSender:
    """POSTs one body to one callback URL, checking where it goes first."""

    def __init__(self, *, timeout_seconds: float, allow_loopback: bool) -> None:
        self.timeout_seconds = timeout_seconds
        self.allow_loopback = allow_loopback
        self._tls = ssl.create_default_context()

    def target(self, url: str) -> tuple[CallbackTarget, str]:
        """The parsed URL and the one checked address to connect to; RefusedTarget when none."""
        try:
            target = parse_callback_url(url, allow_loopback=self.allow_loopback)
        except ValidationError as exc:
            raise RefusedTarget(exc.message) from exc
        try:
            addresses = resolve(target.host, target.port)
        except OSError as exc:
            raise DeliveryError(f"cannot resolve {target.host!r}: {exc}") from exc
        try:
            check_addresses(target, addresses, allow_loopback=self.allow_loopback)
        except ValidationError as exc:
            raise RefusedTarget(exc.message) from exc
        return target, addresses[0]

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> DeliveryAnswer:
        target, address = self.target(url)
        connection: http.client.HTTPConnection
        if target.scheme == "https":
            connection = _PinnedHTTPSConnection(
                target.host, address, target.port, self.timeout_seconds, self._tls
            )
        else:
            connection = _PinnedHTTPConnection(
                target.host, address, target.port, self.timeout_seconds
            )
        request_headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **headers,
        }
        try:
            connection.request("POST", target.path, body=body, headers=request_headers)
            response = connection.getresponse()
            answer = response.read(MAX_ANSWER_BYTES).decode("utf-8", "replace")
            return DeliveryAnswer(response.status, answer)
        except (OSError, http.client.HTTPException) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        finally:
            connection.close()


class SQSWebhookQueue:
    """Webhook deliveries go on their own queue, with SQS's DelaySeconds as the backoff. The
    client is made on first use: most API calls never end a timelapse."""

    def __init__(self, make_client: Callable[[], SQSClient], queue_url: str | None) -> None:
        self._make_client = make_client
        self._client: SQSClient | None = None
        self.queue_url = queue_url

    def send(self, message: dict[str, Any], *, delay_seconds: int = 0) -> None:
        if not self.queue_url:
            raise RuntimeError("LAPSE_WEBHOOK_QUEUE_URL is not set")
        if self._client is None:
            self._client = self._make_client()
        self._client.send_message(
            QueueUrl=self.queue_url,
            MessageBody=json.dumps(message, separators=(",", ":")),
            DelaySeconds=delay_seconds,
        )
