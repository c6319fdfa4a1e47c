"""Bearer tokens → the caller's user id. Every bad token is an UnauthorizedError (→ 401)."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest

from chalicelib.adapters.auth import HS256Verifier, make_local_token
from chalicelib.errors import UnauthorizedError

SECRET = "local-dev-secret"
verifier = HS256Verifier(SECRET)


def token(claims: dict[str, Any], secret: str = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm)


def bearer(value: str) -> str:
    return f"Bearer {value}"


def test_a_valid_token_gives_its_subject() -> None:
    now = int(time.time())
    assert verifier.user_id(bearer(token({"sub": "user-1", "exp": now + 60}))) == "user-1"


def test_a_token_without_expiry_is_accepted_locally() -> None:
    assert verifier.user_id(bearer(token({"sub": "user-2"}))) == "user-2"


def test_the_local_token_maker_round_trips() -> None:
    minted = make_local_token("user-3", SECRET, ttl_seconds=60)
    claims = jwt.decode(minted, SECRET, algorithms=["HS256"])
    assert claims["exp"] - claims["iat"] == 60
    assert verifier.user_id(bearer(minted)) == "user-3"


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "  Bearer"])
def test_the_scheme_is_case_insensitive(scheme: str) -> None:
    assert verifier.user_id(f"{scheme} {token({'sub': 'u'})}") == "u"


def test_an_expired_token_is_refused() -> None:
    expired = token({"sub": "user-1", "exp": int(time.time()) - 120})
    with pytest.raises(UnauthorizedError, match="expired"):
        verifier.user_id(bearer(expired))


def test_an_expired_local_token_is_refused() -> None:
    with pytest.raises(UnauthorizedError, match="expired"):
        verifier.user_id(bearer(make_local_token("user-1", SECRET, ttl_seconds=-60)))


def test_a_token_not_yet_valid_is_refused() -> None:
    future = token({"sub": "user-1", "nbf": int(time.time()) + 3600})
    with pytest.raises(UnauthorizedError):
        verifier.user_id(bearer(future))


def test_a_token_signed_with_another_secret_is_refused() -> None:
    forged = token({"sub": "user-1"}, secret="someone-elses-secret")
    with pytest.raises(UnauthorizedError, match="invalid token"):
        verifier.user_id(bearer(forged))


def test_an_unsigned_token_is_refused() -> None:
    unsigned = jwt.encode({"sub": "admin"}, None, algorithm="none")  # type: ignore[arg-type]
    with pytest.raises(UnauthorizedError):
        verifier.user_id(bearer(unsigned))


def test_a_token_of_another_algorithm_is_refused() -> None:
    hs512 = token({"sub": "user-1"}, algorithm="HS512")
    with pytest.raises(UnauthorizedError):
        verifier.user_id(bearer(hs512))


@pytest.mark.parametrize(
    "claims",
    [{}, {"sub": ""}, {"sub": 42}, {"sub": None}, {"name": "user-1"}],
    ids=["no sub", "empty sub", "numeric sub", "null sub", "name only"],
)
def test_a_token_without_a_usable_subject_is_refused(claims: dict[str, Any]) -> None:
    with pytest.raises(UnauthorizedError):
        verifier.user_id(bearer(token(claims)))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "Bearer",
        "Bearer ",
        "Bearer    ",
        "Basic dXNlcjpwYXNz",
        "Token abc",
        "abc.def.ghi",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer a.b",
    ],
)
def test_a_missing_or_malformed_header_is_refused(header: str | None) -> None:
    with pytest.raises(UnauthorizedError) as caught:
        verifier.user_id(header)
    assert caught.value.code == "unauthorized"


def test_a_missing_header_says_what_is_expected() -> None:
    with pytest.raises(UnauthorizedError, match="missing Authorization: Bearer"):
        verifier.user_id(None)
    with pytest.raises(UnauthorizedError, match="must be 'Bearer <token>'"):
        verifier.user_id("Basic dXNlcjpwYXNz")
