"""GET /docs: the reference page and its vendored script, served in-process (no sockets)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from chalice.test import Client

from app import app
from chalicelib.reference import BUNDLE, STATIC

ROOT = Path(__file__).resolve().parents[2]


def test_the_page_is_html_that_loads_the_served_document_with_the_served_script() -> None:
    with Client(app) as client:
        answer = client.http.get("/docs")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/html")
    page = answer.body.decode()
    # Relative URLs, so the page also works under API Gateway's stage prefix.
    assert f'<script src="docs/{BUNDLE}"></script>' in page
    assert 'Redoc.init("openapi.json"' in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page), (
        "the page loads nothing from elsewhere"
    )


def test_the_script_is_the_vendored_bundle() -> None:
    with Client(app) as client:
        answer = client.http.get(f"/docs/{BUNDLE}")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/javascript")
    assert answer.body == (STATIC / BUNDLE).read_bytes()


def test_the_vendored_bundle_is_the_version_the_lock_file_pins() -> None:
    lock = json.loads((ROOT / "vendor" / "redoc" / "package-lock.json").read_text())
    pinned = lock["packages"]["node_modules/redoc"]["version"]
    notice = (STATIC / f"{BUNDLE}.LICENSE.txt").read_text()
    assert f'Version: "{pinned}"' in notice
    assert (STATIC / BUNDLE).stat().st_size < 2 * 1024 * 1024
