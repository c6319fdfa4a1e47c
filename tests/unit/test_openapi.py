"""The OpenAPI document agrees with the Chalice app and with what the use cases really answer.

No sockets, no AWS: the routes come from `app.routes`, /health and /openapi.json run in-process
through chalice.test.Client, and response bodies come from the real TimelapseService wired to small
in-memory fakes, then are validated against the documented schemas. A route added to the app
registered other than from the route table (chalicelib/routes.py) fails here.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from chalice.test import Client
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from app import app
from chalicelib import api, errors, inputs, wire, wiring
from chalicelib.domain import requests as rules
from chalicelib.domain.limits import GiB, Limits, MiB
from chalicelib.domain.timelapse import (
    ErrorInfo,
    Stage,
    Status,
    Timelapse,
)
from chalicelib.domain.webhooks import CallbackPolicy
from chalicelib.openapi import ERROR_RESPONSES, openapi_document
from chalicelib.routes import BY_NAME, ROUTES, Route
from chalicelib.services.ports import NoNotifier, PresignedUrl, StoredPart
from chalicelib.services.timelapses import TimelapseService
from chalicelib.services.uppy import S3Request, UppyService
from tests.factories import a_timelapse

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
PUBLIC = {route.path for route in ROUTES if route.public}
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]


DOC = openapi_document()
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


# --- helpers --------------------------------------------------------------------------------


def app_routes() -> dict[tuple[str, str], Any]:
    return {
        (method, path): entry
        for path, methods in app.routes.items()
        for method, entry in methods.items()
        if method != "OPTIONS"
    }


def doc_operations() -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in DOC["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS and method != "options"
    }


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = DOC["components"][section][name]
    return node


def path_parameters(path: str, method: str) -> list[dict[str, Any]]:
    item = DOC["paths"][path]
    params = [resolve(p) for p in item.get("parameters", [])]
    params += [resolve(p) for p in item[method.lower()].get("parameters", [])]
    return [p for p in params if p["in"] == "path"]


def validator(schema: dict[str, Any]) -> Any:
    """A validator for `schema` whose #/components/... references resolve against DOC."""
    root = {**schema, "components": DOC["components"]}
    return OAS31Validator(root, format_checker=OAS31Validator.FORMAT_CHECKER)


def named(name: str) -> Any:
    return validator({"$ref": f"#/components/schemas/{name}"})


def assert_valid(name: str, instance: Any) -> None:
    found = [e.message for e in named(name).iter_errors(instance)]
    assert not found, f"{name}: {found}"


def response_schema(method: str, path: str, status: int) -> dict[str, Any]:
    response = resolve(DOC["paths"][path][method.lower()]["responses"][str(status)])
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def request_schema(method: str, path: str) -> dict[str, Any]:
    body = DOC["paths"][path][method.lower()]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema


def make_timelapse(**changes: Any) -> Timelapse:
    return a_timelapse(created_at=NOW, updated_at=NOW, **changes)


def complete_timelapse() -> Timelapse:
    return make_timelapse(
        status=Status.COMPLETE,
        stage=None,
        progress=100,
        filename="walk.mp4",
        duration_minutes=95,
        target_seconds=45.5,
        callback_url="https://example.com/hook",
        processed_video_key="timelapses/0193f0c2-0000-4000-8000-000000000001.mp4",
        poster_key="posters/0193f0c2-0000-4000-8000-000000000001.jpg",
        source={
            "width": 1080,
            "height": 1920,
            "fps": 29.97,
            "durationSeconds": 5700.0,
            "codec": "h264",
            "sizeBytes": 1234,
            "rotation": 90,
        },
        output={
            "width": 1080,
            "height": 1920,
            "fps": 30,
            "durationSeconds": 45.5,
            "sizeBytes": 999,
            "speedup": 125.27,
        },
        attempts=1,
        started_at=NOW,
        completed_at=NOW + timedelta(minutes=3),
    )


class FakeStorage:
    bucket = "lapse-test"

    def __init__(self) -> None:
        self.parts: list[StoredPart] = []

    def _signed(self, what: str, seconds: int) -> PresignedUrl:
        return PresignedUrl(f"https://storage.test/{what}", NOW + timedelta(seconds=seconds))

    def presign_put(
        self, key: str, *, content_type: str, size_bytes: int, seconds: int
    ) -> PresignedUrl:
        return self._signed(key, seconds)

    def presign_part(self, key: str, upload_id: str, part_number: int, seconds: int) -> Any:
        return self._signed(f"{key}?partNumber={part_number}", seconds)

    def presign_get(self, key: str, seconds: int, *, filename: str | None = None) -> Any:
        return self._signed(key, seconds)

    def create_multipart(self, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        return "upload-1"

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        return list(self.parts)

    def complete_multipart(self, key: str, upload_id: str, parts: Any) -> None:
        return None

    def abort_multipart(self, key: str, upload_id: str) -> None:
        return None

    def list_multipart_uploads(self, prefix: str = "") -> list[tuple[str, str]]:
        return []


class FakeRecords:
    def __init__(self) -> None:
        self.items: dict[str, Timelapse] = {}

    def create(self, timelapse: Timelapse) -> None:
        self.items[timelapse.id] = timelapse

    def get_owned(self, timelapse_id: str, owner_id: str) -> Timelapse:
        found = self.items.get(timelapse_id)
        if found is None or found.owner_id != owner_id:
            raise errors.NotFoundError(f"no timelapse {timelapse_id}")
        return found

    def list_by_project(
        self, owner_id: str, project_id: str, *, limit: int, cursor: Any = None, status: Any = None
    ) -> tuple[list[Timelapse], str | None]:
        found = [
            t for t in self.items.values() if (t.owner_id, t.project_id) == (owner_id, project_id)
        ]
        return found[:limit], "next-page" if len(found) > limit else None

    def bind_client_upload(self, timelapse_id: str, upload_id: str) -> Timelapse:
        found = self.items[timelapse_id]
        if found.stage is not Stage.AWAITING_UPLOAD or found.client_upload_id not in {
            None,
            upload_id,
        }:
            raise errors.ConflictError("another upload is bound")
        self.items[timelapse_id] = replace(found, client_upload_id=upload_id)
        return self.items[timelapse_id]

    def cancel(self, timelapse_id: str, error: ErrorInfo) -> Timelapse:
        cancelled = replace(
            self.items[timelapse_id], status=Status.CANCELLED, stage=None, error=error
        )
        self.items[timelapse_id] = cancelled
        return cancelled


class FakeQueue:
    def send_process(self, timelapse_id: str) -> None:
        return None


@pytest.fixture
def service() -> TimelapseService:
    return TimelapseService(
        records=FakeRecords(),  # type: ignore[arg-type]
        storage=FakeStorage(),  # type: ignore[arg-type]
        queue=FakeQueue(),
        limits=Limits(),
        notifier=NoNotifier(),
    )


# --- the document itself --------------------------------------------------------------------


def test_the_document_is_valid_openapi_3_1() -> None:
    assert DOC["openapi"].startswith("3.1.")
    validate(DOC)


def test_the_document_is_json() -> None:
    assert json.loads(json.dumps(DOC)) == DOC


def test_every_reference_resolves() -> None:
    refs = re.findall(r'"\$ref": "([^"]+)"', json.dumps(DOC))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/")
        resolve({"$ref": ref})


# --- routes ---------------------------------------------------------------------------------


def test_documented_routes_are_exactly_the_apps_routes() -> None:
    assert set(doc_operations()) == set(app_routes())


def test_operation_ids_name_the_handlers() -> None:
    operations = doc_operations()
    for key, entry in app_routes().items():
        assert operations[key]["operationId"] == entry.view_name, key


@pytest.mark.parametrize(("method", "path"), sorted(app_routes()))
def test_path_parameters_match(method: str, path: str) -> None:
    entry = app_routes()[(method, path)]
    documented = path_parameters(path, method)
    assert [p["name"] for p in documented] == list(entry.view_args)
    assert re.findall(r"{(\w+)}", path) == list(entry.view_args)
    assert all(p["required"] is True for p in documented)


@pytest.mark.parametrize(("method", "path"), sorted(app_routes()))
def test_every_route_is_registered_from_the_table(method: str, path: str) -> None:
    # So its success status is the table's: the view answers with route.success (api.endpoint).
    entry = app_routes()[(method, path)]
    route = BY_NAME[entry.view_name]
    assert entry.view_function.route is route
    assert (route.method, route.path) == (method, path)


def test_the_table_names_each_route_once() -> None:
    assert len(BY_NAME) == len(ROUTES)
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)


@pytest.mark.parametrize("route", [r for r in ROUTES if r.public], ids=lambda r: r.name)
def test_public_routes_answer_their_success_status(route: Route) -> None:
    with Client(app) as client:
        answer = client.http.request(route.method, route.path)
    assert answer.status_code == route.success
    assert answer.headers["Content-Type"].startswith(route.media_type)


@pytest.mark.parametrize(("method", "path"), sorted(app_routes()))
def test_refusals_are_the_apis_error_statuses(method: str, path: str) -> None:
    responses = doc_operations()[(method, path)]["responses"]
    refusals = {int(s) for s in responses if not s.startswith("2")}
    assert refusals <= {*api.HTTP_STATUS.values(), 500}
    for status in refusals:
        schema = resolve(response_schema(method, path, status))
        assert schema == DOC["components"]["schemas"]["Error"]
    if path not in PUBLIC:
        assert {401, 500} <= refusals


def test_error_responses_carry_the_codes_api_py_maps() -> None:
    assert {kind: status for status, (kind, _) in ERROR_RESPONSES.items()} == api.HTTP_STATUS
    for status, (kind, _) in ERROR_RESPONSES.items():
        example = DOC["components"]["responses"][f"Error{status}"]["content"]["application/json"]
        assert example["example"]["error"]["code"] == kind.code
        assert_valid("Error", example["example"])


# --- security -------------------------------------------------------------------------------


def test_bearer_jwt_on_every_route_but_health_and_the_document() -> None:
    scheme = DOC["components"]["securitySchemes"]["bearerAuth"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    for (method, path), operation in doc_operations().items():
        effective = operation.get("security", DOC.get("security"))
        assert effective == ([] if path in PUBLIC else BEARER), (method, path)


# --- in-process: the two routes that need no AWS --------------------------------------------


def test_health_answers_what_is_documented() -> None:
    with Client(app) as client:
        answer = client.http.get("/health")
    assert answer.status_code == BY_NAME["health"].success
    assert_valid("Health", json.loads(answer.body))


def test_the_api_serves_this_document() -> None:
    with Client(app) as client:
        answer = client.http.get("/openapi.json")
    assert answer.status_code == BY_NAME["openapi"].success
    assert answer.headers["Content-Type"] == "application/json"
    assert json.loads(answer.body) == DOC


# --- the timelapse resource -----------------------------------------------------------------


def test_timelapse_schema_properties_are_the_as_api_keys() -> None:
    schema = DOC["components"]["schemas"]["Timelapse"]
    keys = set(wire.timelapse(make_timelapse()))
    assert set(schema["properties"]) == keys
    assert set(schema["required"]) == keys


@pytest.mark.parametrize(
    "timelapse",
    [
        make_timelapse(),
        make_timelapse(stage=None, process=False),
        make_timelapse(status=Status.PROCESSING, stage=Stage.RENDERING, progress=40, attempts=1),
        make_timelapse(status=Status.CANCELLED, stage=None, error=ErrorInfo("cancelled", "x")),
        complete_timelapse(),
    ],
    ids=["pending", "idle", "processing", "cancelled", "complete"],
)
def test_as_api_validates_against_the_timelapse_schema(timelapse: Timelapse) -> None:
    assert_valid("Timelapse", wire.timelapse(timelapse))


def test_timelapse_enums_are_the_domains() -> None:
    schemas = DOC["components"]["schemas"]
    properties = schemas["Timelapse"]["properties"]
    assert resolve(properties["status"])["enum"] == [s.value for s in Status]
    stage, null = properties["stage"]["anyOf"]
    assert resolve(stage)["enum"] == [s.value for s in Stage]
    assert null == {"type": "null"}
    assert "enum" not in properties["contentType"]  # advisory: any video/* is kept as declared


# --- real use-case answers against the response schemas -------------------------------------


def create(service: TimelapseService, size: int) -> dict[str, Any]:
    body = {"projectId": "p-42", "contentType": "video/mp4", "sizeBytes": size}
    command = inputs.create_command(body, service.limits, service.callbacks)
    return wire.created(service.create("user-1", command))


def test_create_answers_match_the_201_schema(service: TimelapseService) -> None:
    schema = validator(response_schema("POST", "/timelapses", 201))
    small = create(service, 5 * MiB)
    large = create(service, 3 * GiB)
    for answer in (small, large):
        assert not [e.message for e in schema.iter_errors(answer)]
    assert small["upload"]["method"] == "PUT"
    assert large["upload"]["method"] == "multipart"
    # The discriminator really discriminates: a PUT form is no multipart form, and back.
    assert not named("PutUpload").is_valid(large["upload"])
    assert not named("MultipartUpload").is_valid(small["upload"])


def test_get_answer_matches_the_200_schema(service: TimelapseService) -> None:
    records: Any = service.records
    for timelapse in (make_timelapse(), complete_timelapse()):
        records.create(timelapse)
        answer = wire.with_urls(service.get("user-1", timelapse.id))
        assert set(answer) == {*wire.timelapse(timelapse), "urls"}
        found = validator(response_schema("GET", "/timelapses/{timelapse_id}", 200))
        assert not [e.message for e in found.iter_errors(answer)]


def test_list_answer_matches_the_200_schema(service: TimelapseService) -> None:
    for _ in range(3):
        create(service, 10)
    query = inputs.list_query({"limit": "2"})
    answer = wire.page(service.list_project("user-1", "p-42", limit=query.limit))
    assert len(answer["items"]) == 2
    assert answer["nextCursor"]
    schema = validator(response_schema("GET", "/projects/{project_id}/timelapses", 200))
    assert not [e.message for e in schema.iter_errors(answer)]


def test_multipart_answers_match_their_schemas(service: TimelapseService) -> None:
    size = 150 * MiB
    timelapse_id = create(service, size)["timelapse"]["id"]
    part_size = 10 * MiB
    storage: Any = service.storage
    storage.parts = [StoredPart(n, f'"etag-{n}"', part_size) for n in range(1, 16)]
    base = "/timelapses/{timelapse_id}/upload"

    uploading = service.awaiting_multipart("user-1", timelapse_id)
    numbers = inputs.part_numbers({"partNumbers": [3, 1, 3]}, part_count=15)
    signed = wire.part_urls(service.sign_parts(uploading, numbers))
    assert not list(validator(response_schema("POST", f"{base}/parts", 200)).iter_errors(signed))

    status = wire.upload_state(service.upload_status("user-1", timelapse_id))
    assert not list(validator(response_schema("GET", base, 200)).iter_errors(status))

    done = wire.envelope(service.complete_upload(uploading, None))
    assert not list(validator(response_schema("POST", f"{base}/complete", 202)).iter_errors(done))


def test_cancel_answer_matches_the_202_schema(service: TimelapseService) -> None:
    timelapse_id = create(service, 10)["timelapse"]["id"]
    answer = wire.envelope(service.cancel("user-1", timelapse_id))
    schema = validator(response_schema("POST", "/timelapses/{timelapse_id}/cancel", 202))
    assert not [e.message for e in schema.iter_errors(answer)]


# --- request schemas refuse (400) exactly what the parsers refuse ---------------------------

OK_CREATE = {"projectId": "p-42", "contentType": "video/mp4", "sizeBytes": 1}


def parse_create_status(body: Any) -> int:
    try:
        inputs.create_command(body, Limits(), CallbackPolicy())
    except errors.LapseError as exc:
        return api.HTTP_STATUS[type(exc)]
    return 201


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({}, 201),
        (
            {
                "filename": "walk.mp4",
                "durationMinutes": 95.5,
                "targetSeconds": 600,
                "process": False,
                "callbackUrl": "https://example.com/hook",
                "unknown": 1,
            },
            201,
        ),
        ({"filename": None, "durationMinutes": None, "targetSeconds": None}, 201),
        ({"callbackUrl": None}, 201),
        ({"targetSeconds": 1}, 201),
        ({"targetSeconds": 0.5}, 400),
        ({"targetSeconds": 600.5}, 400),
        ({"targetSeconds": "30"}, 400),
        ({"sizeBytes": 0}, 400),
        ({"sizeBytes": "1"}, 400),
        ({"sizeBytes": 1.5}, 400),
        ({"sizeBytes": True}, 400),
        ({"sizeBytes": 50 * GiB}, 201),
        ({"sizeBytes": 50 * GiB + 1}, 413),
        ({"projectId": "x" * 128}, 201),
        ({"projectId": "x" * 129}, 400),
        ({"projectId": "a/b"}, 400),
        ({"projectId": "a#b"}, 400),
        ({"projectId": "a\\b"}, 400),
        ({"projectId": "   "}, 400),
        ({"projectId": ""}, 400),
        ({"projectId": 42}, 400),
        ({"projectId": "my project"}, 201),
        ({"contentType": "VIDEO/QuickTime; codecs=hvc1"}, 201),
        ({"contentType": "video/ogg"}, 201),
        ({"contentType": "video/mp2t", "filename": "00001.MTS"}, 201),
        ({"contentType": "", "filename": "00001.MTS"}, 201),
        ({"contentType": "application/octet-stream", "filename": "a.m2ts"}, 201),
        ({"contentType": "model/vnd.mts", "filename": "00001.MTS"}, 201),
        ({"contentType": "model/vnd.mts", "filename": "a.obj"}, 415),
        ({"contentType": "model/vnd.mts"}, 415),
        ({"contentType": ""}, 415),
        ({"contentType": "image/png"}, 415),
        ({"contentType": "application/json"}, 415),
        ({"contentType": 4}, 400),
        ({"contentType": "x" * 101}, 400),
        ({"filename": "  "}, 400),
        ({"filename": "x" * 256}, 400),
        ({"durationMinutes": -1}, 400),
        ({"durationMinutes": "95"}, 400),
        ({"process": None}, 400),
        ({"process": "yes"}, 400),
        ({"callbackUrl": "ftp://example.com"}, 400),
        ({"callbackUrl": "https://" + "x" * 2048}, 400),
    ],
)
def test_create_body_schema_agrees_with_the_parser(changes: dict[str, Any], status: int) -> None:
    body = {**OK_CREATE, **changes}
    assert parse_create_status(body) == status
    schema = validator(request_schema("POST", "/timelapses"))
    assert schema.is_valid(body) == (status != 400)


def test_create_content_type_names_the_operating_systems_types_it_takes() -> None:
    described = resolve(request_schema("POST", "/timelapses"))["properties"]["contentType"]
    for kind, extensions in rules.OS_TABLE_TYPES.items():
        assert f"`{kind}` when `filename` ends in" in described["description"]
        assert parse_create_status({**OK_CREATE, "contentType": kind}) == 415
        for extension in extensions:
            body = {**OK_CREATE, "contentType": kind, "filename": f"a.{extension}"}
            assert parse_create_status(body) == 201


@pytest.mark.parametrize("missing", ["projectId", "contentType", "sizeBytes"])
def test_create_requires_its_fields(missing: str) -> None:
    body = {k: v for k, v in OK_CREATE.items() if k != missing}
    assert parse_create_status(body) == 400
    assert not validator(request_schema("POST", "/timelapses")).is_valid(body)


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({"partNumbers": [1]}, True),
        ({"partNumbers": list(range(1, 101))}, True),
        ({"partNumbers": list(range(1, 102))}, False),
        ({"partNumbers": []}, False),
        ({"partNumbers": [0]}, False),
        ({"partNumbers": [True]}, False),
        ({"partNumbers": "1"}, False),
        ({}, False),
        ([1], False),
    ],
)
def test_part_numbers_schema_agrees_with_the_parser(body: Any, ok: bool) -> None:
    try:
        inputs.part_numbers(body, part_count=500)
        parsed = True
    except errors.ValidationError:
        parsed = False
    assert parsed is ok
    schema = validator(request_schema("POST", "/timelapses/{timelapse_id}/upload/parts"))
    assert schema.is_valid(body) is ok


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        ({}, True),
        ({"parts": None}, True),
        ({"parts": [{"partNumber": 1, "etag": '"a"'}]}, True),
        ({"parts": [{"PartNumber": 1, "ETag": '"a"'}]}, True),
        ({"parts": [{"partNumber": 1, "ETag": '"a"'}]}, True),
        ({"parts": []}, False),
        ({"parts": [{"partNumber": 1}]}, False),
        ({"parts": [{"partNumber": 1, "etag": ""}]}, False),
        ({"parts": [{"partNumber": 0, "etag": "a"}]}, False),
        ({"parts": ["a"]}, False),
        ([], False),
    ],
)
def test_complete_body_schema_agrees_with_the_parser(body: Any, ok: bool) -> None:
    try:
        inputs.completed_parts(body, part_count=10)
        parsed = True
    except errors.ValidationError:
        parsed = False
    assert parsed is ok
    operation = DOC["paths"]["/timelapses/{timelapse_id}/upload/complete"]["post"]
    assert operation["requestBody"]["required"] is False
    schema = validator(request_schema("POST", "/timelapses/{timelapse_id}/upload/complete"))
    assert schema.is_valid(body) is ok


def test_list_query_parameters_agree_with_the_parser() -> None:
    params = {
        p["name"]: p
        for p in DOC["paths"]["/projects/{project_id}/timelapses"]["get"]["parameters"]
        if p["in"] == "query"
    }
    assert set(params) == {"limit", "cursor", "status"}
    limit = params["limit"]["schema"]
    assert inputs.list_query({}).limit == limit["default"] == 50
    for value in (0, 1, 50, 100, 101):
        try:
            inputs.list_query({"limit": str(value)})
            parsed = True
        except errors.ValidationError:
            parsed = False
        assert validator(limit).is_valid(value) is parsed, value
    assert params["status"]["schema"]["enum"] == [s.value for s in Status]
    assert all(inputs.list_query({"status": s}).status for s in params["status"]["schema"]["enum"])


# --- webhooks: documented exactly when they are delivered -----------------------------------


def test_webhooks_are_documented_once_they_are_delivered() -> None:
    delivered = not isinstance(wiring.notifier(), NoNotifier)
    assert ("webhooks" in DOC) is delivered
    if delivered:
        text = json.dumps(DOC["webhooks"])
        for event in ("timelapse.complete", "timelapse.failed", "timelapse.cancelled"):
            assert event in text
        assert "Lapse-Signature" in text


# --- Uppy: real answers of the Uppy use cases against their schemas ---------------------------


class UppyStorage(FakeStorage):
    def presign_request(self, method: str, params: dict[str, Any], seconds: int) -> PresignedUrl:
        return self._signed(f"{params['Key']}?{method}", seconds)


def test_uppy_answers_match_their_schemas() -> None:
    timelapses = TimelapseService(
        records=FakeRecords(),  # type: ignore[arg-type]
        storage=UppyStorage(),  # type: ignore[arg-type]
        queue=FakeQueue(),
        limits=Limits(),
        notifier=NoNotifier(),
    )
    uppy = UppyService(timelapses)
    # Uppy 6: what it sends validates as UppySignRequest; what lapse answers as UppySignedRequest
    create: dict[str, Any] = {
        "method": "POST",
        "key": "3f-a.mp4",
        "projectId": "p",
        "contentType": "video/mp4",
    }
    create["sizeBytes"] = 200 * MiB
    key = ""
    sign_schema = validator(request_schema("POST", "/uploads/sign"))
    signed_schema = validator(response_schema("POST", "/uploads/sign", 200))
    for template in (
        create,
        {"method": "PUT", "key": "{key}", "uploadId": "u-1", "partNumber": 2},
        {"method": "GET", "key": "{key}", "uploadId": "u-1"},
        {"method": "POST", "key": "{key}", "uploadId": "u-1"},
        {"method": "DELETE", "key": "{key}", "uploadId": "u-1"},
    ):
        body = {**template, "key": str(template["key"]).format(key=key)}
        sign_schema.validate(body)
        parsed = inputs.parse(inputs.UppySignRequest, body)
        request = S3Request(
            parsed.method, parsed.key, parsed.upload_id, parsed.part_number, parsed.expires_in
        )
        if request.upload_id is None:
            command = inputs.create_command(
                parsed.create_fields(), Limits(), CallbackPolicy(), size_required=False
            )
            new = uppy.sign_new_upload("user-1", request, command)
            answer = wire.uppy_signed(new, new.timelapse.original_video_key)
        else:
            answer = wire.uppy_signed(uppy.sign("user-1", request), request.key)
        signed_schema.validate(answer)
        key = answer["key"]
    # Uppy 4–5 (Companion)
    body = {
        "filename": "a.mp4",
        "type": "video/mp4",
        "metadata": {"projectId": "p", "sizeBytes": "9"},
    }
    validator(request_schema("POST", "/s3/multipart")).validate(body)
    fields = inputs.companion_create(body)
    command = inputs.create_command(fields, Limits(), CallbackPolicy(), size_required=False)
    opened = wire.companion_multipart(uppy.create_multipart("user-1", command))
    validator(response_schema("POST", "/s3/multipart", 200)).validate(opened)
    key, upload_id = opened["key"], opened["uploadId"]
    path = "/s3/multipart/{upload_id}"
    uploading = uppy.uploading("user-1", key, upload_id)
    signed = wire.companion_signed_part(*uppy.sign_part(uploading, upload_id, 1))
    validator(response_schema("GET", f"{path}/{{part_number}}", 200)).validate(signed)
    timelapses.storage.parts = [StoredPart(1, '"etag"', 9)]  # type: ignore[attr-defined]
    listed = wire.companion_parts(uppy.list_parts("user-1", upload_id, key))
    assert listed == [{"PartNumber": 1, "ETag": '"etag"', "Size": 9}]
    validator(response_schema("GET", path, 200)).validate(listed)
    complete = {"parts": [{"PartNumber": 1, "ETag": '"e"'}]}
    validator(request_schema("POST", f"{path}/complete")).validate(complete)
    parts = inputs.completed_parts(complete, part_count=inputs.MAX_PART_NUMBER)
    done = wire.companion_completed(uppy.complete(uploading, upload_id, parts))
    validator(response_schema("POST", f"{path}/complete", 200)).validate(done)
    query = {"filename": "a.mp4", "type": "video/mp4"}
    query |= {"metadata[projectId]": "p", "metadata[sizeBytes]": "9"}
    command = inputs.create_command(
        inputs.companion_query(query), Limits(), CallbackPolicy(), size_required=False
    )
    params = wire.companion_params(uppy.upload_parameters("user-1", command))
    validator(response_schema("GET", "/s3/params", 200)).validate(params)
    uppy.abort("user-1", upload_id, key)
    validator(response_schema("DELETE", path, 200)).validate(wire.empty())


# --- the models are the schemas -------------------------------------------------------------


@pytest.mark.parametrize("route", [r for r in ROUTES if r.body is not None], ids=lambda r: r.name)
def test_each_request_body_is_its_routes_model(route: Route) -> None:
    assert route.body is not None
    schema = request_schema(route.method, route.path)
    assert schema == {"$ref": f"#/components/schemas/{route.body.__name__}"}
    documented = set(DOC["components"]["schemas"][route.body.__name__]["properties"])
    aliases = {info.alias or name for name, info in route.body.model_fields.items()}
    assert aliases <= documented


def test_every_request_model_serves_a_route() -> None:
    used = {route.body for route in ROUTES if route.body is not None}
    nested = {inputs.CompletedPart}
    assert set(inputs.MODELS) == used | nested


def test_a_refusal_names_the_first_faulty_field_in_lapses_words() -> None:
    # Given a body wrong in two fields, the first in the model's order is the one refused
    body = {"projectId": 42, "contentType": "video/mp4", "sizeBytes": "many"}
    with pytest.raises(errors.ValidationError) as caught:
        inputs.create_command(body, Limits(), CallbackPolicy())
    assert caught.value.message == "projectId must be a non-empty string"
    # and a missing size is named before the options are looked at
    body = {"projectId": "p", "contentType": "video/mp4", "speed": 1}
    with pytest.raises(errors.ValidationError, match="sizeBytes is required"):
        inputs.create_command(body, Limits(), CallbackPolicy())


def test_only_the_declared_source_and_output_fields_reach_the_wire() -> None:
    # Given a record whose stored shapes carry what the worker keeps for itself
    record = complete_timelapse()
    record = replace(
        record,
        source={**(record.source or {}), "keyframeOffsets": [0, 2]},
        output={**(record.output or {}), "parts": 4},
    )
    # When it is answered, then source and output hold the contract's fields only
    body = wire.Timelapse.of(record).body()
    schemas = DOC["components"]["schemas"]
    assert "parts" not in body["output"]
    assert "keyframeOffsets" not in body["source"]
    assert set(body["output"]) <= set(schemas["OutputInfo"]["properties"])
    assert set(body["source"]) <= set(schemas["SourceInfo"]["properties"])
    assert body["output"]["speedup"] == record.output["speedup"]  # type: ignore[index]
