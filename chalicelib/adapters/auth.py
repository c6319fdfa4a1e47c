"""Bearer tokens → the caller's user id (`sub`).

Locally: HS256 tokens signed with LAPSE_JWT_SECRET. Deployed: tokens from the configured OIDC
issuer (Cognito by default), found as providers publish them: the issuer's discovery document
(`/.well-known/openid-configuration`) names its key set (`jwks_uri`) and the algorithms it signs
with; only asymmetric ones are accepted (RS256, ES256, …), so HS256 dev tokens are refused there.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import warnings
from collections.abc import Callable
from typing import Any, Protocol

import jwt
from jwt.warnings import InsecureKeyLengthWarning

from chalicelib.errors import UnauthorizedError

# The contract fixes the local default secret ("local-dev-secret", 16 bytes); deployed stacks use
# OIDC, so the short-key warning would only be noise on every local request.
warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)


class TokenVerifier(Protocol):
    def user_id(self, authorization: str | None) -> str: ...


def _bearer(authorization: str | None) -> str:
    if not authorization:
        raise UnauthorizedError("missing Authorization: Bearer <token> header")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("Authorization header must be 'Bearer <token>'")
    return token.strip()


def _subject(claims: dict[str, object]) -> str:
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise UnauthorizedError("token has no subject (sub)")
    return sub


class HS256Verifier:
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def user_id(self, authorization: str | None) -> str:
        token = _bearer(authorization)
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"require": ["sub"]}
            )
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"invalid token: {exc}") from exc
        return _subject(claims)


JsonFetcher = Callable[[str], Any]
# Signing algorithms an issuer may use; symmetric ones (HS*) and "none" are never accepted.
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
FETCH_TIMEOUT_SECONDS = 3.0
# An unknown key id makes the key set be fetched again (a rotation), at most this often.
REFETCH_SECONDS = 60.0
# Cognito's two kinds of token; anything else (a refresh token's claims, say) is refused.
COGNITO_TOKEN_USES = {"id", "access"}


def fetch_json(url: str, timeout: float = FETCH_TIMEOUT_SECONDS) -> Any:
    """GET `url` as JSON, giving up after `timeout` seconds (the API waits on this)."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
        return json.loads(answer.read())


class OIDCVerifier:
    def __init__(
        self, issuer: str, audience: str | None, *, fetch: JsonFetcher = fetch_json
    ) -> None:
        self._issuer = issuer.rstrip("/")
        self._audience = audience
        self._fetch = fetch
        self._cognito = "cognito-idp." in self._issuer
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._algorithms: list[str] = []
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = float("-inf")

    def user_id(self, authorization: str | None) -> str:
        token = _bearer(authorization)
        try:
            key, algorithm = self._key_for(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                issuer=self._issuer,
                options={"require": ["sub", "exp"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"invalid token: {exc}") from exc
        if self._audience is not None and self._audience not in _audiences(claims):
            raise UnauthorizedError("invalid token: not issued for this API (audience)")
        if self._cognito and claims.get("token_use") not in COGNITO_TOKEN_USES:
            raise UnauthorizedError("invalid token: token_use must be id or access")
        return _subject(claims)

    def _key_for(self, token: str) -> tuple[jwt.PyJWK, str]:
        header = jwt.get_unverified_header(token)
        algorithm, kid = header.get("alg"), header.get("kid")
        self._discover()
        if algorithm not in self._algorithms:
            raise UnauthorizedError(
                f"invalid token: signed with {algorithm!r}; the issuer signs with "
                f"{', '.join(self._algorithms)}"
            )
        key = self._key(kid)
        if key is None:
            self._load_keys()
            key = self._key(kid)
        if key is None:
            raise UnauthorizedError("invalid token: signed by a key the issuer does not publish")
        return key, str(algorithm)

    def _key(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:  # a provider with one key may name none
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _discover(self) -> None:
        """The issuer's discovery document, once: where its keys are, which algorithms it uses."""
        if self._jwks_uri is not None:
            return
        url = f"{self._issuer}/.well-known/openid-configuration"
        document = self._get(url)
        if not isinstance(document, dict) or not isinstance(document.get("jwks_uri"), str):
            raise UnauthorizedError(f"cannot check the token: {url} names no jwks_uri")
        if str(document.get("issuer", "")).rstrip("/") != self._issuer:
            raise UnauthorizedError(f"the discovery document at {url} names another issuer")
        advertised = document.get("id_token_signing_alg_values_supported") or ["RS256"]
        self._algorithms = [alg for alg in ASYMMETRIC if alg in advertised]
        self._jwks_uri = str(document["jwks_uri"])
        self._load_keys()

    def _load_keys(self) -> None:
        """The issuer's key set, fetched again for an unknown key id at most once a minute."""
        with self._lock:
            if self._jwks_uri is None or time.monotonic() - self._fetched_at < REFETCH_SECONDS:
                return
            found = self._get(self._jwks_uri)
            self._fetched_at = time.monotonic()
            keys = {}
            for raw in found.get("keys", []) if isinstance(found, dict) else []:
                try:
                    keys[raw.get("kid")] = jwt.PyJWK.from_dict(raw)
                except jwt.PyJWTError:
                    continue  # a key of a kind this API cannot use (an encryption key, say)
            self._keys = keys

    def _get(self, url: str) -> Any:
        try:
            return self._fetch(url)
        except (OSError, ValueError) as exc:
            raise UnauthorizedError(
                f"cannot check the token: {url} did not answer ({exc})"
            ) from exc


def _audiences(claims: dict[str, object]) -> set[str]:
    """Who a token is for: `aud` (ID tokens, most OIDC providers) or, for Cognito access tokens,
    which carry no `aud`, the app client in `client_id`."""
    found: set[str] = set()
    for claim in ("aud", "client_id"):
        value = claims.get(claim)
        if isinstance(value, str):
            found.add(value)
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
    return found


def make_local_token(user_id: str, secret: str, *, ttl_seconds: int = 24 * 3600) -> str:
    """An HS256 token for the local stack, tests and the CLI."""
    import time  # noqa: PLC0415 - only the local tooling needs it

    now = int(time.time())
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + ttl_seconds}, secret, "HS256")
