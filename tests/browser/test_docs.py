"""GET /docs in Chromium: Redoc, served with the API, renders every operation of /openapi.json,
and the page asks nothing of any host but the API's."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
from playwright.sync_api import Page, Route, expect

from tests.e2e.conftest import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

HTTP_METHODS = {"get", "put", "post", "delete", "patch"}


def test_the_reference_renders_every_operation_of_the_served_document(
    page: Page, stack: RunningStack
) -> None:
    api = stack.config.api_url
    document = requests.get(f"{api}/openapi.json", timeout=10).json()
    summaries = {
        operation["summary"]
        for item in document["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }
    elsewhere: list[str] = []

    def only_the_api(route: Route) -> None:
        if urlsplit(route.request.url).netloc == urlsplit(api).netloc:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    # Given the browser may reach only the API
    page.route("http*://**", only_the_api)
    # When a person opens /docs
    page.goto(f"{api}/docs")
    # Then the reference shows the API's title and lists every documented operation
    # (Redoc parses the whole document in the browser first: seconds on a loaded machine)
    expect(page.locator("h1").first).to_contain_text(document["info"]["title"], timeout=60_000)
    menu = page.locator("[role=menuitem]")
    expect(menu.first).to_be_visible(timeout=30_000)
    labels = set(menu.all_inner_texts())
    missing = {s for s in summaries if not any(s in label for label in labels)}
    assert not missing, f"operations not listed: {missing}"
    assert elsewhere == [], "the page fetched from another host"
