"""The OpenAPI 3.1 document served at GET /openapi.json (kept in agreement with ../shared/API.md).

Its paths come from the route table (routes.py), which also registers the handlers; its schemas
come from the models that parse the requests (inputs.py) and build the answers (wire.py), so the
document cannot drift from what the handlers accept and answer. Written here: the operations'
prose, the parameters of paths and headers, the error responses and the webhooks' headers.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from chalicelib import errors, inputs, wire
from chalicelib.routes import ROUTES, Route

Schema = dict[str, Any]

SECURITY_SCHEME = "bearerAuth"
REF = "#/components/schemas/{model}"

# Every refusal a route can answer: status → (error class whose `code` the body carries, meaning).
# api.HTTP_STATUS maps the same classes to the same statuses (checked by the unit test).
ERROR_RESPONSES: dict[int, tuple[type[errors.LapseError], str]] = {
    400: (errors.ValidationError, "Malformed or invalid request (the message says which field)."),
    401: (errors.UnauthorizedError, "No bearer token, or the token is invalid or expired."),
    404: (errors.NotFoundError, "No such timelapse for this caller (another user's is unknown)."),
    409: (errors.ConflictError, "The timelapse is not in a state that allows this."),
    413: (errors.TooLargeError, "sizeBytes is over the configured maximum upload size."),
    415: (errors.UnsupportedMediaError, "contentType is clearly not a video."),
    422: (
        errors.IdempotencyKeyReused,
        "This Idempotency-Key was used (by this user, within 24 hours) for another body.",
    ),
}
INTERNAL_ERROR_CODE = "internal_error"

# --- schema helpers -------------------------------------------------------------------------


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _string(description: str = "", **keywords: Any) -> Schema:
    return _described({"type": "string", **keywords}, description)


def _integer(description: str = "", **keywords: Any) -> Schema:
    return _described({"type": "integer", **keywords}, description)


def _described(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description} if description else schema


# --- component schemas ----------------------------------------------------------------------


def _component_schemas() -> dict[str, Schema]:
    schemas = {
        # Every answer lapse builds, refusals and webhooks included: from its model (wire.py).
        **wire.json_schemas(),
        # Every body it takes: from the model that parses it (inputs.py).
        **_request_schemas(),
    }
    codes = ", ".join(
        f"`{kind.code}` ({status})" for status, (kind, _) in sorted(ERROR_RESPONSES.items())
    )
    code = schemas["ErrorDetail"]["properties"]["code"]
    code["description"] = f"Stable, machine-readable: {codes}, `{INTERNAL_ERROR_CODE}` (500)."
    return schemas


def _request_schemas() -> dict[str, Schema]:
    _, schemas = models_json_schema(
        [(model, "validation") for model in inputs.MODELS], ref_template=REF
    )
    defs: dict[str, Schema] = schemas["$defs"]
    return defs


# --- webhooks ---------------------------------------------------------------------------------

WEBHOOK_EVENTS = {
    "timelapse.complete": "The timelapse and its poster are stored.",
    "timelapse.failed": "Processing gave up; `timelapse.error` says why.",
    "timelapse.cancelled": "The owner cancelled it.",
}
WEBHOOK_DESCRIPTION = (
    "Sent to the timelapse's `callbackUrl` once it reaches a terminal state. The body is the "
    "resource as it was at that moment. Signed as Standard Webhooks specifies: verify the raw "
    "body with the headers `webhook-id`, `webhook-timestamp` and `webhook-signature` using the "
    "`standardwebhooks` library of your language and your secret from `GET /webhook-secret` "
    "(it refuses a timestamp more than 5 minutes away). `Lapse-Signature` "
    '(`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">` keyed by the service-wide '
    "`LAPSE_WEBHOOK_SECRET`) stays for receivers written before. Answer any 2xx within 5 "
    "seconds; anything else, or no answer, is retried with growing delays (2, 4, 8, 16 s by "
    "default; 5 tries in all). Redirects are not followed. A retry sends the same body and "
    "`webhook-id` (= `Lapse-Delivery`) with a fresh timestamp and signature: deduplicate on it."
)


def _webhook_header(name: str, description: str, **keywords: Any) -> Schema:
    return {
        "name": name,
        "in": "header",
        "required": True,
        "description": description,
        "schema": _string(**keywords),
    }


def _webhooks() -> dict[str, Any]:
    parameters = [
        _webhook_header("webhook-id", "The delivery's id, the same on each of its retries."),
        _webhook_header(
            "webhook-timestamp", "Unix seconds when this attempt was signed.", pattern="^[0-9]+$"
        ),
        _webhook_header(
            "webhook-signature",
            "`v1,<base64 HMAC-SHA256>` per secret in use, space-separated (two for 24 hours "
            "after a rotation).",
            pattern="^v1,[A-Za-z0-9+/]+={0,2}( v1,[A-Za-z0-9+/]+={0,2})*$",
        ),
        _webhook_header(
            "Lapse-Signature",
            '`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">`.',
            pattern="^t=[0-9]+,v1=[0-9a-f]{64}$",
        ),
        _webhook_header("Lapse-Event", "The same as the body's `type`.", enum=list(WEBHOOK_EVENTS)),
        _webhook_header("Lapse-Delivery", "Stable across the retries of one delivery."),
        _webhook_header("Lapse-Attempt", "1 for the first try, then 2, 3, …", pattern="^[0-9]+$"),
    ]
    hooks: dict[str, Any] = {}
    for event, meaning in WEBHOOK_EVENTS.items():
        hooks[event] = {
            "post": {
                "operationId": "webhook" + "".join(p.title() for p in event.split(".")),
                "summary": f"{event}: {meaning}",
                "description": WEBHOOK_DESCRIPTION,
                "tags": ["webhooks"],
                "security": [],
                "parameters": parameters,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref("WebhookEvent"),
                            "example": {"type": event, "timelapse": {"id": "0193f0c2-..."}},
                        }
                    },
                },
                "responses": {
                    "2XX": {"description": "Received; not sent again."},
                    "default": {"description": "Anything else (or no answer in 5 s): retried."},
                },
            }
        }
    return hooks


# --- responses, parameters, operations ------------------------------------------------------


def _json(schema: Schema) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _ok(description: str, schema: Schema | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response["content"] = _json(schema)
    return response


def _text(description: str, media_type: str) -> dict[str, Any]:
    return {"description": description, "content": {media_type: {"schema": {"type": "string"}}}}


def _error_response_name(status: int) -> str:
    return f"Error{status}"


def _component_responses() -> dict[str, Any]:
    responses = {
        _error_response_name(status): _error_response(description, kind.code)
        for status, (kind, description) in ERROR_RESPONSES.items()
    }
    responses[_error_response_name(500)] = _error_response(
        "Unexpected server error (logged).", INTERNAL_ERROR_CODE
    )
    return responses


def _error_response(description: str, code: str) -> dict[str, Any]:
    example = {"error": {"code": code, "message": description}}
    return {
        "description": description,
        "content": {"application/json": {"schema": _ref("Error"), "example": example}},
    }


def _path_parameter(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def _query_parameter(
    name: str, schema: Schema, description: str, *, required: bool = False
) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }


def _path_parameters() -> dict[str, Schema]:
    return {
        "timelapse_id": _path_parameter(
            "timelapse_id",
            _string(minLength=1),
            "The timelapse's id. Unknown, or another user's: 404.",
        ),
        "project_id": _path_parameter(
            "project_id",
            _string(maxLength=inputs.MAX_PROJECT_ID, pattern=inputs.PROJECT_PATH_PATTERN),
            "The project. One with no timelapses of the caller answers an empty list.",
        ),
        "upload_id": _path_parameter(
            "upload_id", _string(minLength=1), "The multipart upload's id."
        ),
        "part_number": _path_parameter(
            "part_number", _integer(minimum=1, maximum=inputs.MAX_PART_NUMBER), "The part's number."
        ),
    }


HEADER_PARAMETERS: dict[str, Schema] = {
    "Idempotency-Key": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            "Makes a retried create safe: a repeat of the same request by the same user within "
            "24 hours answers the first answer again (the same timelapse, fresh upload URLs); "
            "the same key with another body answers 422; while the first request is still being "
            "handled, 409."
        ),
        "schema": _string(minLength=1, maxLength=255),
    }
}


# Answers too plain to be a named component.
_PLAIN_ANSWERS: dict[str, Schema] = {"OpenApiDocument": {"type": "object"}}


def _answer(route: Route) -> dict[str, Any]:
    if route.answer is None:
        if route.media_type == "application/json":
            return _ok(route.answer_description)
        return _text(route.answer_description, route.media_type)
    schema = _PLAIN_ANSWERS.get(route.answer) or _ref(route.answer)
    return _ok(route.answer_description, schema)


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "tags": [route.tag],
    }
    if route.description:
        operation["description"] = route.description
    path_parameters = _path_parameters()
    parameters = [path_parameters[name] for name in re.findall(r"{(\w+)}", route.path)]
    if route.query is not None:
        parameters += _model_parameters(route.query)
    parameters += [HEADER_PARAMETERS[name] for name in route.headers]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": route.body_required,
            "content": _json(_ref(route.body.__name__)),
        }
    if route.public:
        operation["security"] = []
    operation["responses"] = {
        str(route.success): _answer(route),
        **{
            str(status): {"$ref": f"#/components/responses/{_error_response_name(status)}"}
            for status in sorted(route.error_statuses)
        },
    }
    return operation


def _model_parameters(model: type[BaseModel]) -> list[Schema]:
    """A query model's fields as query parameters (their descriptions move to the parameter)."""
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    return [
        _query_parameter(
            name,
            _parameter_schema(field, schema.get("$defs", {})),
            field.get("description", ""),
            required=name in required,
        )
        for name, field in schema["properties"].items()
    ]


def _parameter_schema(field: Schema, defs: dict[str, Schema]) -> Schema:
    """A field's schema as a parameter's: one kind (a query has no null), references inlined."""
    kinds = [k for k in field.get("anyOf", [field]) if k != {"type": "null"}]
    found = {**{k: v for k, v in field.items() if k not in {"anyOf", "default"}}, **kinds[0]}
    if "$ref" in found:
        found = dict(defs[found["$ref"].rsplit("/", 1)[-1]])
    if field.get("default") is not None:
        found["default"] = field["default"]
    drop = {"title", "description"}
    return {k: v for k, v in found.items() if k not in drop}


def _paths() -> dict[str, Any]:
    """Every route of routes.py, in its order."""
    paths: dict[str, Any] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return paths


def _info() -> dict[str, Any]:
    return {
        "title": "lapse",
        "version": "1.0.0",
        "summary": "Turns long videos into timelapses.",
        "description": (
            "Create a timelapse, upload the original straight to storage with the presigned "
            "URL(s) it answers, then poll `GET /timelapses/{timelapse_id}` until it is complete. "
            "All bodies are JSON; times are ISO 8601 UTC. A caller sees only its own timelapses."
        ),
    }


def _security_schemes() -> dict[str, Any]:
    return {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "`sub` is the caller's user id. Locally HS256 with `LAPSE_JWT_SECRET`; deployed, "
                "tokens of the configured OIDC issuer (Cognito by default)."
            ),
        }
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": _info(),
        "servers": [
            {"url": ".", "description": "The API that serves this document."},
            {"url": "http://127.0.0.1:8000", "description": "`make run` (LAPSE_API_PORT)."},
        ],
        "tags": [
            {"name": "timelapses"},
            {"name": "uploads", "description": "Multipart uploads."},
            {"name": "uppy", "description": "Uppy's `@uppy/aws-s3`: Uppy 6 and Companion (4–5)."},
            {"name": "service"},
            {"name": "webhooks", "description": "What lapse POSTs to a `callbackUrl`."},
        ],
        "security": [{SECURITY_SCHEME: []}],
        "paths": _paths(),
        "webhooks": _webhooks(),
        "components": {
            "schemas": _component_schemas(),
            "responses": _component_responses(),
            "securitySchemes": _security_schemes(),
        },
    }
