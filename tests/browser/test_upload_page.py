"""The upload page (web/) in Chromium: sign in, upload straight to storage, watch, cancel, play."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import FilePayload, Page, expect

from tests.corpus import KINDS
from tests.e2e.conftest import RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ROOT = Path(__file__).resolve().parents[2]
# The README's picture; the tests refresh it only when asked, so a test run leaves the tree clean.
SCREENSHOT = (
    ROOT / ("docs" if os.environ.get("LAPSE_UPDATE_SCREENSHOT") else "build") / "upload-page.png"
)
# At least one part is in storage: the page kept its ETag for resuming.
STORED_PARTS = """Object.keys(localStorage).some(k => k.startsWith('lapse.upload:')
    && Object.keys(JSON.parse(localStorage.getItem(k)).etags).length > 0)"""


def _sign_in(page: Page, web_url: str, user: str) -> None:
    page.goto(web_url)
    page.fill("#user", user)
    page.click("#signin button")
    expect(page.locator("#who")).to_have_text(user)


def test_upload_a_video_watch_it_complete_and_play(page: Page, web_url: str, clip_5s: Path) -> None:
    # Given a signed-in user on the page served by the local stack
    _sign_in(page, web_url, "page-user")
    page.fill("#target", "3")
    # When they pick a video
    page.set_input_files("#file", str(clip_5s))
    # Then it uploads, is processed, and the page says so
    expect(page.locator("#status")).to_have_attribute("data-status", "complete", timeout=90_000)
    expect(page.locator("#detail")).to_contain_text("faster")
    # And the timelapse plays in the <video>, with its poster
    player = page.locator("#player")
    expect(player).to_be_visible()
    assert "posters/" in (player.get_attribute("poster") or "")
    assert "timelapses/" in (player.get_attribute("src") or "")
    page.evaluate("document.getElementById('player').play()")
    page.wait_for_function("document.getElementById('player').currentTime > 0.5", timeout=15_000)
    page.evaluate("p => { p.pause(); p.currentTime = 1.0 }", player.element_handle())
    page.wait_for_function("document.getElementById('player').readyState >= 2")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), type="png", full_page=True)


def test_cancel_during_upload(page: Page, web_url: str, clip_150mb: Path) -> None:
    _sign_in(page, web_url, "page-cancel")
    page.set_input_files("#file", str(clip_150mb))
    expect(page.locator("#status")).to_have_attribute("data-status", "uploading")
    page.click("#cancel")
    expect(page.locator("#status")).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#cancel")).to_be_hidden()


def test_multipart_upload_resumes_after_a_reload(
    page: Page, web_url: str, clip_150mb: Path, stack: RunningStack
) -> None:
    # Given a large file uploading in parts, with progress
    _sign_in(page, web_url, "page-resume")
    page.fill("#target", "2")
    page.set_input_files("#file", str(clip_150mb))
    expect(page.locator("#detail")).to_contain_text(re.compile(r"^[1-9]\d?% of 1\d\d\.\d MiB"))
    page.wait_for_function(STORED_PARTS)
    # When the page is reloaded before the upload is over
    page.reload()
    expect(page.locator("#resume")).to_contain_text(clip_150mb.name)
    # And the same file is picked again
    page.set_input_files("#file", str(clip_150mb))
    # Then the upload resumes from the parts storage already holds, and completes
    expect(page.locator("#detail")).to_contain_text(re.compile(r"resumed: [1-9]\d* of \d+ parts"))
    expect(page.locator("#status")).to_have_attribute("data-status", "complete", timeout=90_000)
    expect(page.locator("#resume")).to_be_hidden()


def test_the_option_controls_reach_the_timelapse(
    page: Page, web_url: str, stack: RunningStack, clip_5s: Path
) -> None:
    _sign_in(page, web_url, "page-options")
    page.fill("#speed", "5")
    page.select_option("#fps", "24")
    page.select_option("#resolution", "720p")
    page.check("#timestamp")
    page.check("#deflicker")
    page.set_input_files("#file", str(clip_5s))
    expect(page.locator("#status")).to_have_attribute("data-status", "complete", timeout=90_000)
    listed = stack.api("page-options").request("GET", "/projects/p-web/timelapses").json()
    record = listed["items"][0]
    assert (record["speed"], record["targetSeconds"]) == (5, None)
    assert record["options"] == {
        "fps": 24, "resolution": "720p", "skipIdle": False, "timestamp": True, "deflicker": True,
    }  # fmt: skip
    assert record["output"]["fps"] == 24


@pytest.mark.parametrize(
    ("filename", "label"),
    [
        # what Chromium or Firefox reading Debian's /etc/mime.types (or shared-mime-info) says
        ("00001.MTS", "model/vnd.mts"),
        ("00002.ts", "text/vnd.trolltech.linguist"),
    ],
)
def test_a_camcorder_file_the_system_mislabels_is_taken(
    page: Page, web_url: str, stack: RunningStack, tmp_path: Path, filename: str, label: str
) -> None:
    # Given an AVCHD clip whose type, as the browser gives it, does not say video
    data = KINDS["mts"].build(tmp_path).read_bytes()
    user = f"page-{filename.lower().replace('.', '-')}"
    _sign_in(page, web_url, user)
    page.fill("#target", "2")
    # When it is picked
    picked = FilePayload(name=filename, mimeType=label, buffer=data)
    page.set_input_files("#file", files=[picked])
    # Then it is created, uploaded and rendered
    expect(page.locator("#status")).to_have_attribute("data-status", "complete", timeout=90_000)
    listed = stack.api(user).request("GET", "/projects/p-web/timelapses").json()
    assert listed["items"][0]["filename"] == filename
