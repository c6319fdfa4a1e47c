"""The upload page's project view in Chromium: the project's timelapses newest first with their
status; the original plays while processing and the timelapse replaces it; the list survives a
reload; cancel and delete from the list."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import RunningStack, clip_slow

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

__all__ = ["clip_slow"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = (
    ROOT / ("docs" if os.environ.get("LAPSE_UPDATE_SCREENSHOT") else "build") / "project-page.png"
)


def test_the_project_lists_its_timelapses_plays_them_and_survives_a_reload(
    page: Page, web_url: str, stack: RunningStack, clip_slow: Path
) -> None:
    user, project = f"page-{uuid.uuid4().hex[:6]}", f"p-{uuid.uuid4().hex[:6]}"
    api = stack.api(user)
    # Given a signed-in user on a project that already holds an older timelapse
    older = api.create(1000, projectId=project, filename="older.mp4")["timelapse"]["id"]
    page.goto(f"{web_url}/?project={project}")
    page.fill("#user", user)
    page.click("#signin button")
    expect(page.locator("#project-name")).to_have_text(project)
    rows = page.locator("#timelapses > li")
    expect(rows).to_have_count(1)
    # When they upload a video that takes a while to render
    page.fill("#target", "3")
    page.set_input_files("#file", str(clip_slow))
    # Then it is listed first, and while it is processed its original plays
    expect(rows).to_have_count(2)
    newest = rows.first
    expect(newest.locator(".name")).to_have_text(clip_slow.name)
    player = newest.locator("video")
    expect(player).to_have_attribute("data-plays", "original", timeout=30_000)
    assert "/videos/" in (player.get_attribute("src") or "")
    assert newest.get_attribute("data-status") in {"pending", "processing"}
    # And when it is complete the timelapse replaces the original, with its poster
    expect(newest).to_have_attribute("data-status", "complete", timeout=120_000)
    expect(player).to_have_attribute("data-plays", "timelapse")
    assert "/timelapses/" in (player.get_attribute("src") or "")
    assert "/posters/" in (player.get_attribute("poster") or "")
    expect(newest.locator(".detail")).to_contain_text("faster")
    page.evaluate("p => p.play()", player.element_handle())
    page.wait_for_function("p => p.currentTime > 0.3", arg=player.element_handle(), timeout=15_000)
    # And after a reload (the project comes back from localStorage), the list is the same
    page.goto(web_url)
    expect(page.locator("#project")).to_have_value(project)
    expect(rows).to_have_count(2)
    expect(rows.first).to_have_attribute("data-status", "complete")
    expect(rows.nth(1)).to_have_attribute("data-id", older)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), type="png", full_page=True)
    # And the older one can be cancelled, then deleted, from the list
    older_row = page.locator(f"#timelapses > li[data-id='{older}']")
    older_row.locator("button[data-action=cancel]").click()
    expect(older_row).to_have_attribute("data-status", "cancelled")
    expect(older_row.locator("button[data-action=retry]")).to_be_visible()
    older_row.locator("button[data-action=delete]").click()
    expect(rows).to_have_count(1)
    assert api.request("GET", f"/timelapses/{older}").status_code == 404
