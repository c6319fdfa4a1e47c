"""The `lapse` CLI against the running stack, as a user runs it: a subprocess with LAPSE_API_URL and
LAPSE_TOKEN in its environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import ROOT, Api, RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def lapse(
    stack: RunningStack, *args: str, token: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"LAPSE_TOKEN", "LAPSE_JWT_SECRET"}}
    env["LAPSE_API_URL"] = stack.config.api_url
    if token:
        env["LAPSE_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "lapse_cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def token(stack: RunningStack) -> str:
    # `lapse token` makes the very token the local API accepts
    made = lapse(stack, "token", "--user", "alice")
    assert made.returncode == 0, made.stderr
    return made.stdout.strip()


def test_submit_wait_uploads_renders_and_prints_the_url(
    stack: RunningStack, token: str, alice: Api, clip_5s: Path
) -> None:
    done = lapse(
        stack, "submit", str(clip_5s), "--project", "p-cli", "--target-seconds", "2", "--wait",
        token=token,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    timelapse_id, url = done.stdout.split()
    # The progress bar went to stderr, and reached the end
    assert "uploading" in done.stderr
    assert "100.0%" in done.stderr
    assert f"{timelapse_id} complete" in done.stderr
    # The record is alice's, complete, in the project given, with the file's name
    record = alice.get(timelapse_id)
    assert (record["status"], record["projectId"], record["filename"]) == (
        "complete",
        "p-cli",
        clip_5s.name,
    )
    assert record["targetSeconds"] == 2
    # and the printed URL is the playable timelapse
    video = requests.get(url, timeout=30)
    assert video.status_code == 200
    assert video.content[4:8] == b"ftyp"


def test_submit_goes_multipart_above_the_threshold(
    stack: RunningStack, token: str, alice: Api, clip_150mb: Path
) -> None:
    done = lapse(stack, "submit", str(clip_150mb), token=token)
    assert done.returncode == 0, done.stderr
    timelapse_id = done.stdout.strip()
    record = alice.wait_for(timelapse_id, timeout=240)
    assert record["status"] == "complete", record
    assert record["sizeBytes"] == clip_150mb.stat().st_size
    # parts were PUT and completed with their ETags; without a terminal, a line per 10 %
    assert done.stderr.count("uploading") >= 10


def test_status_and_cancel(stack: RunningStack, token: str, alice: Api) -> None:
    timelapse_id = alice.create(1000)["timelapse"]["id"]
    status = lapse(stack, "status", timelapse_id, token=token)
    assert status.returncode == 0, status.stderr
    assert status.stdout.strip() == f"{timelapse_id} pending/awaiting_upload"
    cancelled = lapse(stack, "cancel", timelapse_id, token=token)
    assert cancelled.returncode == 0, cancelled.stderr
    assert cancelled.stdout.startswith(f"{timelapse_id} cancelled")
    assert "Cancelled by its owner" in cancelled.stdout
    as_json = lapse(stack, "status", timelapse_id, "--json", token=token)
    assert json.loads(as_json.stdout)["status"] == "cancelled"
    # Cancelling is idempotent
    assert lapse(stack, "cancel", timelapse_id, token=token).returncode == 0


def test_refusals_are_readable_and_exit_1(
    stack: RunningStack, token: str, alice: Api, clip_5s: Path
) -> None:
    # someone else's (or no such) timelapse
    bob = lapse(stack, "token", "--user", "bob").stdout.strip()
    timelapse_id = alice.create(1000)["timelapse"]["id"]
    unknown = lapse(stack, "status", timelapse_id, token=bob)
    assert unknown.returncode == 1
    assert "HTTP 404 not_found" in unknown.stderr
    # no token at all
    missing = lapse(stack, "status", timelapse_id)
    assert missing.returncode == 1
    assert "LAPSE_TOKEN" in missing.stderr
    # a file that is not a video
    not_video = lapse(stack, "submit", str(stack.log), token=token)
    assert not_video.returncode == 1
    assert "--content-type" in not_video.stderr
    # a complete one cannot be cancelled
    done = alice.wait_for(alice.submit(clip_5s)["timelapse"]["id"])
    refused = lapse(stack, "cancel", done["id"], token=token)
    assert refused.returncode == 1
    assert "HTTP 409" in refused.stderr


def test_token_refuses_deployed_stages() -> None:
    env_stage = {**os.environ, "LAPSE_STAGE": "prod"}
    done = subprocess.run(
        [sys.executable, "-m", "lapse_cli", "token", "--user", "x"],
        cwd=ROOT,
        env=env_stage,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "local HS256 tokens only" in done.stderr
