"""`POST /dev/token`: an HS256 token for `{"user": ...}`, for the local upload page and the CLI's
tests. Registered by the local stack only (local/api.py), so no deployed function has it."""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib import errors
from chalicelib.adapters.auth import make_local_token
from chalicelib.api import CORS, _handled, _json, _required_body
from chalicelib.settings import get_settings

dev = Blueprint(__name__)

MAX_USER_ID = 128


@dev.route("/dev/token", methods=["POST"], cors=CORS)
@_handled
def dev_token() -> Response:
    settings = get_settings()
    if not settings.is_local or settings.auth_mode != "hs256":
        raise errors.NotFoundError("no such route")
    body = _required_body()
    user = body.get("user") if isinstance(body, dict) else None
    if not isinstance(user, str) or not user.strip() or len(user) > MAX_USER_ID:
        raise errors.ValidationError(f"user must be a non-empty string of at most {MAX_USER_ID}")
    token = make_local_token(user, settings.jwt_secret)
    return _json(200, {"token": token, "userId": user})
