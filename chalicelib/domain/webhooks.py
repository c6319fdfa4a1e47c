"""Webhooks, the pure part: event names, the retry schedule, Standard Webhooks signatures with
per-user secrets (and the older `Lapse-Signature`), and which callback URLs and addresses may be
called.

No sockets here: resolving a host name is the adapter's job; the rules for what a resolved
address may be live here so that create-time and delivery-time checks agree.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import SplitResult, urlsplit

from chalicelib.domain.timelapse import Status
from chalicelib.errors import ValidationError

WEBHOOK_MESSAGE = "lapse.webhook"
SIGNATURE_HEADER = "Lapse-Signature"
EVENTS: dict[Status, str] = {
    Status.COMPLETE: "timelapse.complete",
    Status.FAILED: "timelapse.failed",
    Status.CANCELLED: "timelapse.cancelled",
}
# SQS refuses DelaySeconds above 900.
MAX_DELAY_SECONDS = 900

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


def event_for(status: Status) -> str | None:
    """The webhook event of a terminal status; None for any other status."""
    return EVENTS.get(status)


def retry_delay(attempt: int, *, base_seconds: int = 2) -> int:
    """Seconds to wait after failed delivery number `attempt` (1-based): 2, 4, 8, … ≤ 900."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    return int(min(MAX_DELAY_SECONDS, base_seconds * 2 ** min(attempt - 1, 20)))


# --- Standard Webhooks: per-user secrets, webhook-id / webhook-timestamp / webhook-signature ------

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
# After a rotation, deliveries carry signatures by the new and the previous secret this long.
ROTATION_OVERLAP = timedelta(hours=24)


def new_signing_secret() -> str:
    """A fresh `whsec_<base64>` secret, the form the standardwebhooks libraries take."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _secret_key(secret: str) -> bytes:
    try:
        return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("a signing secret is whsec_ followed by base64") from exc


def standard_signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, keyed by the secret's bytes."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def standard_headers(
    signing_secrets: Sequence[str], message_id: str, body: bytes, timestamp: int
) -> dict[str, str]:
    """The three Standard Webhooks headers; one signature per secret, space-separated (any of
    them verifies, so a receiver holding either secret accepts during a rotation)."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(
            standard_signature(secret, message_id, timestamp, body) for secret in signing_secrets
        ),
    }


@dataclass(frozen=True)
class SigningSecrets:
    """A user's webhook secret, and the one it replaced while that still signs too."""

    current: str
    previous: str | None = None
    previous_until: datetime | None = None

    def active(self, now: datetime) -> list[str]:
        if self.previous and self.previous_until and now < self.previous_until:
            return [self.current, self.previous]
        return [self.current]

    def rotated(self, new: str, now: datetime) -> SigningSecrets:
        return SigningSecrets(new, self.current, now + ROTATION_OVERLAP)


# --- Lapse-Signature (kept for receivers written before Standard Webhooks) ----------------------


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the secret."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The `Lapse-Signature` value for a body sent now (or at `timestamp`)."""
    t = int(time.time()) if timestamp is None else timestamp
    return f"t={t},v1={signature(secret, t, body)}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    tolerance_seconds: int = 300,
    *,
    now: float | None = None,
) -> bool:
    """True when `header` (the `Lapse-Signature` value) signs this exact raw `body` with `secret`
    and its timestamp is within `tolerance_seconds` of now (replay protection).

    Receivers may copy this function: it needs only hashlib, hmac and time. Pass the body's raw
    bytes as received, before any JSON parsing. Several `v1=` entries are accepted (any may match).
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1" and value:
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance_seconds:
        return False
    expected = signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


# --- which URLs and addresses may be called ------------------------------------------------------


@dataclass(frozen=True)
class CallbackPolicy:
    """What callback URLs are accepted. Deployed: https to public addresses only. Locally, the
    loopback interface is allowed too, over http or https. `resolve` (host, port) → addresses,
    when given, lets the create-time check see what a host name points at."""

    allow_loopback: bool = False
    resolve: Resolver | None = None


def _unwrap(ip: Address) -> Address:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), else itself. Teredo stays as
    it is: it reaches a tunnel relay, not the address it embeds, and is refused as a whole."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in ipaddress.IPv6Network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


# Special-purpose blocks (the IANA registries) that are not reachable on the public internet,
# listed here rather than left to `ipaddress.is_global`, whose answer changed between Python
# releases (3.11, where this is tested, and 3.12, where Lambda runs it).
_NOT_ROUTED_V4 = tuple(
    ipaddress.IPv4Network(block)
    for block in (
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
        "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
        "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    )
)  # fmt: skip
# IPv6 unicast on the internet lies in 2000::/3; inside it these are documentation, tunnels'
# and protocols' blocks (Teredo, ORCHID, benchmarking, 6to4 and NAT64 are unwrapped first).
_GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
_NOT_ROUTED_V6 = tuple(
    ipaddress.IPv6Network(block)
    for block in ("2001::/23", "2001:db8::/32", "2002::/16", "3fff::/20")
)


def _globally_routable(ip: Address) -> bool:
    if isinstance(ip, ipaddress.IPv4Address):
        return ip.is_global and not any(ip in block for block in _NOT_ROUTED_V4)
    return (
        ip in _GLOBAL_UNICAST_V6
        and ip.is_global
        and not any(ip in block for block in _NOT_ROUTED_V6)
    )


# What makes an address unfit for a callback, checked in this order.
_REFUSALS: tuple[tuple[str, Callable[[Address], bool]], ...] = (
    ("multicast", lambda ip: ip.is_multicast),
    ("link-local", lambda ip: ip.is_link_local),
    ("reserved", lambda ip: ip.is_unspecified or ip.is_reserved),
    ("site-local", lambda ip: isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
    ("private", lambda ip: ip.is_private),
    ("private (not globally routable)", lambda ip: not _globally_routable(ip)),
)


def address_refusal(address: str, *, allow_loopback: bool) -> str | None:
    """Why a callback may not go to this IP address, or None when it may."""
    try:
        ip = _unwrap(ipaddress.ip_address(address.split("%", 1)[0]))
    except ValueError:
        return f"{address!r} is not an IP address"
    if ip.is_loopback:
        return None if allow_loopback else "loopback addresses are not allowed"
    for kind, applies in _REFUSALS:
        if applies(ip):
            return f"{kind} addresses are not allowed"
    return None


@dataclass(frozen=True)
class CallbackTarget:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line


def parse_callback_url(url: str, *, allow_loopback: bool) -> CallbackTarget:
    """The parts of an acceptable callback URL; ValidationError says why one is not.
    Checks what the URL itself shows; `check_addresses` checks what its host resolves to."""
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValidationError(f"callbackUrl is not a valid URL: {exc}") from exc
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".").lower()
    if scheme not in {"http", "https"} or not host:
        raise ValidationError("callbackUrl must be an absolute http(s) URL (https when deployed)")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("callbackUrl must not carry credentials")
    if any(ch in url for ch in " \r\n\t"):
        raise ValidationError("callbackUrl must not contain whitespace")
    if host == "localhost" or host.endswith(".localhost"):
        host = "localhost"
    literal = _literal_address(host)
    if literal is not None:
        reason = address_refusal(literal, allow_loopback=allow_loopback)
        if reason:
            raise ValidationError(f"callbackUrl points at a non-public address: {reason}")
    elif host == "localhost" and not allow_loopback:
        raise ValidationError("callbackUrl points at a non-public address: localhost")
    if scheme == "http" and not (allow_loopback and _is_loopback_name(host)):
        raise ValidationError("callbackUrl must use https://")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return CallbackTarget(scheme, host, port or (443 if scheme == "https" else 80), path)


def check_addresses(
    target: CallbackTarget, addresses: Iterable[str], *, allow_loopback: bool
) -> None:
    """Every address the host resolves to must be allowed (one private answer is enough to refuse:
    the connection could go to any of them). Plain http must stay on loopback."""
    found = list(addresses)
    if not found:
        raise ValidationError(f"callbackUrl host {target.host!r} has no address")
    for address in found:
        reason = address_refusal(address, allow_loopback=allow_loopback)
        if reason:
            raise ValidationError(
                f"callbackUrl host {target.host!r} resolves to {address}: {reason}"
            )
        if target.scheme == "http" and not _unwrap(ipaddress.ip_address(address)).is_loopback:
            raise ValidationError("callbackUrl must use https://")


def validate_callback_url(url: str, policy: CallbackPolicy) -> str:
    """The create-time check: the URL's form, and its addresses when the policy can resolve."""
    target = parse_callback_url(url, allow_loopback=policy.allow_loopback)
    if policy.resolve is not None and _literal_address(target.host) is None:
        try:
            addresses = policy.resolve(target.host, target.port)
        except OSError as exc:
            raise ValidationError(f"callbackUrl host {target.host!r} does not resolve") from exc
        check_addresses(target, addresses, allow_loopback=policy.allow_loopback)
    return url


def _literal_address(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def _is_loopback_name(host: str) -> bool:
    if host == "localhost":
        return True
    literal = _literal_address(host)
    return literal is not None and _unwrap(ipaddress.ip_address(literal)).is_loopback
