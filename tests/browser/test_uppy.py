"""Uppy 6 itself (the `uppy` package from the npm registry, its ESM bundle) in Chromium uploads
through web/lapse-uppy.js's signRequest: one file above 100 MiB (multipart), one below (PUT).

The page is web/uppy.html as the local stack serves it; the Uppy bundle it imports from the CDN is
answered from tests/browser/uppy/node_modules (installed by `npm ci`), so nothing leaves the host.
"""

from __future__ import annotations

import threading
from base64 import b64encode
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Page, Request, Route

from chalicelib.adapters.auth import make_local_token
from local.s3_form_put import refusal
from tests.corpus import KINDS
from tests.e2e.conftest import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

UPPY_BUNDLE = Path(__file__).parent / "uppy" / "node_modules" / "uppy" / "dist" / "uppy.min.mjs"
CDN = "https://releases.transloadit.com/uppy/"
MiB = 1024 * 1024


def _uppy_from_npm(route: Route) -> None:
    route.fulfill(path=UPPY_BUNDLE, content_type="text/javascript")


def test_uppy6_uploads_above_and_below_100_mib_through_sign_request(
    page: Page, web_url: str, stack: RunningStack, clip_5s: Path, clip_150mb: Path
) -> None:
    assert UPPY_BUNDLE.exists(), "run make test (npm ci in tests/browser/uppy)"
    small, large = clip_5s.stat().st_size, clip_150mb.stat().st_size
    assert large > 100 * MiB > small
    user = "uppy-user"
    # Given Uppy 6 in Chromium, with lapse's signRequest, on the page the local stack serves
    page.route(f"{CDN}**", _uppy_from_npm)
    token = make_local_token(user, "local-dev-secret")
    options = {"token": token, "project": "p-uppy-browser", "target": "2"}
    page.goto(f"{web_url}/uppy.html?{urlencode(options)}")
    page.wait_for_function("window.ready === true")
    # When the user picks both files
    page.set_input_files("#files", [str(clip_5s), str(clip_150mb)])
    page.wait_for_function("window.result !== undefined", timeout=150_000)
    result: dict[str, Any] = page.evaluate("window.result")
    signed: list[dict[str, Any]] = page.evaluate("window.signed")
    # Then Uppy reports both as uploaded, under the keys lapse chose
    assert result["failed"] == [], result
    by_name = {item["name"]: item for item in result["successful"]}
    assert set(by_name) == {clip_5s.name, clip_150mb.name}
    for item in by_name.values():
        assert item["key"] == f"videos/{item['timelapseId']}.mp4"
    # And Uppy asked lapse to sign one PUT for the small file, the multipart requests for the big
    shapes = [(s["method"], "uploadId" in s, "partNumber" in s) for s in signed]
    assert shapes.count(("PUT", False, False)) == 1  # PutObject
    assert shapes.count(("POST", False, False)) == 1  # CreateMultipartUpload
    assert shapes.count(("PUT", True, True)) == -(-large // (5 * MiB))  # UploadPart, 5 MiB each
    assert shapes.count(("POST", True, False)) == 1  # CompleteMultipartUpload
    assert {key for s in signed for key in s} <= {"method", "key", "uploadId", "partNumber"}
    # And both are processed to complete timelapses of the declared sizes
    api = stack.api(user)
    for name, size in ((clip_5s.name, small), (clip_150mb.name, large)):
        record = api.wait_for(by_name[name]["timelapseId"], timeout=90)
        assert record["status"] == "complete", record
        assert record["sizeBytes"] == size
        assert record["filename"] == name


CONTRACT_PAGE = Path(__file__).parent / "uppy" / "contract.html"


@pytest.fixture
def integrators_site() -> Iterator[str]:
    """The contract page on a loopback origin of its own, as an integrator's site would be."""
    page = CONTRACT_PAGE.read_bytes()

    class Site(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_uppy6_written_from_the_contract_alone_uploads_without_sizes(
    page: Page, integrators_site: str, stack: RunningStack, clip_5s: Path, clip_150mb: Path
) -> None:
    small, large = clip_5s.stat().st_size, clip_150mb.stat().st_size
    user = "uppy-contract"
    # Given a page that follows API.md literally: signRequest sends what Uppy gives plus projectId
    page.route(f"{CDN}**", _uppy_from_npm)
    options = {
        "api": stack.config.api_url,
        "token": make_local_token(user, "local-dev-secret"),
        "project": "p-contract",
    }
    page.goto(f"{integrators_site}/contract.html?{urlencode(options)}")
    page.wait_for_function("window.ready === true")
    # When the user picks a file below and one above 100 MiB
    page.set_input_files("#files", [str(clip_5s), str(clip_150mb)])
    page.wait_for_function("window.result !== undefined", timeout=150_000)
    result: dict[str, Any] = page.evaluate("window.result")
    signed: list[dict[str, Any]] = page.evaluate("window.signed")
    # Then Uppy uploaded both under lapse's keys, and nobody ever told lapse a size
    assert result["failed"] == [], result
    assert all("size" not in key.lower() for s in signed for key in s)
    shapes = [(s["method"], "uploadId" in s) for s in signed]
    assert ("PUT", False) in shapes  # PutObject
    assert ("POST", False) in shapes  # CreateMultipartUpload
    # And each is processed, its size taken from what storage holds
    api = stack.api(user)
    for item in result["successful"]:
        timelapse_id = item["key"].removeprefix("videos/").removesuffix(".mp4")
        record = api.wait_for(timelapse_id, timeout=90)
        assert record["status"] == "complete", record
        assert record["sizeBytes"] == {clip_5s.name: small, clip_150mb.name: large}[item["name"]]
        assert record["filename"] == item["name"]


def test_uppy6_option_controls_travel_as_metadata_to_the_timelapse(
    page: Page, web_url: str, stack: RunningStack, clip_5s: Path
) -> None:
    user = "uppy-options"
    # Given the Uppy page with lapse-uppy.js's option controls
    page.route(f"{CDN}**", _uppy_from_npm)
    token = make_local_token(user, "local-dev-secret")
    page.goto(f"{web_url}/uppy.html?{urlencode({'token': token, 'project': 'p-uppy-options'})}")
    page.wait_for_function("window.ready === true")
    # When the user asks for a speed instead of the length, 24 fps, 720p, skip idle and deflicker
    options = page.locator("#options")
    options.locator("[name=speed]").fill("2")
    options.locator("[name=fps]").select_option("24")
    options.locator("[name=resolution]").select_option("720p")
    options.locator("[name=skipIdle]").check()
    options.locator("[name=deflicker]").check()
    # And picks a file
    page.set_input_files("#files", [str(clip_5s)])
    page.wait_for_function("window.result !== undefined", timeout=60_000)
    result: dict[str, Any] = page.evaluate("window.result")
    assert result["failed"] == [], result
    # Then the timelapse carries every option, and is rendered with them
    record = stack.api(user).wait_for(result["successful"][0]["timelapseId"], timeout=90)
    assert (record["speed"], record["targetSeconds"]) == (2, None)
    assert record["options"] == {
        "fps": 24, "resolution": "720p", "skipIdle": True, "timestamp": False, "deflicker": True,
    }  # fmt: skip
    assert record["status"] == "complete", record
    assert record["output"]["fps"] == 24
    assert record["output"]["durationSeconds"] == pytest.approx(2.5, abs=0.2)


PICK_FILE = """({name, type, data}) => {
    const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0))
    const picked = new DataTransfer()
    picked.items.add(new File([bytes], name, { type }))
    const input = document.getElementById('files')
    input.files = picked.files
    input.dispatchEvent(new Event('change'))
}"""


@pytest.mark.parametrize(
    "label",
    # Firefox reading Debian's /etc/mime.types; Chromium, which names no type for .mts
    ["model/vnd.mts", ""],
)
def test_uppy6_puts_an_mts_with_the_type_its_url_was_signed_for(
    page: Page, web_url: str, stack: RunningStack, tmp_path: Path, label: str
) -> None:
    user = f"uppy-mts-{label.split('/', maxsplit=1)[0] or 'unlabelled'}"
    data = KINDS["mts"].build(tmp_path).read_bytes()
    # Given Uppy 6 with lapse's signRequest, and a camcorder file the browser labels so
    page.route(f"{CDN}**", _uppy_from_npm)
    sent: list[Request] = []
    page.on("request", lambda request: sent.append(request) if request.method == "PUT" else None)
    token = make_local_token(user, "local-dev-secret")
    page.goto(f"{web_url}/uppy.html?{urlencode({'token': token, 'project': 'p-uppy-mts'})}")
    page.wait_for_function("window.ready === true")
    # When it is picked (built in the page: Playwright would name a type for an empty one)
    page.evaluate(PICK_FILE, {"name": "00001.MTS", "type": label, "data": b64encode(data).decode()})
    page.wait_for_function("window.result !== undefined", timeout=60_000)
    result: dict[str, Any] = page.evaluate("window.result")
    assert result["failed"] == [], result
    # Then Uppy's PUT (its Content-Type is the file's, not lapse's answer) is the one its URL was
    # signed for: S3 refuses another (the local storage checks only form-encoded PUTs)
    (put,) = [request for request in sent if "/videos/" in request.url]
    url = urlsplit(put.url)
    environ = {
        "CONTENT_TYPE": put.header_value("content-type") or "",
        "CONTENT_LENGTH": str(len(data)),
        "HTTP_HOST": url.netloc,
        "RAW_URI": f"{url.path}?{url.query}",
        "QUERY_STRING": url.query,
    }
    assert refusal(environ) is None, (put.header_value("content-type"), put.url)
    record = stack.api(user).wait_for(result["successful"][0]["timelapseId"], timeout=90)
    assert record["status"] == "complete", record
