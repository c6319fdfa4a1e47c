"""HTTP routes: parse → one use case → JSON. Domain errors map to HTTP here, and only here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import unquote

from chalice.app import Blueprint, CORSConfig, Response

from chalicelib import errors, wiring
from chalicelib.logs import logger
from chalicelib.openapi import openapi_document
from chalicelib.reference import BUNDLE, reference_bundle, reference_page

api = Blueprint(__name__)

CORS = CORSConfig(
    allow_origin="*",
    allow_headers=["Authorization", "Content-Type"],
    max_age=600,
)

# Bodies are JSON whatever the request says: `curl -d` sends form-urlencoded and `fetch` with a
# plain string sends text/plain (which also spares browsers a preflight). Chalice would answer 415.
BODY_TYPES = ["application/json", "text/plain", "application/x-www-form-urlencoded"]

HTTP_STATUS: dict[type[errors.LapseError], int] = {
    errors.ValidationError: 400,
    errors.UnauthorizedError: 401,
    errors.NotFoundError: 404,
    errors.ConflictError: 409,
    errors.TooLargeError: 413,
    errors.UnsupportedMediaError: 415,
}

Handler = Callable[..., Response]


def _json(status: int, body: Any = None) -> Response:
    if body is None:
        return Response(body="", status_code=status, headers={})
    return Response(
        body=json.dumps(body), status_code=status, headers={"Content-Type": "application/json"}
    )


def error_response(exc: errors.LapseError) -> Response:
    status = next((code for kind, code in HTTP_STATUS.items() if isinstance(exc, kind)), 500)
    return _json(status, {"error": {"code": exc.code, "message": exc.message}})


def _handled(func: Handler) -> Handler:
    """Maps domain errors to their HTTP answers; anything else is a logged 500.

    Path parameters arrive percent-encoded (API Gateway REST and the local server alike): they are
    decoded here, once, so `/projects/my%20project/timelapses` lists project "my project"."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        context = api.current_request.context or {}
        logger.thread_safe_append_keys(request_id=context.get("requestId") or str(uuid.uuid4()))
        try:
            return func(*args, **{name: unquote(value) for name, value in kwargs.items()})
        except errors.LapseError as exc:
            return error_response(exc)
        except Exception:
            logger.exception("unhandled error")
            return _json(500, {"error": {"code": "internal_error", "message": "internal error"}})

    return wrapper


# Chalice's own refusals (before or around a view: a content type not listed, a method the route
# lacks, a binary answer nobody accepts) in lapse's error shape instead of {"Code", "Message"}.
CHALICE_CODES = {
    "UnsupportedMediaType": "unsupported_media_type",
    "MethodNotAllowedError": "method_not_allowed",
    "BadRequest": "invalid_request",
    "BadRequestError": "invalid_request",
    "InternalServerError": "internal_error",
}


@api.middleware("http")
def lapse_error_shape(event: Any, get_response: Callable[[Any], Response]) -> Response:
    response = get_response(event)
    body = response.body
    if response.status_code >= 400 and isinstance(body, dict) and {"Code", "Message"} <= set(body):
        code = CHALICE_CODES.get(str(body["Code"]), "invalid_request")
        response.body = json.dumps({"error": {"code": code, "message": str(body["Message"])}})
        response.headers = {**response.headers, "Content-Type": "application/json"}
    return response


def _caller() -> str:
    headers = api.current_request.headers
    return wiring.token_verifier().user_id(headers.get("authorization"))


def _body() -> Any:
    raw = api.current_request.raw_body
    if not raw or not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.ValidationError("the body is not valid JSON") from exc
    except RecursionError as exc:
        raise errors.ValidationError("the body is nested too deeply") from exc


def _required_body() -> Any:
    body = _body()
    if body is None:
        raise errors.ValidationError("a JSON body is required")
    return body


@api.route("/health", methods=["GET"], cors=CORS)
@_handled
def health() -> Response:
    return _json(200, {"status": "ok"})


@api.route("/openapi.json", methods=["GET"], cors=CORS)
@_handled
def openapi() -> Response:
    return _json(200, openapi_document())


@api.route("/docs", methods=["GET"], cors=CORS)
@_handled
def docs() -> Response:
    return Response(
        body=reference_page(), status_code=200, headers={"Content-Type": "text/html; charset=utf-8"}
    )


@api.route(f"/docs/{BUNDLE}", methods=["GET"], cors=CORS)
@_handled
def docs_bundle() -> Response:
    return Response(
        body=reference_bundle(),
        status_code=200,
        headers={
            "Content-Type": "text/javascript; charset=utf-8",
            "Cache-Control": "max-age=86400",
        },
    )


@api.route("/timelapses", methods=["POST"], cors=CORS, content_types=BODY_TYPES)
@_handled
def create_timelapse() -> Response:
    owner = _caller()
    return _json(201, wiring.timelapse_service().create(owner, _required_body()))


@api.route("/timelapses/{timelapse_id}", methods=["GET"], cors=CORS)
@_handled
def get_timelapse(timelapse_id: str) -> Response:
    return _json(200, wiring.timelapse_service().get(_caller(), timelapse_id))


@api.route("/timelapses/{timelapse_id}", methods=["DELETE"], cors=CORS)
@_handled
def delete_timelapse(timelapse_id: str) -> Response:
    wiring.timelapse_service().delete(_caller(), timelapse_id)
    return _json(204)


@api.route(
    "/timelapses/{timelapse_id}/upload/parts", methods=["POST"], cors=CORS, content_types=BODY_TYPES
)
@_handled
def sign_upload_parts(timelapse_id: str) -> Response:
    owner = _caller()
    return _json(200, wiring.timelapse_service().sign_parts(owner, timelapse_id, _required_body()))


@api.route("/timelapses/{timelapse_id}/upload", methods=["GET"], cors=CORS)
@_handled
def get_upload(timelapse_id: str) -> Response:
    return _json(200, wiring.timelapse_service().upload_status(_caller(), timelapse_id))


@api.route(
    "/timelapses/{timelapse_id}/upload/complete",
    methods=["POST"],
    cors=CORS,
    content_types=BODY_TYPES,
)
@_handled
def complete_upload(timelapse_id: str) -> Response:
    owner = _caller()
    return _json(202, wiring.timelapse_service().complete_upload(owner, timelapse_id, _body()))


@api.route(
    "/timelapses/{timelapse_id}/cancel", methods=["POST"], cors=CORS, content_types=BODY_TYPES
)
@_handled
def cancel_timelapse(timelapse_id: str) -> Response:
    cancelled = wiring.timelapse_service().cancel(_caller(), timelapse_id)
    return _json(202, {"timelapse": cancelled.as_api()})


@api.route(
    "/timelapses/{timelapse_id}/process", methods=["POST"], cors=CORS, content_types=BODY_TYPES
)
@_handled
def process_timelapse(timelapse_id: str) -> Response:
    queued = wiring.timelapse_service().process(_caller(), timelapse_id)
    return _json(202, {"timelapse": queued.as_api()})


@api.route("/webhook-secret", methods=["GET"], cors=CORS)
@_handled
def get_webhook_secret() -> Response:
    return _json(200, {"secret": wiring.webhook_secret_service().current(_caller())})


@api.route("/webhook-secret/rotate", methods=["POST"], cors=CORS, content_types=BODY_TYPES)
@_handled
def rotate_webhook_secret() -> Response:
    return _json(200, {"secret": wiring.webhook_secret_service().rotate(_caller())})


@api.route("/projects/{project_id}/timelapses", methods=["GET"], cors=CORS)
@_handled
def list_project_timelapses(project_id: str) -> Response:
    owner = _caller()
    query = dict(api.current_request.query_params or {})
    return _json(200, wiring.timelapse_service().list_project(owner, project_id, query))
