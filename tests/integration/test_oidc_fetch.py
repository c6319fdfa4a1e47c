"""The OIDC issuer over real HTTP on loopback: discovery and keys fetched with a short timeout, so
an issuer that hangs costs a request seconds, not the API's whole Lambda timeout."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from chalicelib.adapters.auth import FETCH_TIMEOUT_SECONDS, OIDCVerifier
from chalicelib.errors import UnauthorizedError

pytestmark = [pytest.mark.integration]

KEY = ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def issuer() -> Iterator[str]:
    """An OIDC provider on loopback that signs with ES256."""
    documents: dict[str, Any] = {}

    class Provider(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps(documents[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    public = json.loads(jwt.get_algorithm_by_name("ES256").to_jwk(KEY.public_key()))
    documents["/.well-known/openid-configuration"] = {
        "issuer": base,
        "jwks_uri": f"{base}/jwks",
        "id_token_signing_alg_values_supported": ["ES256"],
    }
    documents["/jwks"] = {"keys": [{**public, "kid": "k1", "use": "sig"}]}
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield base
    server.shutdown()
    server.server_close()


def _token(issuer: str) -> str:
    claims = {"sub": "user-1", "iss": issuer, "aud": "app", "exp": int(time.time()) + 60}
    return "Bearer " + jwt.encode(claims, KEY, "ES256", headers={"kid": "k1"})


def test_discovery_and_keys_over_http(issuer: str) -> None:
    assert OIDCVerifier(issuer, "app").user_id(_token(issuer)) == "user-1"


def test_an_issuer_that_never_answers_costs_the_timeout_and_a_401() -> None:
    # Given an issuer that accepts connections and never answers
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        issuer = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(UnauthorizedError, match="did not answer"):
            OIDCVerifier(issuer, "app").user_id(_token(issuer))
        waited = time.monotonic() - started
    assert FETCH_TIMEOUT_SECONDS <= 5
    assert waited < FETCH_TIMEOUT_SECONDS + 1.5
