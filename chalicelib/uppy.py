"""Routes for Uppy's `@uppy/aws-s3` (API.md, "Uppy compatibility").

Uppy 6 signs through `POST /uploads/sign`; Uppy 4–5 and other Companion clients use the `/s3/…`
routes. Parse → one use case (services/uppy.py) → JSON, with api.py's error mapping and auth.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from chalicelib import errors, wiring
from chalicelib.api import _body, _caller, _required_body, endpoint
from chalicelib.services.uppy import UppyService

uppy = Blueprint(__name__)


def _service() -> UppyService:
    return UppyService(wiring.timelapse_service())


def _key() -> str:
    """The object key of a Companion route, from `?key=` (Uppy URL-encodes it)."""
    query: dict[str, str] = dict(uppy.current_request.query_params or {})
    key = query.get("key")
    if not key:
        raise errors.ValidationError("the key query parameter is required")
    return key


# --- Uppy 6 -----------------------------------------------------------------------------------


# Uppy sends its bodies as JSON: Chalice's default body type.
@endpoint(uppy, "sign_upload_request", body_types=None)
def sign_upload_request() -> dict[str, Any]:
    owner = _caller()
    return _service().sign(owner, _required_body())


# --- Uppy 4–5: Companion's S3 routes ----------------------------------------------------------


@endpoint(uppy, "companion_create_multipart", body_types=None)
def companion_create_multipart() -> dict[str, Any]:
    owner = _caller()
    return _service().create_multipart(owner, _required_body())


@endpoint(uppy, "companion_sign_part")
def companion_sign_part(upload_id: str, part_number: str) -> dict[str, Any]:
    owner = _caller()
    return _service().sign_part(owner, upload_id, part_number, _key())


@endpoint(uppy, "companion_list_parts")
def companion_list_parts(upload_id: str) -> list[dict[str, Any]]:
    owner = _caller()
    return _service().list_parts(owner, upload_id, _key())


@endpoint(uppy, "companion_complete", body_types=None)
def companion_complete(upload_id: str) -> dict[str, Any]:
    owner = _caller()
    return _service().complete(owner, upload_id, _key(), _body())


@endpoint(uppy, "companion_abort")
def companion_abort(upload_id: str) -> dict[str, Any]:
    owner = _caller()
    return _service().abort(owner, upload_id, _key())


@endpoint(uppy, "companion_upload_parameters")
def companion_upload_parameters() -> dict[str, Any]:
    owner = _caller()
    query = dict(uppy.current_request.query_params or {})
    return _service().upload_parameters(owner, query)
