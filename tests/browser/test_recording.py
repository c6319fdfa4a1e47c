"""A recording made in Chromium with MediaRecorder (what a web front end records from a camera or
a screen): a WebM with no duration and no cues, end to end through the local stack."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.e2e.conftest import RunningStack
from tests.support import describe

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

RECORD_SECONDS = 4
# A canvas animated for RECORD_SECONDS, recorded as the browser records a camera; resolves to
# {type, data (base64)}.
RECORD = """async (seconds) => {
  const canvas = document.createElement('canvas')
  canvas.width = 320; canvas.height = 180
  document.body.appendChild(canvas)
  const g = canvas.getContext('2d')
  const colours = ['#c00', '#0c0', '#00c', '#cc0', '#0cc', '#c0c', '#888', '#000']
  let frame = 0
  const draw = () => {
    colours.forEach((c, i) => { g.fillStyle = c; g.fillRect(i * 40, 0, 40, 180) })
    g.fillStyle = '#fff'; g.fillRect(0, 135, 107, 45)
    g.fillRect((frame * 4) % 320, 60, 30, 30)
    frame += 1
  }
  draw()
  const timer = setInterval(draw, 33)
  const stream = canvas.captureStream(30)
  const type = ['video/webm;codecs=vp9', 'video/webm;codecs=vp8', 'video/webm']
    .find(t => MediaRecorder.isTypeSupported(t))
  const recorder = new MediaRecorder(stream, { mimeType: type })
  const chunks = []
  recorder.ondataavailable = e => chunks.push(e.data)
  const stopped = new Promise(resolve => { recorder.onstop = resolve })
  recorder.start(500)  // chunks as they come, as an uploading front end asks for them
  await new Promise(resolve => setTimeout(resolve, seconds * 1000))
  recorder.stop()
  await stopped
  clearInterval(timer)
  const blob = new Blob(chunks, { type: recorder.mimeType })
  const bytes = new Uint8Array(await blob.arrayBuffer())
  let binary = ''
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  }
  return { type: blob.type, data: btoa(binary) }
}"""


def test_a_mediarecorder_webm_completes(page: Page, stack: RunningStack, tmp_path: Path) -> None:
    # Given a recording made in the browser
    page.goto("about:blank")
    recorded = page.evaluate(RECORD, RECORD_SECONDS)
    path = tmp_path / "recording.webm"
    path.write_bytes(base64.b64decode(recorded["data"]))
    assert recorded["type"].startswith("video/webm")
    # which states no length, as MediaRecorder never does
    assert "Duration: N/A" in describe(str(path))
    # When it is uploaded with the type the browser gave it
    api = stack.api("recorder")
    created = api.submit(path, contentType=recorded["type"], filename="recording.webm",
                         targetSeconds=1)  # fmt: skip
    record = api.wait_for(created["timelapse"]["id"], timeout=120)
    # Then it completes, measured from its packets, with the asked length
    assert record["status"] == "complete", record["error"]
    assert record["source"]["durationSeconds"] == pytest.approx(RECORD_SECONDS, abs=0.6)
    assert record["output"]["durationSeconds"] == pytest.approx(1, rel=0.1)
    assert (record["output"]["width"], record["output"]["height"]) == (320, 180)
