"""The OpenAPI 3.1 document served at GET /openapi.json (kept in agreement with ../shared/API.md).

Its paths come from the route table (routes.py), which also registers the handlers; its schemas
are built from the code's own constants (content types, limits, enums), so that the document
cannot drift from what the handlers accept.
"""

from __future__ import annotations

import re
from typing import Any

from chalicelib import errors, wire
from chalicelib.domain.keys import VIDEO_FILE_EXTENSIONS
from chalicelib.domain.limits import Limits, MiB
from chalicelib.domain.options import (
    COMPANION_OPTION_METADATA,
    DEFAULT_FPS,
    DEFAULT_RESOLUTION,
    FPS_CHOICES,
    MAX_SPEED,
    MIN_SPEED,
    RESOLUTIONS,
    RenderOptions,
)
from chalicelib.domain.requests import (
    MAX_FILENAME,
    MAX_PARTS_PER_REQUEST,
    MAX_PROJECT_ID,
    MAX_URL,
)
from chalicelib.domain.timelapse import Status
from chalicelib.routes import ROUTES, Route
from chalicelib.services.uppy import MAX_PART_NUMBER

Schema = dict[str, Any]

DEFAULTS = Limits()
MAX_CONTENT_TYPE = 100
MAX_PAGE = 100
DEFAULT_PAGE = 50
SECURITY_SCHEME = "bearerAuth"

# projectId (requests.project_id): 1–128 characters, not blank, no '#', '/', '\', tab or newline.
_PROJECT_CHARS = r"[^#/\\\t\n\r]"
PROJECT_ID_PATTERN = rf"^(?=.*\S){_PROJECT_CHARS}+$"
PROJECT_PATH_PATTERN = rf"^{_PROJECT_CHARS}+$"
NOT_BLANK = r"\S"

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


def _nullable(schema: Schema) -> Schema:
    """The schema, or JSON null."""
    kind = schema.get("type")
    if isinstance(kind, str):
        nullable = {**schema, "type": [kind, "null"]}
        if "enum" in schema:
            nullable["enum"] = [*schema["enum"], None]
        return nullable
    return {"anyOf": [schema, {"type": "null"}]}


def _string(description: str = "", **keywords: Any) -> Schema:
    return _described({"type": "string", **keywords}, description)


def _integer(description: str = "", **keywords: Any) -> Schema:
    return _described({"type": "integer", **keywords}, description)


def _number(description: str = "", **keywords: Any) -> Schema:
    return _described({"type": "number", **keywords}, description)


def _timestamp(description: str) -> Schema:
    return _string(description, format="date-time")


def _url(description: str) -> Schema:
    return _string(description, format="uri")


def _described(schema: Schema, description: str) -> Schema:
    return {**schema, "description": description} if description else schema


def _object(
    properties: dict[str, Schema],
    *,
    required: list[str] | None = None,
    description: str = "",
) -> Schema:
    """An object; every property is required (always present, maybe null) unless told otherwise."""
    schema: Schema = {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }
    return _described(schema, description)


def _array(items: Schema, description: str = "", **keywords: Any) -> Schema:
    return _described({"type": "array", "items": items, **keywords}, description)


def _enum(values: list[str], description: str = "") -> Schema:
    return _string(description, enum=values)


def _seconds(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _size(count: int) -> str:
    gib = count / (1024 * MiB)
    return f"{gib:g} GiB" if gib >= 1 else f"{count / MiB:g} MiB"


# --- component schemas ----------------------------------------------------------------------


def _error_schema() -> Schema:
    codes = ", ".join(
        f"`{kind.code}` ({status})" for status, (kind, _) in sorted(ERROR_RESPONSES.items())
    )
    detail = _object(
        {
            "code": _string(f"Stable, machine-readable: {codes}, `{INTERNAL_ERROR_CODE}` (500)."),
            "message": _string("Why, in words a person understands."),
        }
    )
    return _object({"error": detail}, description="The body of every refusal.")


def _source_schema() -> Schema:
    return _object(
        {
            "width": _integer("Display width in pixels (rotation applied).", minimum=1),
            "height": _integer("Display height in pixels (rotation applied).", minimum=1),
            "fps": _number("Frames per second.", exclusiveMinimum=0),
            "durationSeconds": _number(minimum=0),
            "codec": _string("The video codec, as ffmpeg names it (e.g. `h264`)."),
            "sizeBytes": _integer("The stored original's size.", minimum=1),
            "rotation": _integer("Clockwise rotation a player applies.", enum=[0, 90, 180, 270]),
            "mirrored": _bool(
                "Mirrored after the rotation (front cameras); the timelapse is shown as a player "
                "shows the original."
            ),
            "hdr": _nullable(
                _enum(
                    ["hlg", "pq"],
                    "HDR transfer (PQ includes HDR10 and Dolby Vision 8.1); "
                    "the timelapse is tone-mapped to SDR BT.709.",
                )
            ),
        },
        # mirrored and hdr came later: records probed before them lack the two
        required=["width", "height", "fps", "durationSeconds", "codec", "sizeBytes", "rotation"],
        description="What probing the original found.",
    )


def _output_schema() -> Schema:
    return _object(
        {
            "width": _integer(minimum=1, maximum=RenderOptions(resolution="2160p").long_side),
            "height": _integer(minimum=1, maximum=RenderOptions(resolution="2160p").long_side),
            "fps": _number(exclusiveMinimum=0),
            "durationSeconds": _number(minimum=0),
            "sizeBytes": _integer(minimum=1),
            "speedup": _number("Source duration ÷ timelapse duration.", exclusiveMinimum=0),
            "idleSecondsSkipped": _number(
                "Seconds of the source left out as idle (`skipIdle`); 0 without it.", minimum=0
            ),
        },
        # idleSecondsSkipped came with v1.1: records completed before it lack it
        required=["width", "height", "fps", "durationSeconds", "sizeBytes", "speedup"],
        description=(
            "The stored timelapse: H.264 yuv420p, short side ≤ the asked `resolution` (long side "
            "≤ 16:9 of it; never upscaled), the asked `fps`, no audio."
        ),
    )


def _fps_schema() -> Schema:
    return {"type": "integer", "enum": list(FPS_CHOICES)}


def _option_request_properties(limits: Limits) -> dict[str, Schema]:
    """The timelapse options of a create (API.md, "Timelapse options"); null means the default."""
    return {
        "speed": _nullable(
            _number(
                "Speed-up factor instead of a length: the timelapse lasts the source's duration "
                "÷ speed (at most the longest timelapse: a longer one fails with the speed to "
                "ask for). With `targetSeconds` too: 400.",
                minimum=_seconds(MIN_SPEED),
                maximum=_seconds(MAX_SPEED),
            )
        ),
        "fps": _nullable(
            _described(
                {**_fps_schema(), "default": DEFAULT_FPS},
                "Output frame rate; the length stays what was asked.",
            )
        ),
        "resolution": _nullable(
            {
                **_enum(
                    list(RESOLUTIONS),
                    "The output's short side at most this many pixels (the long side at most "
                    "16:9 of it); never upscaled.",
                ),
                "default": DEFAULT_RESOLUTION,
            }
        ),
        "skipIdle": {
            "type": "boolean",
            "default": False,
            "description": "Leave out stretches where the picture does not change (a screen "
            "left alone, a blinking cursor), keeping a short beat of each; "
            "`output.idleSecondsSkipped` says how much. With `speed` the timelapse is shorter; "
            "with `targetSeconds` the active parts fill the length.",
        },
        "timestamp": {
            "type": "boolean",
            "default": False,
            "description": "Burn the source's time into a corner: wall-clock from the "
            "recording's creation time when the file has one, else elapsed `h:mm:ss`.",
        },
        "deflicker": {
            "type": "boolean",
            "default": False,
            "description": "Even out frame-to-frame brightness changes (camera timelapses).",
        },
    }


def _bool(description: str) -> Schema:
    return _described({"type": "boolean"}, description)


def _create_request_schema() -> Schema:
    extensions = ", ".join(f"`.{ext}`" for ext in sorted(VIDEO_FILE_EXTENSIONS))
    limits = DEFAULTS
    return _object(
        {
            "projectId": _string(
                "Not blank; no '#', '/', '\\', tab or newline.",
                minLength=1,
                maxLength=MAX_PROJECT_ID,
                pattern=PROJECT_ID_PATTERN,
            ),
            "contentType": _string(
                "Advisory: the server decides what the file is from its bytes after upload. "
                "Any `video/*` type (case-insensitive; parameters after ';' are ignored), "
                'including `video/mp2t`; `application/octet-stream` or `""` when `filename` '
                f"ends in a video extension ({extensions}). Clearly non-video types "
                "(`text/*`, `image/*`, `audio/*`, `application/json`, …) answer 415.",
                maxLength=MAX_CONTENT_TYPE,
                examples=["video/mp4", "video/quicktime", "video/webm", "video/mp2t", ""],
            ),
            "sizeBytes": _integer(
                f"Exact size of the file. Above {_size(limits.max_upload_bytes)} (configurable) "
                f"answers 413; above {_size(limits.multipart_threshold_bytes)} the upload is "
                "multipart.",
                minimum=1,
            ),
            "filename": _nullable(
                _string(
                    "Used when downloading the original.", maxLength=MAX_FILENAME, pattern=NOT_BLANK
                )
            ),
            "durationMinutes": _nullable(_number("The video's length, if known.", minimum=0)),
            "targetSeconds": _nullable(
                _number(
                    "Wanted timelapse length; null or absent means the default.",
                    minimum=_seconds(limits.min_target_seconds),
                    maximum=_seconds(limits.max_target_seconds),
                    default=_seconds(limits.default_target_seconds),
                )
            ),
            **_option_request_properties(limits),
            "process": {
                "type": "boolean",
                "default": True,
                "description": "false: store the upload, process only on "
                "`POST /timelapses/{timelapse_id}/process`.",
            },
            "callbackUrl": _nullable(
                _string(
                    "URL that receives a signed POST on each terminal state (see `webhooks`). "
                    "Deployed: `https://` to a public address only (private, loopback, "
                    "link-local, multicast and reserved addresses are refused, also when the "
                    "host name resolves to one); locally, loopback `http://` is allowed too.",
                    maxLength=MAX_URL,
                    pattern="^https?://",
                )
            ),
        },
        required=["projectId", "contentType", "sizeBytes"],
        description="Unknown fields are ignored.",
    )


def _part_numbers_request_schema() -> Schema:
    return _object(
        {
            "partNumbers": _array(
                _integer("From 1 to the upload's partCount.", minimum=1),
                minItems=1,
                maxItems=MAX_PARTS_PER_REQUEST,
            )
        }
    )


def _completed_part_schema() -> Schema:
    """{partNumber, etag}; S3's spellings PartNumber / ETag are accepted too."""
    number = _integer("From 1 to the upload's partCount.", minimum=1)
    etag = _string("The part's ETag response header.", minLength=1)
    either = [
        {"anyOf": [{"required": ["partNumber"]}, {"required": ["PartNumber"]}]},
        {"anyOf": [{"required": ["etag"]}, {"required": ["ETag"]}]},
    ]
    return {
        "type": "object",
        "properties": {"partNumber": number, "etag": etag, "PartNumber": number, "ETag": etag},
        "allOf": either,
    }


def _complete_request_schema() -> Schema:
    parts = _array(
        _ref("CompletedPart"),
        "Each partNumber once. null or absent: the server lists the stored parts itself.",
        minItems=1,
    )
    return _object({"parts": _nullable(parts)}, required=[])


def _component_schemas() -> dict[str, Schema]:
    return {
        "Error": _error_schema(),
        "SourceInfo": _source_schema(),
        "OutputInfo": _output_schema(),
        # Every answer lapse builds from a use case's result: from its model (wire.py).
        **wire.json_schemas(),
        "CreateTimelapseRequest": _create_request_schema(),
        "PartNumbersRequest": _part_numbers_request_schema(),
        "CompletedPart": _completed_part_schema(),
        "CompleteUploadRequest": _complete_request_schema(),
        "WebhookEvent": _webhook_event_schema(),
        "WebhookSecret": _object(
            {
                "secret": _string(
                    "`whsec_` and the base64 of 32 random bytes, as Standard Webhooks libraries "
                    "take it.",
                    pattern="^whsec_[A-Za-z0-9+/]+={0,2}$",
                )
            }
        ),
        **_uppy_schemas(),
    }


# --- Uppy (@uppy/aws-s3) ----------------------------------------------------------------------

UPPY_KEY = (
    "The object key lapse answered (`videos/<id>.<ext>`); another user's or a malformed one: 404."
)


def _uppy_sign_request_schema() -> Schema:
    create = (
        "Only for a request that creates (PUT or POST without uploadId); as in `POST /timelapses`."
    )
    return _object(
        {
            "method": _enum(["PUT", "POST", "GET", "DELETE"]),
            "key": _string(
                "Uppy's key: its own proposal on a create (ignored), else " + UPPY_KEY, minLength=1
            ),
            "uploadId": _string(
                "Absent on a create (PUT: PutObject, POST: CreateMultipartUpload)."
            ),
            "partNumber": _integer(
                "With PUT + uploadId: UploadPart.", minimum=1, maximum=MAX_PART_NUMBER
            ),
            "expiresIn": _integer("Seconds; capped at the upload URL lifetime.", minimum=1),
            "projectId": _string(create, maxLength=MAX_PROJECT_ID, pattern=PROJECT_ID_PATTERN),
            "sizeBytes": _integer(
                create + " Optional (Uppy has none to pass): without it the size limit applies "
                "to the stored object once the upload is complete (beyond it: `failed`, deleted).",
                minimum=1,
            ),
            "contentType": _string(create + " Required there (Uppy 6.3+ passes it for a PUT)."),
            "targetSeconds": _number(create),
            **{
                name: _described({k: v for k, v in schema.items() if k != "description"}, create)
                for name, schema in _option_request_properties(DEFAULTS).items()
            },
            "filename": _string(create, maxLength=MAX_FILENAME),
            "durationMinutes": _number(create),
            "callbackUrl": _string(create, maxLength=MAX_URL),
        },
        required=["method", "key"],
    )


def _companion_metadata_schema() -> Schema:
    numeric = {"anyOf": [_integer(minimum=1), _string(pattern=r"^\d+$")]}
    return _object(
        {
            "projectId": _string(maxLength=MAX_PROJECT_ID, pattern=PROJECT_ID_PATTERN),
            "sizeBytes": _described(
                numeric,
                "Optional: the file's size (`file.size`). Without it the size limit applies to "
                "the stored object once the upload is complete.",
            ),
            "targetSeconds": {"anyOf": [_number(), _string()]},
            "speed": {"anyOf": [_number(), _string()]},
            "fps": {"anyOf": [_integer(), _string()]},
            "resolution": _enum(list(RESOLUTIONS)),
            **{
                name: {"anyOf": [_bool(""), _enum(["true", "false"])]}
                for name in ("skipIdle", "timestamp", "deflicker")
            },
        },
        required=["projectId"],
        description="Uppy's file meta (values arrive as strings); other fields are ignored.",
    )


def _uppy_schemas() -> dict[str, Schema]:
    headers = {"type": "object", "additionalProperties": _string()}
    part = _object({"PartNumber": _integer(minimum=1), "ETag": _string(minLength=1)})
    return {
        "UppySignRequest": _uppy_sign_request_schema(),
        "UppySignedRequest": _object(
            {
                "url": _url("Presigned URL for exactly the request asked for."),
                "key": _string(UPPY_KEY),
                "timelapseId": _string(),
                "headers": _described(headers, "Send these headers (Uppy 6.3+ does)."),
                "expiresAt": _timestamp("When the URL expires."),
            },
            required=["url", "key", "timelapseId", "expiresAt"],
        ),
        "CompanionCreateRequest": _object(
            {
                "filename": _string(maxLength=MAX_FILENAME),
                "type": _string("The file's content type.", maxLength=MAX_CONTENT_TYPE),
                "metadata": _companion_metadata_schema(),
            },
            required=["type", "metadata"],
        ),
        "CompanionMultipart": _object(
            {
                "key": _string(UPPY_KEY),
                "uploadId": _string(),
                "bucket": _string(),
                "timelapseId": _string(),
            }
        ),
        "CompanionSignedPart": _object(
            {"url": _url("Presigned PUT for the part."), "expires": _integer("Seconds.")}
        ),
        "CompanionParts": _array(_object({**part["properties"], "Size": _integer(minimum=0)})),
        "CompanionCompleteRequest": _object(
            {"parts": _array(part, "Absent: the server lists the stored parts.")}, required=[]
        ),
        "CompanionCompleted": _object(
            {
                "location": _url("A presigned GET of the stored original."),
                "key": _string(),
                "bucket": _string(),
            }
        ),
        "CompanionParams": _object(
            {
                "method": _string(const="PUT"),
                "url": _url("Presigned PUT signed for this key, content type and length."),
                "fields": _object({}, description="Always empty (no POST form)."),
                "headers": _described(headers, "Send these headers with the PUT."),
                "key": _string(UPPY_KEY),
                "timelapseId": _string(),
            }
        ),
    }


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


def _webhook_event_schema() -> Schema:
    return _object(
        {
            "type": _enum(list(WEBHOOK_EVENTS), "Which terminal state was reached."),
            "timelapse": _ref("Timelapse"),
        },
        description="The body of every webhook POST.",
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
            _string(maxLength=MAX_PROJECT_ID, pattern=PROJECT_PATH_PATTERN),
            "The project. One with no timelapses of the caller answers an empty list.",
        ),
        "upload_id": _path_parameter(
            "upload_id", _string(minLength=1), "The multipart upload's id."
        ),
        "part_number": _path_parameter(
            "part_number", _integer(minimum=1, maximum=MAX_PART_NUMBER), "The part's number."
        ),
    }


def _query_parameters() -> dict[str, Schema]:
    return {
        "limit": _query_parameter(
            "limit",
            _integer(minimum=1, maximum=MAX_PAGE, default=DEFAULT_PAGE),
            "Page size. Out of range or not an integer: 400.",
        ),
        "cursor": _query_parameter(
            "cursor",
            _string(),
            "`nextCursor` of the previous page; one this API did not hand out: 400.",
        ),
        "status": _query_parameter(
            "status",
            _enum([s.value for s in Status]),
            "Only timelapses in this status. Another value: 400.",
        ),
        "key": _query_parameter("key", _string(minLength=1), UPPY_KEY, required=True),
        "filename": _query_parameter("filename", _string(), "The file's name."),
        "type": _query_parameter("type", _string(), "Content type.", required=True),
        "metadata[projectId]": _query_parameter(
            "metadata[projectId]", _string(), "The project.", required=True
        ),
        "metadata[sizeBytes]": _query_parameter(
            "metadata[sizeBytes]", _string(pattern=r"^\d+$"), "Optional: `file.size`."
        ),
        **{
            f"metadata[{name}]": _query_parameter(f"metadata[{name}]", _string(), "Optional.")
            for name in COMPANION_OPTION_METADATA
        },
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
_PLAIN_ANSWERS: dict[str, Schema] = {"OpenApiDocument": {"type": "object"}, "Empty": _object({})}


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
    path_parameters, query_parameters = _path_parameters(), _query_parameters()
    parameters = [path_parameters[name] for name in re.findall(r"{(\w+)}", route.path)]
    parameters += [query_parameters[name] for name in route.query]
    parameters += [HEADER_PARAMETERS[name] for name in route.headers]
    if parameters:
        operation["parameters"] = parameters
    if route.body is not None:
        operation["requestBody"] = {
            "required": route.body_required,
            "content": _json(_ref(route.body)),
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
