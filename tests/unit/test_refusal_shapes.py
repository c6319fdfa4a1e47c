"""Malformed requests at the handler boundary (chalice.test.Client, no sockets): each is refused
with a 4xx in lapse's `{"error": {code, message}}` shape, and path parameters arrive decoded."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib import wiring
from chalicelib.adapters.auth import HS256Verifier, make_local_token
from chalicelib.domain.limits import Limits
from chalicelib.services.timelapses import Page, TimelapseService

TOKEN = {"Authorization": f"Bearer {make_local_token('alice', 'local-dev-secret')}"}
JSON = {**TOKEN, "Content-Type": "application/json"}


class Untouchable:
    """A port that must not be used: a refused request opens, stores and sends nothing."""

    bucket = "untouched"

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} called for a request that should have been refused")


@pytest.fixture(autouse=True)
def _wired(monkeypatch: pytest.MonkeyPatch) -> None:
    # chalice.test.Client exports the dev stage's settings (OIDC); these tests sign HS256 tokens.
    monkeypatch.setattr(wiring, "token_verifier", lambda: HS256Verifier("local-dev-secret"))
    untouchable: Any = Untouchable()
    service = TimelapseService(untouchable, untouchable, untouchable, Limits(), untouchable)
    monkeypatch.setattr(wiring, "timelapse_service", lambda: service)


def error_of(answer: Any, status: int) -> dict[str, str]:
    assert answer.status_code == status, answer.body
    error = json.loads(answer.body)["error"]
    assert set(error) == {"code", "message"}
    assert error["message"]
    return dict(error)


@pytest.mark.parametrize("content_type", ["application/xml", "multipart/form-data; boundary=x"])
def test_a_body_type_chalice_refuses_is_a_415_in_lapses_shape(content_type: str) -> None:
    with Client(app) as client:
        answer = client.http.post(
            "/timelapses", headers={**TOKEN, "Content-Type": content_type}, body="{}"
        )
    assert error_of(answer, 415)["code"] == "unsupported_media_type"


def test_a_method_the_route_lacks_is_a_405_in_lapses_shape() -> None:
    with Client(app) as client:
        answer = client.http.put("/timelapses/abc", headers=JSON, body="{}")
    assert error_of(answer, 405)["code"] == "method_not_allowed"


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_a_400(depth: int) -> None:
    with Client(app) as client:
        answer = client.http.post("/timelapses", headers=JSON, body="[" * depth + "]" * depth)
    error = error_of(answer, 400)
    assert error["code"] == "invalid_request"


@pytest.mark.parametrize(
    "raw",
    [
        '{"projectId": "p", "contentType": "video/mp4", "sizeBytes": 10, "durationMinutes": 1e300}',
        '{"projectId": "p", "contentType": "video/mp4", "sizeBytes": 10, "targetSeconds": 1e999}',
        '{"projectId": "p", "contentType": "video/mp4", "sizeBytes": 10, "durationMinutes": NaN}',
        '{"projectId": "p", "contentType": "video/mp4", "sizeBytes": 1' + "0" * 5000 + "}",
    ],
    ids=["1e300", "1e999-is-infinity", "NaN", "5000-digit-int"],
)
def test_huge_and_non_finite_numbers_are_a_400(raw: str) -> None:
    with Client(app) as client:
        answer = client.http.post("/timelapses", headers=JSON, body=raw)
    assert error_of(answer, 400)["code"] == "invalid_request"


class ListingOnly:
    """Just enough of TimelapseService for the listing route: records what it was asked."""

    def __init__(self) -> None:
        self.projects: list[str] = []

    def list_project(self, owner: str, project_id: str, **query: object) -> Page:
        self.projects.append(project_id)
        return Page([], None)


@pytest.mark.parametrize(
    ("path", "project"),
    [
        ("my%20project", "my project"),
        ("B%C3%BCro", "Büro"),
        ("%E6%97%A5%E6%9C%AC", "日本"),
        ("100%25", "100%"),
    ],
)
def test_path_parameters_are_percent_decoded_once(
    monkeypatch: pytest.MonkeyPatch, path: str, project: str
) -> None:
    service = ListingOnly()
    monkeypatch.setattr(wiring, "timelapse_service", lambda: service)
    with Client(app) as client:
        answer = client.http.get(f"/projects/{path}/timelapses", headers=TOKEN)
    assert answer.status_code == 200, answer.body
    assert service.projects == [project]
