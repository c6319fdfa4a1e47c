"""What the API takes, declared once: each request body and query is a pydantic model that parses
and validates it and gives the OpenAPI document its schema (openapi.py). The route table
(routes.py) names each route's model; the blueprints (api.py, uppy.py) call `parse`, and the use
cases receive the commands the models make (`CreateTimelapse`, part numbers, completed parts).

A refusal says what today's API says: the first failing field, in the field order below, becomes
one domain error with lapse's own message (`Says` per field, `_MESSAGES` by default), never
pydantic's wording. Rules a JSON Schema cannot state (control characters, the advisory content
type, configured limits, the callback policy) are the domain's own functions, run as validators.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticError
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import ErrorDetails, PydanticCustomError

from chalicelib.domain import requests as rules
from chalicelib.domain.keys import VIDEO_FILE_EXTENSIONS, filename_extension, type_for_extension
from chalicelib.domain.limits import Limits, MiB
from chalicelib.domain.options import (
    DEFAULT_FPS,
    DEFAULT_RESOLUTION,
    FPS_CHOICES,
    MAX_SPEED,
    MIN_SPEED,
    RESOLUTIONS,
    RenderOptions,
)
from chalicelib.domain.timelapse import Status
from chalicelib.domain.webhooks import CallbackPolicy
from chalicelib.errors import LapseError, ValidationError

Model = TypeVar("Model", bound=BaseModel)
DEFAULTS = Limits()
MAX_PROJECT_ID = rules.MAX_PROJECT_ID
MAX_PAGE = 100
DEFAULT_PAGE = 50
# S3's own bounds: part numbers 1–10,000 whatever size the client splits the file into.
MAX_PART_NUMBER = 10_000
UPPY_METHODS = ("PUT", "POST", "GET", "DELETE")

# projectId: 1–128 characters, not blank, no '#', '/', '\', tab or newline (and, beyond what a
# pattern says, no control character: rules.project_id).
_PROJECT_CHARS = r"[^#/\\\t\n\r]"
PROJECT_ID_PATTERN = rf"^(?=.*\S){_PROJECT_CHARS}+$"
PROJECT_PATH_PATTERN = rf"^{_PROJECT_CHARS}+$"
NOT_BLANK = r"\S"


# --- refusals in lapse's words ------------------------------------------------------------------

Message = str | Callable[[Any], str]


@dataclass(frozen=True, eq=False)  # hashed by identity: typing hashes Annotated metadata
class Says:
    """A field's own refusal messages by pydantic error type ("*" for any); `{name}` is the field's
    wire name, `{…}` the error's context and the parse context (e.g. `{part_count}`)."""

    messages: dict[str, Message]

    def __init__(self, **messages: Message) -> None:
        object.__setattr__(self, "messages", messages)


_FINITE = "{name} must be a finite number of ordinary size"
_MESSAGES: dict[str, str] = {
    "missing": "{name} is required",
    "string_type": "{name} must be a non-empty string",
    "string_too_short": "{name} must be a non-empty string",
    "string_pattern_mismatch": "{name} must be a non-empty string",
    "string_too_long": "{name} must be at most {max_length} characters",
    "bool_type": "{name} must be true or false",
    "float_type": "{name} must be a number",
    "finite_number": _FINITE,
    "model_type": "{name} must be an object",
    "dict_type": "{name} must be an object",
}


def _lapse(error: LapseError) -> PydanticCustomError:
    return PydanticCustomError("lapse", "{message}", {"message": error.message, "error": error})


def _refusing(check: Callable[..., Any]) -> Callable[..., Any]:
    """A validator from a domain rule: its domain error becomes this field's refusal."""

    def validate(value: Any, *args: Any) -> Any:
        try:
            return check(value, *args)
        except LapseError as exc:
            raise _lapse(exc) from None

    return validate


def _refuse(message: str) -> PydanticCustomError:
    return _lapse(ValidationError(message))


def parse(model: type[Model], raw: Any, **context: Any) -> Model:
    """`raw` (a JSON value or query) as `model`, or the domain error of its first fault."""
    try:
        return model.model_validate(raw, context=context)
    except PydanticError as exc:
        raise refusal(model, exc.errors(), context) from None


def refusal(
    model: type[BaseModel], found: list[ErrorDetails], context: dict[str, Any]
) -> LapseError:
    error = min(found, key=lambda e: _rank(model, e))
    ctx = error.get("ctx") or {}
    if error["type"] == "lapse":
        lapse_error: LapseError = ctx["error"]
        return lapse_error
    if not error["loc"]:
        return ValidationError("the body must be a JSON object")
    name = str(error["loc"][0])
    says = _says(model, name)
    message: Message | None = says.get(error["type"]) or says.get("*")
    if message is None and error["type"] == "float_type" and _big_integer(error["input"]):
        message = says.get("finite_number") or _FINITE
    if message is None:
        message = _MESSAGES.get(error["type"], "{name} is not valid")
    if error["input"] is None and error["type"].endswith("_type") and "null" in says:
        message = says["null"]
    text = message(error["input"]) if callable(message) else message
    return ValidationError(text.format(name=name, **ctx, **context))


def _rank(model: type[BaseModel], error: ErrorDetails) -> float:
    """Where the check that found `error` comes: its field's place, a missing field's
    presence possibly earlier (`PRESENCE_BEFORE`); errors of the whole model come last."""
    order = [info.alias or name for name, info in model.model_fields.items()]
    if not error["loc"] or error["loc"][0] not in order:
        return len(order)
    name = str(error["loc"][0])
    earlier: dict[str, str] = getattr(model, "PRESENCE_BEFORE", {})
    if error["type"] == "missing" and name in earlier:
        return order.index(earlier[name]) - 0.5
    return order.index(name)


def _big_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _says(model: type[BaseModel], wire_name: str) -> dict[str, Message]:
    for field_name, info in model.model_fields.items():
        if wire_name in {info.alias, field_name}:
            found: dict[str, Message] = {}
            for marker in info.metadata:
                if isinstance(marker, Says):
                    found |= marker.messages
            return found
    return {}


class _Input(BaseModel):
    """camelCase on the wire; JSON types as sent (no "1" for 1); unknown fields ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        strict=True,
        allow_inf_nan=False,
        extra="ignore",
        frozen=True,
        regex_engine="python-re",  # the projectId pattern looks ahead (not blank)
    )


def _limits(info: ValidationInfo) -> Limits:
    limits: Limits = (info.context or {}).get("limits", DEFAULTS)
    return limits


def _callbacks(info: ValidationInfo) -> CallbackPolicy:
    policy: CallbackPolicy = (info.context or {}).get("callbacks") or CallbackPolicy()
    return policy


def _seconds(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _size(count: int) -> str:
    gib = count / (1024 * MiB)
    return f"{gib:g} GiB" if gib >= 1 else f"{count / MiB:g} MiB"


# --- POST /timelapses ---------------------------------------------------------------------------


def _blank_or_project(value: Any) -> str:
    return (
        "{name} must be a non-empty string"
        if isinstance(value, str) and not value.strip()
        else _PROJECT_MESSAGE
    )


_PROJECT_MESSAGE = (
    f"projectId must be 1–{rules.MAX_PROJECT_ID} characters without '#', '/', '\\' or "
    "control characters"
)
ProjectId = Annotated[
    str,
    Field(
        description="Not blank; no '#', '/', '\\', tab or newline.",
        min_length=1,
        max_length=rules.MAX_PROJECT_ID,
        pattern=PROJECT_ID_PATTERN,
    ),
    AfterValidator(_refusing(rules.project_id)),
    Says(string_pattern_mismatch=_blank_or_project, null="{name} is required"),
]
_EXTENSIONS = ", ".join(f"`.{ext}`" for ext in sorted(VIDEO_FILE_EXTENSIONS))
_OS_TABLE_TYPES = "; ".join(
    f"`{kind}` when `filename` ends in " + " or ".join(f"`.{ext}`" for ext in sorted(extensions))
    for kind, extensions in sorted(rules.OS_TABLE_TYPES.items())
)
ContentType = Annotated[
    str,
    Field(
        description="Advisory: the server decides what the file is from its bytes after upload. "
        "Any `video/*` type (case-insensitive; parameters after ';' are ignored), including "
        '`video/mp2t`; `application/octet-stream` or `""` when `filename` ends in a video '
        f"extension ({_EXTENSIONS}); an operating system's name for a video extension: "
        f"{_OS_TABLE_TYPES}. Clearly non-video types (`text/*`, `image/*`, `audio/*`, "
        "`application/json`, …) answer 415.",
        max_length=rules.MAX_CONTENT_TYPE,
        examples=["video/mp4", "video/quicktime", "video/webm", "video/mp2t", ""],
    ),
    Says(string_type="{name} must be a string", null="{name} is required"),
]
Filename = Annotated[
    str,
    Field(
        description="Used when downloading the original.",
        max_length=rules.MAX_FILENAME,
        pattern=NOT_BLANK,
    ),
    AfterValidator(_refusing(rules.safe_filename)),
]


def _positive_size(value: int | None) -> int | None:
    if value is None:  # sent as null: a size that is not one
        raise _refuse("sizeBytes must be an integer number of bytes")
    return value


def _within_upload_limit(value: int | None, info: ValidationInfo) -> int | None:
    return None if value is None else _refusing(rules.size_bytes)(value, _limits(info))


SizeBytes = Annotated[
    Annotated[
        int,
        Field(
            description=f"Exact size of the file. Above {_size(DEFAULTS.max_upload_bytes)} "
            f"(configurable) answers 413; above {_size(DEFAULTS.multipart_threshold_bytes)} the "
            "upload is multipart.",
            ge=1,
        ),
    ]
    | SkipJsonSchema[None],
    BeforeValidator(_positive_size),
    AfterValidator(_within_upload_limit),
    Says(
        int_type="sizeBytes must be an integer number of bytes",
        greater_than_equal="sizeBytes must be at least 1 byte",
    ),
]


_DURATION_RANGE = (
    f"durationMinutes must not be negative, nor more than {rules.MAX_DURATION_MINUTES}"
)
DurationMinutes = Annotated[
    float | None,
    Field(description="The video's length, if known.", ge=0, le=rules.MAX_DURATION_MINUTES),
    Says(greater_than_equal=_DURATION_RANGE, less_than_equal=_DURATION_RANGE),
]
_SPEED_RANGE = f"speed must be between {MIN_SPEED:g} and {MAX_SPEED:g}"
Speed = Annotated[
    float | None,
    Field(
        description="Speed-up factor instead of a length: the timelapse lasts the source's "
        "duration ÷ speed (at most the longest timelapse: a longer one fails with the speed to "
        "ask for). With `targetSeconds` too: 400.",
        ge=MIN_SPEED,
        le=MAX_SPEED,
    ),
    Says(
        greater_than_equal=_SPEED_RANGE,
        less_than_equal=_SPEED_RANGE,
        finite_number=_SPEED_RANGE,
    ),
]


def _length_or_speed(value: Any, info: ValidationInfo) -> Any:
    """A length or a speed-up factor, not both (whatever the length's form)."""
    if value is not None and info.data.get("speed") is not None:
        raise _refuse("give targetSeconds (a length) or speed (a speed-up factor), not both")
    return value


def _target_within_limits(value: float | None, info: ValidationInfo) -> float | None:
    if value is None:
        return None
    checked: float = _refusing(rules.target_seconds)(value, _limits(info))
    return checked


TargetSeconds = Annotated[
    float | None,
    BeforeValidator(_length_or_speed),
    AfterValidator(_target_within_limits),
    Field(
        description="Wanted timelapse length; null or absent means the default.",
        json_schema_extra={
            "minimum": _seconds(DEFAULTS.min_target_seconds),
            "maximum": _seconds(DEFAULTS.max_target_seconds),
            "default": _seconds(DEFAULTS.default_target_seconds),
        },
    ),
]


def _callback(value: str | None, info: ValidationInfo) -> str | None:
    checked: str | None = _refusing(rules.callback_url)(value, _callbacks(info))
    return checked


CallbackUrl = Annotated[
    str | None,
    Field(
        description="URL that receives a signed POST on each terminal state (see `webhooks`). "
        "Deployed: `https://` to a public address only (private, loopback, link-local, "
        "multicast and reserved addresses are refused, also when the host name resolves to "
        "one); locally, loopback `http://` is allowed too.",
        max_length=rules.MAX_URL,
        pattern=NOT_BLANK,
        json_schema_extra={"pattern": "^https?://"},
    ),
    AfterValidator(_callback),
]
_FPS = f"fps must be one of {', '.join(str(choice) for choice in FPS_CHOICES)}"
Fps = Annotated[
    Literal[24, 25, 30, 50, 60] | None,
    Field(description="Output frame rate; the length stays what was asked."),
    Says(**{"*": _FPS}),
]
Resolution = Annotated[
    Literal["720p", "1080p", "1440p", "2160p"] | None,
    Field(
        description="The output's short side at most this many pixels (the long side at most "
        "16:9 of it); never upscaled."
    ),
    Says(**{"*": f"resolution must be one of {', '.join(RESOLUTIONS)}"}),
]
_SKIP_IDLE = (
    "Leave out stretches where the picture does not change (a screen left alone, a blinking "
    "cursor), keeping a short beat of each; `output.idleSecondsSkipped` says how much. With "
    "`speed` the timelapse is shorter; with `targetSeconds` the active parts fill the length."
)
_TIMESTAMP = (
    "Burn the source's time into a corner: wall-clock from the recording's creation time when "
    "the file has one, else elapsed `h:mm:ss`."
)
_DEFLICKER = "Even out frame-to-frame brightness changes (camera timelapses)."


class CreateTimelapseRequest(_Input):
    """Unknown fields are ignored."""

    # In the order today's refusals are checked: the first faulty field is the one refused.
    PRESENCE_BEFORE: ClassVar[dict[str, str]] = {"sizeBytes": "speed"}
    project_id: ProjectId
    content_type: ContentType
    filename: Filename | None = None
    duration_minutes: DurationMinutes = None
    process: bool = Field(
        default=True,
        description="false: store the upload, process only on "
        "`POST /timelapses/{timelapse_id}/process`.",
    )
    speed: Speed = None
    target_seconds: TargetSeconds = None
    size_bytes: SizeBytes  # its presence is checked before speed (PRESENCE_BEFORE)
    callback_url: CallbackUrl = None
    fps: Fps = DEFAULT_FPS  # type: ignore[assignment]
    resolution: Resolution = "1080p"
    skip_idle: bool = Field(default=False, description=_SKIP_IDLE)
    timestamp: bool = Field(default=False, description=_TIMESTAMP)
    deflicker: bool = Field(default=False, description=_DEFLICKER)

    @model_validator(mode="after")
    def _advisory_type(self, info: ValidationInfo) -> CreateTimelapseRequest:
        """The declared type against the filename (415), once both are known good."""
        try:
            rules.content_type(self.content_type, self.filename)
        except LapseError as exc:
            raise _lapse(exc) from None
        return self

    def command(self, limits: Limits) -> rules.CreateTimelapse:
        return rules.CreateTimelapse(
            project_id=self.project_id,
            content_type=rules.content_type(self.content_type, self.filename),
            size_bytes=self.size_bytes,
            filename=self.filename,
            duration_minutes=self.duration_minutes,
            target_seconds=(
                None
                if self.speed is not None
                else limits.default_target_seconds
                if self.target_seconds is None
                else self.target_seconds
            ),
            process=self.process,
            callback_url=self.callback_url,
            speed=self.speed,
            options=RenderOptions(
                fps=self.fps or DEFAULT_FPS,
                resolution=self.resolution or DEFAULT_RESOLUTION,
                skip_idle=self.skip_idle,
                timestamp=self.timestamp,
                deflicker=self.deflicker,
            ),
        )


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


class UppyCreateFields(CreateTimelapseRequest):
    """A create through Uppy's routes: Uppy has no size to pass (API.md), so it may be left out;
    the limits then apply to what storage holds once the upload is complete."""

    size_bytes: SizeBytes = Field(
        default=None,
        description="Optional (Uppy has none to pass): without it the size limit applies to the "
        "stored object once the upload is complete (beyond it: `failed`, deleted).",
        json_schema_extra=_no_default,  # absent, never null
    )


class Pace(_Input):
    """A timelapse's length: `targetSeconds` or `speed`, not both (the CLI's `lapse render`)."""

    speed: Speed = None
    target_seconds: TargetSeconds = None


def pace(raw: dict[str, Any], limits: Limits) -> tuple[float | None, float | None]:
    """(targetSeconds, speed) of `raw`: a length (the default if neither) or a speed-up factor."""
    found = parse(Pace, raw, limits=limits)
    if found.speed is not None:
        return None, found.speed
    target = limits.default_target_seconds if found.target_seconds is None else found.target_seconds
    return target, None


def create_command(
    raw: Any, limits: Limits, callbacks: CallbackPolicy, *, size_required: bool = True
) -> rules.CreateTimelapse:
    """The create command from a body (`size_required=False` for Uppy's routes)."""
    model = CreateTimelapseRequest if size_required else UppyCreateFields
    return parse(model, raw, limits=limits, callbacks=callbacks).command(limits)


# --- multipart uploads --------------------------------------------------------------------------


def _part_in_upload(value: int, info: ValidationInfo) -> int:
    count = (info.context or {}).get("part_count", MAX_PART_NUMBER)
    if value > count:
        raise PydanticCustomError("less_than_equal", "beyond the upload's parts")
    return value


PartNumber = Annotated[
    int,
    Field(description="From 1 to the upload's partCount.", ge=1),
    AfterValidator(_part_in_upload),
]
_PART_NUMBERS = "part numbers must be integers from 1 to {part_count}"


_NON_EMPTY_LIST = "partNumbers must be a non-empty list of integers"


class PartNumbersRequest(_Input):
    part_numbers: Annotated[
        list[PartNumber],
        Field(
            description="Asked for once each; answered sorted.",
            min_length=1,
            max_length=rules.MAX_PARTS_PER_REQUEST,
        ),
        Says(
            missing=_NON_EMPTY_LIST,
            list_type=_NON_EMPTY_LIST,
            too_short=_NON_EMPTY_LIST,
            too_long=f"ask for at most {rules.MAX_PARTS_PER_REQUEST} part URLs at a time",
            int_type=_PART_NUMBERS,
            greater_than_equal=_PART_NUMBERS,
            less_than_equal=_PART_NUMBERS,
        ),
    ]

    @field_validator("part_numbers", mode="after")
    @classmethod
    def _sorted(cls, numbers: list[int]) -> list[int]:
        return sorted(set(numbers))


def _either_spelling(raw: Any) -> Any:
    """{partNumber, etag}, or S3's PartNumber / ETag; a part without its etag is named."""
    if not isinstance(raw, dict):
        return raw
    number = raw.get("partNumber", raw.get("PartNumber"))
    etag = raw.get("etag", raw.get("ETag"))
    return {"partNumber": number, "etag": etag}


def _both_spellings(schema: dict[str, Any]) -> None:
    properties = schema["properties"]
    properties["PartNumber"] = properties["partNumber"]
    properties["ETag"] = properties["etag"]
    schema.pop("required", None)
    schema["allOf"] = [
        {"anyOf": [{"required": ["partNumber"]}, {"required": ["PartNumber"]}]},
        {"anyOf": [{"required": ["etag"]}, {"required": ["ETag"]}]},
    ]


class CompletedPart(_Input):
    """{partNumber, etag}; S3's spellings PartNumber / ETag are accepted too."""

    model_config = ConfigDict(json_schema_extra=_both_spellings)

    part_number: PartNumber
    etag: str = Field(description="The part's ETag response header.", min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _spelling(cls, raw: Any) -> Any:
        return _either_spelling(raw)


def _etag_named(raw: Any, info: ValidationInfo) -> Any:
    """Each part's number, then its etag, checked in the order the client listed them."""
    if not isinstance(raw, list):
        return raw
    count = (info.context or {}).get("part_count", MAX_PART_NUMBER)
    seen: set[int] = set()
    for part in raw:
        if not isinstance(part, dict):
            raise _refuse("each part must be an object {partNumber, etag}")
        fields = _either_spelling(part)
        number, etag = fields["partNumber"], fields["etag"]
        if isinstance(number, bool) or not isinstance(number, int) or not 1 <= number <= count:
            raise _refuse(f"partNumber must be an integer from 1 to {count}")
        if not isinstance(etag, str) or not etag:
            raise _refuse(f"part {number} has no etag")
        if number in seen:
            raise _refuse(f"part {number} is listed twice")
        seen.add(number)
    return raw


_PARTS = "parts must be a non-empty list of {{partNumber, etag}}"


class CompleteUploadRequest(_Input):
    parts: Annotated[
        Annotated[list[CompletedPart], Field(min_length=1)] | None,
        BeforeValidator(_etag_named),
        Field(
            description="Each partNumber once. null or absent: the server lists the stored "
            "parts itself."
        ),
        Says(list_type=_PARTS, too_short=_PARTS),
    ] = None

    def completed(self) -> list[tuple[int, str]] | None:
        if self.parts is None:
            return None
        return sorted((part.part_number, part.etag) for part in self.parts)


def completed_parts(raw: Any, part_count: int) -> list[tuple[int, str]] | None:
    """The client's (partNumber, etag) list, or None to let the server list the parts."""
    if raw is None:
        return None
    return parse(CompleteUploadRequest, raw, part_count=part_count).completed()


def part_numbers(raw: Any, part_count: int) -> list[int]:
    return parse(PartNumbersRequest, raw, part_count=part_count).part_numbers


# --- GET /projects/{project_id}/timelapses -----------------------------------------------------


def _integer(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return int(value)
    except ValueError:
        raise _refuse("limit must be an integer") from None


_LIMIT = f"limit must be between 1 and {MAX_PAGE}"
_STATUSES = f"status must be one of {', '.join(s.value for s in Status)}"


class ListQuery(BaseModel):
    """Query parameters arrive as text."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    limit: Annotated[
        int,
        Field(description="Page size. Out of range or not an integer: 400.", ge=1, le=MAX_PAGE),
        BeforeValidator(_integer),
        Says(greater_than_equal=_LIMIT, less_than_equal=_LIMIT, int_type=_LIMIT),
    ] = DEFAULT_PAGE
    cursor: Annotated[
        str | None,
        Field(description="`nextCursor` of the previous page; one this API did not hand out: 400."),
    ] = None
    status: Annotated[
        Status | None,
        Field(description="Only timelapses in this status. Another value: 400."),
        Says(enum=_STATUSES),
    ] = None

    @field_validator("cursor", mode="after")
    @classmethod
    def _empty_is_none(cls, value: str | None) -> str | None:
        return value or None


def list_query(raw: dict[str, str]) -> ListQuery:
    return parse(ListQuery, raw)


# --- Uppy ---------------------------------------------------------------------------------------

UPPY_KEY = (
    "The object key lapse answered (`videos/<id>.<ext>`); another user's or a malformed one: 404."
)
_CREATE_ONLY = (
    "Only for a request that creates (PUT or POST without uploadId); as in `POST /timelapses`."
)


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _digits(value: Any) -> Any:
    return int(value) if isinstance(value, str) and value.isdigit() else value


_PART = f"partNumber must be an integer from 1 to {MAX_PART_NUMBER}"
UppyPartNumber = Annotated[
    int,
    Field(ge=1, le=MAX_PART_NUMBER),
    BeforeValidator(_digits),
    Says(**{"*": _PART}),
]


def _with_create_fields(schema: dict[str, Any]) -> None:
    """Uppy 6's request, plus the create fields the front end passes (used only by a create)."""
    create = UppyCreateFields.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, field in create["properties"].items():
        if name not in schema["properties"]:
            described = {k: v for k, v in field.items() if k not in {"description", "title"}}
            schema["properties"][name] = {**described, "description": _CREATE_ONLY}


class UppySignRequest(_Input):
    """One S3 request as Uppy 6 describes it to `signRequest`; the other fields describe the
    timelapse to create (used only by a create)."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_with_create_fields)

    method: Annotated[
        Literal["PUT", "POST", "GET", "DELETE"],
        BeforeValidator(_upper),
        Says(**{"*": f"method must be one of {', '.join(sorted(UPPY_METHODS))}"}),
    ]
    key: Annotated[
        str,
        Field(
            description="Uppy's key: its own proposal on a create (ignored), else " + UPPY_KEY,
            min_length=1,
        ),
        Says(**{"*": "key must be a non-empty string"}),
    ]
    upload_id: Annotated[
        str | None,
        Field(
            description="Absent on a create (PUT: PutObject, POST: CreateMultipartUpload).",
            min_length=1,
        ),
        Says(**{"*": "uploadId must be a non-empty string"}),
    ] = None
    expires_in: Annotated[
        int | None,
        Field(
            description="Seconds; capped at the upload URL lifetime.",
            json_schema_extra={"minimum": 1},
        ),
        Says(**{"*": "expiresIn must be an integer number of seconds"}),
    ] = None
    part_number: Annotated[
        UppyPartNumber | None,
        Field(description="With PUT + uploadId: UploadPart."),
        Says(**{"*": _PART}),
    ] = None

    @model_validator(mode="after")
    def _an_upload_request(self) -> UppySignRequest:
        if self.upload_id is None and self.method not in {"PUT", "POST"}:
            raise _refuse(
                f"{self.method} without uploadId is not an upload request; "
                "delete a timelapse with DELETE /timelapses/{id}"
            )
        return self

    def create_fields(self) -> dict[str, Any]:
        """What the front end passed for a create, completed from Uppy's proposed key."""
        # contentType stays: Uppy passes the file's type for a PUT, the front end may pass it.
        return fields_from_uppy_key(self.key, dict(self.model_extra or {}))


# Uppy 6's own object key for a file: `<random UUID>-<file name>`.
UPPY_KEY_PREFIX = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-")


def fields_from_uppy_key(key: str, fields: dict[str, Any]) -> dict[str, Any]:
    """What Uppy's proposed key tells of the file when the front end passed nothing else: Uppy 6
    names a file's key `<uuid>-<file name>`, so the name, and from its extension the type a
    browser gives such a file (the presigned request is signed for that Content-Type)."""
    name = UPPY_KEY_PREFIX.sub("", key.rsplit("/", maxsplit=1)[-1])
    found = dict(fields)
    if "filename" not in found and _usable_name(name):
        found["filename"] = name
    if "contentType" not in found:
        found["contentType"] = type_for_extension(filename_extension(found.get("filename"))) or ""
    return found


def _usable_name(name: str) -> bool:
    try:
        return bool(name) and len(name) <= rules.MAX_FILENAME and bool(rules.safe_filename(name))
    except ValidationError:
        return False


def uppy_part_number(raw: Any) -> int:
    return parse(_UppyPart, {"partNumber": raw}).part_number


class _UppyPart(_Input):
    part_number: UppyPartNumber


# Companion metadata that describes the timelapse: values arrive as strings ("123", "true").
NUMERIC_METADATA = ("sizeBytes", "targetSeconds", "durationMinutes", "speed", "fps")
TEXT_METADATA = ("projectId", "filename", "callbackUrl", "resolution")
FLAG_METADATA = ("skipIdle", "timestamp", "deflicker")
# The create fields Uppy 4–5 passes as `metadata[name]` query parameters (GET /s3/params).
COMPANION_METADATA = (*TEXT_METADATA[:1], *NUMERIC_METADATA, *TEXT_METADATA[1:], *FLAG_METADATA)


def _numeric(value: Any) -> Any:
    """Companion metadata arrives as strings ("123"); other values are left to the create."""
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if not math.isfinite(number):
            return number
        return int(number) if number.is_integer() and "." not in value else number
    return value


def _flag(value: Any) -> Any:
    """ "true"/"false" (metadata travels as text) as booleans; other values left to the create."""
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


def _metadata_schema(schema: dict[str, Any]) -> None:
    create = UppyCreateFields.model_json_schema(ref_template="#/components/schemas/{model}")
    properties = {}
    for name in COMPANION_METADATA:
        field = create["properties"][name]
        kind = next(k for k in field.get("anyOf", [field]) if k != {"type": "null"})
        kind = {
            k: v for k, v in {**field, **kind}.items() if k not in {"title", "anyOf", "default"}
        }
        properties[name] = kind if name in TEXT_METADATA else {"anyOf": [kind, {"type": "string"}]}
    schema.pop("anyOf", None)
    schema.pop("default", None)
    schema.update(
        {
            "type": "object",
            "properties": properties,
            "required": ["projectId"],
            "description": "Uppy's file meta (values arrive as strings); other fields are ignored.",
        }
    )


def _text(max_length: int) -> Callable[[dict[str, Any]], None]:
    def schema(found: dict[str, Any]) -> None:
        found.pop("default", None)
        found.update({"type": "string", "maxLength": max_length})

    return schema


class CompanionCreateRequest(BaseModel):
    """Uppy 4–5's `{filename, type, metadata}`: the create's fields, checked as a create's."""

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        strict=True,
        # Both are needed in the end: the create refuses a missing contentType or projectId.
        json_schema_extra={"required": ["type", "metadata"]},
    )

    metadata: Annotated[
        dict[str, Any] | None,
        Field(json_schema_extra=_metadata_schema),
        Says(**{"*": "metadata must be an object"}),
    ] = None
    # Passed on to the create as they came: its refusals are the create's.
    filename: Annotated[Any, Field(json_schema_extra=_text(rules.MAX_FILENAME))] = None
    type: Annotated[
        Any,
        Field(
            description="The file's content type.",
            json_schema_extra=_text(rules.MAX_CONTENT_TYPE),
        ),
    ] = None

    def create_fields(self) -> dict[str, Any]:
        return companion_create_fields(self.filename, self.type, self.metadata or {})


def companion_create_fields(
    filename: Any, content_type: Any, metadata: dict[str, Any]
) -> dict[str, Any]:
    """A create body from Uppy 4–5's `{filename, type, metadata}`."""
    fields = {name: _numeric(metadata[name]) for name in NUMERIC_METADATA if name in metadata}
    fields.update({name: metadata[name] for name in TEXT_METADATA if name in metadata})
    fields.update({name: _flag(metadata[name]) for name in FLAG_METADATA if name in metadata})
    fields["contentType"] = content_type
    if filename:
        fields.setdefault("filename", filename)
    return fields


def companion_create(raw: Any) -> dict[str, Any]:
    """The create fields of a Companion create body (POST /s3/multipart)."""
    return parse(CompanionCreateRequest, raw).create_fields()


def companion_query(query: dict[str, str]) -> dict[str, Any]:
    """GET /s3/params: `metadata[name]` query parameters carry the metadata."""
    return parse(CompanionParamsQuery, query).create_fields()


def _metadata_parameter(name: str, description: str = "Optional.") -> Any:
    return Field(default=None, alias=f"metadata[{name}]", description=description)


class CompanionParamsQuery(BaseModel):
    """Uppy 4–5's query for a single PUT (GET /s3/params): the file and its meta as text. Left to
    the create to refuse, with the create's messages."""

    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        json_schema_extra={"required": ["type", "metadata[projectId]"]},
    )

    filename: str | None = Field(default=None, description="The file's name.")
    type: str | None = Field(default=None, description="Content type.")
    project_id: str | None = _metadata_parameter("projectId", "The project.")
    size_bytes: str | None = Field(
        default=None,
        alias="metadata[sizeBytes]",
        description="Optional: `file.size`.",
        json_schema_extra={"pattern": r"^\d+$"},
    )
    target_seconds: str | None = _metadata_parameter("targetSeconds")
    duration_minutes: str | None = _metadata_parameter("durationMinutes")
    callback_url: str | None = _metadata_parameter("callbackUrl")
    meta_filename: str | None = _metadata_parameter("filename", "Optional: wins over `filename`.")
    speed: str | None = _metadata_parameter("speed")
    fps: str | None = _metadata_parameter("fps")
    resolution: str | None = _metadata_parameter("resolution")
    skip_idle: str | None = _metadata_parameter("skipIdle")
    timestamp: str | None = _metadata_parameter("timestamp")
    deflicker: str | None = _metadata_parameter("deflicker")

    def create_fields(self) -> dict[str, Any]:
        given = self.model_dump(by_alias=True, exclude_none=True)
        metadata = {
            name[len("metadata[") : -1]: value
            for name, value in given.items()
            if name.startswith("metadata[")
        }
        return companion_create_fields(self.filename, self.type, metadata)


class KeyQuery(BaseModel):
    """A Companion route's object key, `?key=` (Uppy URL-encodes it)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    key: Annotated[
        str,
        Field(description=UPPY_KEY, min_length=1),
        Says(**{"*": "the key query parameter is required"}),
    ]


# Every request model, for the OpenAPI document's components (named by their class names).
MODELS: tuple[type[BaseModel], ...] = (
    CreateTimelapseRequest,
    PartNumbersRequest,
    CompleteUploadRequest,
    CompletedPart,
    UppySignRequest,
    CompanionCreateRequest,
)
