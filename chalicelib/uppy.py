"""Routes for Uppy's `@uppy/aws-s3` (API.md, "Uppy compatibility").

Uppy 6 signs through `POST /uploads/sign`; Uppy 4–5 and other Companion clients use the `/s3/…`
routes. Parse (inputs.py) → one use case (services/uppy.py) → JSON (wire.py), with api.py's error
mapping and auth.
"""

from __future__ import annotations

from typing import Any

from chalice.app import Blueprint

from chalicelib import inputs, wire, wiring
from chalicelib.api import _body, _caller, _required_body, endpoint
from chalicelib.domain.requests import CreateTimelapse
from chalicelib.services.uppy import S3Request, UppyService

uppy = Blueprint(__name__)


def _service() -> UppyService:
    return UppyService(wiring.timelapse_service())


def _create_command(fields: dict[str, Any]) -> CreateTimelapse:
    """A create through Uppy: `sizeBytes` may be left out (Uppy has none to pass)."""
    service = wiring.timelapse_service()
    return inputs.create_command(fields, service.limits, service.callbacks, size_required=False)


def _key() -> str:
    """The object key of a Companion route, from `?key=` (Uppy URL-encodes it)."""
    return inputs.parse(inputs.KeyQuery, dict(uppy.current_request.query_params or {})).key


# --- Uppy 6 -----------------------------------------------------------------------------------


# Uppy sends its bodies as JSON: Chalice's default body type.
@endpoint(uppy, "sign_upload_request", body_types=None)
def sign_upload_request() -> dict[str, Any]:
    owner = _caller()
    body = inputs.parse(inputs.UppySignRequest, _required_body())
    request = S3Request(body.method, body.key, body.upload_id, body.part_number, body.expires_in)
    if request.upload_id is not None:
        return wire.uppy_signed(_service().sign(owner, request), request.key)
    signed = _service().sign_new_upload(owner, request, _create_command(body.create_fields()))
    return wire.uppy_signed(signed, signed.timelapse.original_video_key)


# --- Uppy 4–5: Companion's S3 routes ----------------------------------------------------------


@endpoint(uppy, "companion_create_multipart", body_types=None)
def companion_create_multipart() -> dict[str, Any]:
    owner = _caller()
    command = _create_command(inputs.companion_create(_required_body()))
    return wire.companion_multipart(_service().create_multipart(owner, command))


@endpoint(uppy, "companion_sign_part")
def companion_sign_part(upload_id: str, part_number: str) -> dict[str, Any]:
    owner = _caller()
    service = _service()
    timelapse = service.uploading(owner, _key(), upload_id)
    url, seconds = service.sign_part(timelapse, upload_id, inputs.uppy_part_number(part_number))
    return wire.companion_signed_part(url, seconds)


@endpoint(uppy, "companion_list_parts")
def companion_list_parts(upload_id: str) -> list[dict[str, Any]]:
    owner = _caller()
    return wire.companion_parts(_service().list_parts(owner, upload_id, _key()))


@endpoint(uppy, "companion_complete", body_types=None)
def companion_complete(upload_id: str) -> dict[str, Any]:
    owner = _caller()
    key = _key()
    body = _body()
    service = _service()
    timelapse = service.uploading(owner, key, upload_id)
    parts = inputs.completed_parts(body, part_count=inputs.MAX_PART_NUMBER)
    return wire.companion_completed(service.complete(timelapse, upload_id, parts))


@endpoint(uppy, "companion_abort")
def companion_abort(upload_id: str) -> dict[str, Any]:
    owner = _caller()
    _service().abort(owner, upload_id, _key())
    return wire.empty()


@endpoint(uppy, "companion_upload_parameters")
def companion_upload_parameters() -> dict[str, Any]:
    owner = _caller()
    query = dict(uppy.current_request.query_params or {})
    command = _create_command(inputs.companion_query(query))
    return wire.companion_params(_service().upload_parameters(owner, command))
