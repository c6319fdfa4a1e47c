"""OIDC (deployed) tokens: RS256 from the configured issuer; audience from `aud` or Cognito's
`client_id`; HS256 dev tokens refused. The issuer's key set is replaced by a local key pair."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.adapters.auth import OIDCVerifier
from chalicelib.errors import UnauthorizedError

ISSUER = "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_example"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _verifier(audience: str | None, monkeypatch: pytest.MonkeyPatch) -> OIDCVerifier:
    verifier = OIDCVerifier(ISSUER, audience)
    signing_key = SimpleNamespace(key=KEY.public_key())
    monkeypatch.setattr(verifier._keys, "get_signing_key_from_jwt", lambda token: signing_key)
    return verifier


def _token(**claims: Any) -> str:
    body = {"sub": "user-1", "iss": ISSUER, "exp": int(time.time()) + 300, **claims}
    return "Bearer " + jwt.encode(body, KEY, "RS256")


def test_id_token_with_matching_audience(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _verifier("app-client", monkeypatch).user_id(_token(aud="app-client")) == "user-1"


def test_cognito_access_token_names_the_client_instead(monkeypatch: pytest.MonkeyPatch) -> None:
    token = _token(client_id="app-client", token_use="access")
    assert _verifier("app-client", monkeypatch).user_id(token) == "user-1"


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "another-app"},
        {"client_id": "another-app"},
        {},
        {"iss": "https://evil.example.com"},
        {"exp": int(time.time()) - 10},
    ],
    ids=["other-aud", "other-client", "no-audience", "other-issuer", "expired"],
)
def test_refused_tokens(monkeypatch: pytest.MonkeyPatch, claims: dict[str, Any]) -> None:
    with pytest.raises(UnauthorizedError):
        _verifier("app-client", monkeypatch).user_id(_token(**claims))


def test_hs256_dev_tokens_are_refused_when_deployed(monkeypatch: pytest.MonkeyPatch) -> None:
    dev = "Bearer " + jwt.encode({"sub": "user-1", "iss": ISSUER}, "local-dev-secret", "HS256")
    with pytest.raises(UnauthorizedError):
        _verifier(None, monkeypatch).user_id(dev)
