"""OIDC (deployed) tokens, found as providers publish them: the issuer's discovery document names
its key set and algorithms (RS256 and ES256 here); audience from `aud` or Cognito's `client_id`;
Cognito's `token_use` checked; HS256 dev tokens refused. The issuer is a dict of documents served
by a stand-in for the HTTP fetch (unit tests have no sockets)."""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chalicelib.adapters.auth import OIDCVerifier
from chalicelib.errors import UnauthorizedError

ISSUER = "https://cognito-idp.eu-central-1.amazonaws.com/eu-central-1_example"
OTHER_ISSUER = "https://login.example.com/tenant"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwk(private: Any, kid: str, alg: str) -> dict[str, Any]:
    algorithm = jwt.get_algorithm_by_name(alg)
    public = json.loads(algorithm.to_jwk(private.public_key()))
    return {**public, "kid": kid, "alg": alg, "use": "sig"}


class Issuer:
    """What an OIDC provider publishes, and how often it was asked."""

    def __init__(self, issuer: str = ISSUER, algs: list[str] | None = None) -> None:
        self.issuer = issuer
        self.documents: dict[str, Any] = {
            f"{issuer}/.well-known/openid-configuration": {
                "issuer": issuer,
                "jwks_uri": f"{issuer}/keys",
                "id_token_signing_alg_values_supported": algs or ["RS256", "ES256"],
            },
            f"{issuer}/keys": {
                "keys": [_jwk(RSA_KEY, "rsa-1", "RS256"), _jwk(EC_KEY, "ec-1", "ES256")]
            },
        }
        self.asked: list[str] = []

    def fetch(self, url: str) -> Any:
        self.asked.append(url)
        if url not in self.documents:
            raise OSError(f"404 {url}")
        return self.documents[url]


def _token(
    issuer: str = ISSUER,
    *,
    key: Any = RSA_KEY,
    alg: str = "RS256",
    kid: str = "rsa-1",
    **claims: Any,
) -> str:
    body = {"sub": "user-1", "iss": issuer, "exp": int(time.time()) + 300, "token_use": "id"}
    return "Bearer " + jwt.encode({**body, **claims}, key, alg, headers={"kid": kid})


def _verifier(audience: str | None = "app-client", issuer: Issuer | None = None) -> OIDCVerifier:
    source = issuer or Issuer()
    return OIDCVerifier(source.issuer, audience, fetch=source.fetch)


def test_id_token_with_matching_audience() -> None:
    assert _verifier().user_id(_token(aud="app-client")) == "user-1"


def test_es256_tokens_of_an_issuer_that_advertises_es256() -> None:
    token = _token(key=EC_KEY, alg="ES256", kid="ec-1", aud="app-client")
    assert _verifier().user_id(token) == "user-1"


def test_an_algorithm_the_issuer_does_not_advertise_is_refused() -> None:
    only_rsa = Issuer(algs=["RS256"])
    token = _token(key=EC_KEY, alg="ES256", kid="ec-1", aud="app-client")
    with pytest.raises(UnauthorizedError, match="signed with 'ES256'"):
        _verifier(issuer=only_rsa).user_id(token)


def test_cognito_access_token_names_the_client_instead() -> None:
    token = _token(client_id="app-client", token_use="access")
    assert _verifier().user_id(token) == "user-1"


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "another-app"},
        {"client_id": "another-app", "token_use": "access"},
        {},
        {"aud": "app-client", "iss": "https://evil.example.com"},
        {"aud": "app-client", "exp": int(time.time()) - 10},
        {"aud": "app-client", "token_use": "refresh"},
        {"aud": "app-client", "token_use": None},
    ],
    ids=[
        "other-aud",
        "other-client",
        "no-audience",
        "other-issuer",
        "expired",
        "refresh",
        "no-use",
    ],
)
def test_refused_tokens(claims: dict[str, Any]) -> None:
    with pytest.raises(UnauthorizedError):
        _verifier().user_id(_token(**claims))


def test_token_use_is_cognitos_claim_only() -> None:
    other = Issuer(OTHER_ISSUER)
    token = _token(OTHER_ISSUER, aud="app-client", token_use=None)
    assert _verifier(issuer=other).user_id(token) == "user-1"


def test_hs256_dev_tokens_are_refused_when_deployed() -> None:
    dev = jwt.encode({"sub": "user-1", "iss": ISSUER}, "local-dev-secret", "HS256")
    with pytest.raises(UnauthorizedError, match="HS256"):
        _verifier(None).user_id("Bearer " + dev)


def test_discovery_once_and_keys_again_only_for_an_unknown_key() -> None:
    issuer = Issuer()
    verifier = _verifier(issuer=issuer)
    for _ in range(3):
        verifier.user_id(_token(aud="app-client"))
    assert issuer.asked == [f"{ISSUER}/.well-known/openid-configuration", f"{ISSUER}/keys"]
    # A key the set does not hold, a minute later: the set is fetched again (a rotation) ...
    verifier._fetched_at -= 61
    issuer.documents[f"{ISSUER}/keys"]["keys"].append(_jwk(RSA_KEY, "rotated", "RS256"))
    assert verifier.user_id(_token(aud="app-client", kid="rotated")) == "user-1"
    assert issuer.asked.count(f"{ISSUER}/keys") == 2
    # ... but not again within the minute, whatever key ids tokens name
    for _ in range(2):
        with pytest.raises(UnauthorizedError, match="does not publish"):
            verifier.user_id(_token(aud="app-client", kid="made-up"))
    assert issuer.asked.count(f"{ISSUER}/keys") == 2


def test_an_unreachable_issuer_is_a_401_with_a_reason() -> None:
    silent = Issuer()
    silent.documents.clear()
    with pytest.raises(UnauthorizedError, match="did not answer"):
        _verifier(issuer=silent).user_id(_token(aud="app-client"))


def test_a_discovery_document_of_another_issuer_is_refused() -> None:
    lying = Issuer()
    lying.documents[f"{ISSUER}/.well-known/openid-configuration"]["issuer"] = OTHER_ISSUER
    with pytest.raises(UnauthorizedError, match="another issuer"):
        _verifier(issuer=lying).user_id(_token(aud="app-client"))
