"""The OpenAPI document served at GET /openapi.json (kept in agreement with ../shared/API.md)."""

from __future__ import annotations

from typing import Any


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "lapse", "version": "1.0.0"},
        "paths": {},
    }
