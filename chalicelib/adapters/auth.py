"""Bearer tokens → the caller's user id (`sub`).

Locally: HS256 tokens signed with LAPSE_JWT_SECRET. Deployed: RS256 tokens from the configured OIDC
issuer (Cognito by default), checked against its published keys; HS256 tokens are refused there.
"""

from __future__ import annotations

import warnings
from typing import Protocol

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


class OIDCVerifier:
    def __init__(self, issuer: str, audience: str | None) -> None:
        self._issuer = issuer.rstrip("/")
        self._audience = audience
        self._keys = jwt.PyJWKClient(f"{self._issuer}/.well-known/jwks.json", cache_keys=True)

    def user_id(self, authorization: str | None) -> str:
        token = _bearer(authorization)
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=self._issuer,
                options={"require": ["sub", "exp"], "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise UnauthorizedError(f"invalid token: {exc}") from exc
        if self._audience is not None and self._audience not in _audiences(claims):
            raise UnauthorizedError("invalid token: not issued for this API (audience)")
        return _subject(claims)


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
