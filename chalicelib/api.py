"""HTTP routes: parse → one use case → JSON. Domain errors map to HTTP here, and only here."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import unquote

from chalice.app import Blueprint, CORSConfig, Response

from chalicelib import errors, inputs, wire, wiring
from chalicelib.domain.idempotency import idempotency_key
from chalicelib.domain.requests import project_id as checked_project_id
from chalicelib.logs import logger
from chalicelib.openapi import openapi_document
from chalicelib.reference import reference_bundle, reference_page
from chalicelib.routes import BY_NAME

api = Blueprint(__name__)

CORS = CORSConfig(
    allow_origin="*",
    allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
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
    errors.IdempotencyKeyReused: 422,
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
    return _json(status, wire.error(exc.code, exc.message))


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
            return _json(500, wire.error("internal_error", "internal error"))

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
        response.body = json.dumps(wire.error(code, str(body["Message"])))
        response.headers = {**response.headers, "Content-Type": "application/json"}
    return response


def endpoint(
    blueprint: Blueprint, name: str, *, body_types: list[str] | None = BODY_TYPES
) -> Callable[[Callable[..., Any]], Handler]:
    """Registers `name`'s handler as routes.py declares it. The handler returns the answer's
    body (None for none) and the table's success status goes with it; a handler that answers
    something other than JSON returns its own Response. A POST accepts `body_types` (Chalice's
    default, JSON only, when None)."""
    route = BY_NAME[name]

    def register(func: Callable[..., Any]) -> Handler:
        @wraps(func)
        def answer(*args: Any, **kwargs: Any) -> Response:
            result = func(*args, **kwargs)
            return result if isinstance(result, Response) else _json(route.success, result)

        view = _handled(answer)
        view.route = route  # type: ignore[attr-defined]
        takes_body = route.method in {"POST", "PUT"} and body_types is not None
        blueprint.route(
            route.path,
            methods=[route.method],
            cors=CORS,
            name=route.name,
            **({"content_types": body_types} if takes_body else {}),
        )(view)
        return view

    return register


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


@endpoint(api, "health")
def health() -> dict[str, Any]:
    return wire.health()


@endpoint(api, "openapi")
def openapi() -> dict[str, Any]:
    return openapi_document()


@endpoint(api, "docs")
def docs() -> Response:
    return Response(
        body=reference_page(), status_code=200, headers={"Content-Type": "text/html; charset=utf-8"}
    )


@endpoint(api, "docs_bundle")
def docs_bundle() -> Response:
    return Response(
        body=reference_bundle(),
        status_code=200,
        headers={
            "Content-Type": "text/javascript; charset=utf-8",
            "Cache-Control": "max-age=86400",
        },
    )


@endpoint(api, "create_timelapse")
def create_timelapse() -> dict[str, Any]:
    owner = _caller()
    key = idempotency_key(api.current_request.headers.get("idempotency-key"))
    service = wiring.timelapse_service()
    command = inputs.create_command(_required_body(), service.limits, service.callbacks)
    return wire.created(service.create(owner, command, idempotency_key=key))


@endpoint(api, "get_timelapse")
def get_timelapse(timelapse_id: str) -> dict[str, Any]:
    return wire.with_urls(wiring.timelapse_service().get(_caller(), timelapse_id))


@endpoint(api, "delete_timelapse")
def delete_timelapse(timelapse_id: str) -> None:
    wiring.timelapse_service().delete(_caller(), timelapse_id)


@endpoint(api, "sign_upload_parts")
def sign_upload_parts(timelapse_id: str) -> dict[str, Any]:
    owner = _caller()
    body = _required_body()
    service = wiring.timelapse_service()
    # 404 / 409 before the body's faults: the part numbers are checked against this upload.
    timelapse = service.awaiting_multipart(owner, timelapse_id)
    numbers = inputs.part_numbers(body, part_count=timelapse.upload.part_count or 0)
    return wire.part_urls(service.sign_parts(timelapse, numbers))


@endpoint(api, "get_upload")
def get_upload(timelapse_id: str) -> dict[str, Any]:
    return wire.upload_state(wiring.timelapse_service().upload_status(_caller(), timelapse_id))


@endpoint(api, "complete_upload")
def complete_upload(timelapse_id: str) -> dict[str, Any]:
    owner = _caller()
    body = _body()
    service = wiring.timelapse_service()
    timelapse = service.awaiting_multipart(owner, timelapse_id)
    parts = inputs.completed_parts(body, part_count=timelapse.upload.part_count or 0)
    return wire.envelope(service.complete_upload(timelapse, parts))


@endpoint(api, "cancel_timelapse")
def cancel_timelapse(timelapse_id: str) -> dict[str, Any]:
    cancelled = wiring.timelapse_service().cancel(_caller(), timelapse_id)
    return wire.envelope(cancelled)


@endpoint(api, "process_timelapse")
def process_timelapse(timelapse_id: str) -> dict[str, Any]:
    queued = wiring.timelapse_service().process(_caller(), timelapse_id)
    return wire.envelope(queued)


def _secret(value: str) -> Response:
    """A signing secret: no cache on the way may keep it."""
    return Response(
        body=json.dumps(wire.webhook_secret(value)),
        status_code=200,
        headers={"Content-Type": "application/json", "Cache-Control": "no-store"},
    )


@endpoint(api, "get_webhook_secret")
def get_webhook_secret() -> Response:
    return _secret(wiring.webhook_secret_service().current(_caller()))


@endpoint(api, "rotate_webhook_secret")
def rotate_webhook_secret() -> Response:
    return _secret(wiring.webhook_secret_service().rotate(_caller()))


@endpoint(api, "list_project_timelapses")
def list_project_timelapses(project_id: str) -> dict[str, Any]:
    owner = _caller()
    project = checked_project_id(project_id)
    query = inputs.list_query(dict(api.current_request.query_params or {}))
    found = wiring.timelapse_service().list_project(
        owner, project, limit=query.limit, cursor=query.cursor, status=query.status
    )
    return wire.page(found)
