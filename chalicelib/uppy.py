"""Routes for Uppy's `@uppy/aws-s3` (API.md, "Uppy compatibility").

Uppy 6 signs through `POST /uploads/sign`; Uppy 4–5 and other Companion clients use the `/s3/…`
routes. Parse → one use case (services/uppy.py) → JSON, with api.py's error mapping and auth.
"""

from __future__ import annotations

from chalice.app import Blueprint, Response

from chalicelib import errors, wiring
from chalicelib.api import CORS, _body, _caller, _handled, _json, _required_body
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


@uppy.route("/uploads/sign", methods=["POST"], cors=CORS)
@_handled
def sign_upload_request() -> Response:
    owner = _caller()
    return _json(200, _service().sign(owner, _required_body()))


# --- Uppy 4–5: Companion's S3 routes ----------------------------------------------------------


@uppy.route("/s3/multipart", methods=["POST"], cors=CORS)
@_handled
def companion_create_multipart() -> Response:
    owner = _caller()
    return _json(200, _service().create_multipart(owner, _required_body()))


@uppy.route("/s3/multipart/{upload_id}/{part_number}", methods=["GET"], cors=CORS)
@_handled
def companion_sign_part(upload_id: str, part_number: str) -> Response:
    owner = _caller()
    return _json(200, _service().sign_part(owner, upload_id, part_number, _key()))


@uppy.route("/s3/multipart/{upload_id}", methods=["GET"], cors=CORS)
@_handled
def companion_list_parts(upload_id: str) -> Response:
    owner = _caller()
    return _json(200, _service().list_parts(owner, upload_id, _key()))


@uppy.route("/s3/multipart/{upload_id}/complete", methods=["POST"], cors=CORS)
@_handled
def companion_complete(upload_id: str) -> Response:
    owner = _caller()
    return _json(200, _service().complete(owner, upload_id, _key(), _body()))


@uppy.route("/s3/multipart/{upload_id}", methods=["DELETE"], cors=CORS)
@_handled
def companion_abort(upload_id: str) -> Response:
    owner = _caller()
    return _json(200, _service().abort(owner, upload_id, _key()))


@uppy.route("/s3/params", methods=["GET"], cors=CORS)
@_handled
def companion_upload_parameters() -> Response:
    owner = _caller()
    query = dict(uppy.current_request.query_params or {})
    return _json(200, _service().upload_parameters(owner, query))
