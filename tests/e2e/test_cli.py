"""The `lapse` CLI against the running stack, as a user runs it: a subprocess with LAPSE_API_URL and
LAPSE_TOKEN in its environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from importlib import metadata
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


def test_refusals_are_readable_with_distinct_exit_codes(
    stack: RunningStack, token: str, alice: Api, clip_5s: Path
) -> None:
    # someone else's (or no such) timelapse: the API refuses, exit 3
    bob = lapse(stack, "token", "--user", "bob").stdout.strip()
    timelapse_id = alice.create(1000)["timelapse"]["id"]
    unknown = lapse(stack, "status", timelapse_id, token=bob)
    assert unknown.returncode == 3
    assert "HTTP 404 not_found" in unknown.stderr
    # no token at all: the user's side, exit 1
    missing = lapse(stack, "status", timelapse_id)
    assert missing.returncode == 1
    assert "LAPSE_TOKEN" in missing.stderr
    # a file that is not a video
    not_video = lapse(stack, "submit", str(stack.log), token=token)
    assert not_video.returncode == 1
    assert "--content-type" in not_video.stderr
    # bad usage: argparse's 2
    assert lapse(stack, "list", "--status", "done", token=token).returncode == 2
    # a complete one cannot be cancelled: refused, exit 3
    done = alice.wait_for(alice.submit(clip_5s)["timelapse"]["id"])
    refused = lapse(stack, "cancel", done["id"], token=token)
    assert refused.returncode == 3
    assert "HTTP 409" in refused.stderr


def test_a_failed_timelapse_exits_4(stack: RunningStack, token: str, tmp_path: Path) -> None:
    not_a_video = tmp_path / "noise.mp4"
    not_a_video.write_bytes(b"this is not a video" * 100)
    done = lapse(stack, "submit", str(not_a_video), "--wait", "--json", token=token)
    assert done.returncode == 4, done.stderr
    assert json.loads(done.stdout)["status"] == "failed"


def test_version() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lapse_cli", "--version"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0
    assert done.stdout.strip() == f"lapse {metadata.version('lapse')}"


def test_flags_instead_of_the_environment(stack: RunningStack, token: str, alice: Api) -> None:
    timelapse_id = alice.create(1000)["timelapse"]["id"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAPSE_")}
    done = subprocess.run(
        [sys.executable, "-m", "lapse_cli", "status", timelapse_id, "--json",
         "--api-url", stack.config.api_url, "--token", token],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["id"] == timelapse_id


def test_list_pages_filters_and_prints_json(stack: RunningStack, token: str, alice: Api) -> None:
    project = f"p-list-{uuid.uuid4().hex[:6]}"
    made = [alice.create(1000 + n, projectId=project)["timelapse"]["id"] for n in range(3)]
    alice.request("POST", f"/timelapses/{made[0]}/cancel")
    # newest first, every page followed
    listed = lapse(stack, "list", "--project", project, "--limit", "2", "--all", "--json",
                   token=token)  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    answer = json.loads(listed.stdout)
    assert [item["id"] for item in answer["items"]] == made[::-1]
    assert answer["nextCursor"] is None
    # one page, with the way to the next one
    page = lapse(stack, "list", "--project", project, "--limit", "2", token=token)
    assert page.returncode == 0, page.stderr
    assert [line.split()[0] for line in page.stdout.splitlines()] == made[:0:-1]
    assert f"lapse list --project {project} --cursor " in page.stderr
    # by status
    cancelled = lapse(stack, "list", "--project", project, "--status", "cancelled", "--json",
                      token=token)  # fmt: skip
    assert [item["id"] for item in json.loads(cancelled.stdout)["items"]] == [made[0]]


def test_process_and_delete(stack: RunningStack, token: str, alice: Api, clip_5s: Path) -> None:
    # Given an upload made with process: false
    timelapse_id = alice.submit(clip_5s, process=False, targetSeconds=1)["timelapse"]["id"]
    alice.wait_for(timelapse_id, lambda r: r["stage"] is None, timeout=30)  # uploaded, idle
    # When it is processed from the CLI, it completes
    queued = lapse(stack, "process", timelapse_id, "--json", token=token)
    assert queued.returncode == 0, queued.stderr
    assert json.loads(queued.stdout)["stage"] == "queued"
    assert alice.wait_for(timelapse_id)["status"] == "complete"
    # And processing it again while complete is refused
    assert lapse(stack, "process", timelapse_id, token=token).returncode == 3
    # When it is deleted, it is gone
    deleted = lapse(stack, "delete", timelapse_id, token=token)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == f"{timelapse_id} deleted"
    assert alice.request("GET", f"/timelapses/{timelapse_id}").status_code == 404
    assert lapse(stack, "delete", timelapse_id, "--json", token=token).returncode == 3


def test_ctrl_c_during_a_multipart_upload_offers_resume_and_resume_finishes_it(
    stack: RunningStack, token: str, alice: Api, clip_150mb: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "LAPSE_JWT_SECRET"}
    env.update(LAPSE_API_URL=stack.config.api_url, LAPSE_TOKEN=token)
    # Given a multipart upload under way
    running = subprocess.Popen(
        [sys.executable, "-m", "lapse_cli", "submit", str(clip_150mb), "--project", "p-resume"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert running.stdout
    assert running.stderr
    timelapse_id = running.stdout.readline().strip()
    for line in running.stderr:  # without a terminal, a line per 10 %
        if line.startswith("uploading") and 30 <= float(line.split()[1].rstrip("%")) < 90:
            break
    # When the user presses Ctrl-C
    running.send_signal(signal.SIGINT)
    _, err = running.communicate(timeout=60)
    # Then it stops, says how to go on, and the timelapse still waits for its upload
    assert running.returncode == 130, err
    assert f"lapse submit {clip_150mb} --resume {timelapse_id}" in err
    assert f"lapse cancel {timelapse_id}" in err
    record = alice.get(timelapse_id)
    assert (record["status"], record["stage"]) == ("pending", "awaiting_upload")
    held = alice.request("GET", f"/timelapses/{timelapse_id}/upload").json()
    assert 0 < len(held["parts"]) < held["partCount"]
    # When they resume it, only the missing parts are sent and the timelapse completes
    resumed = lapse(stack, "submit", str(clip_150mb), "--resume", timelapse_id, "--wait",
                    token=token)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {timelapse_id}: {len(held['parts'])} of {held['partCount']} parts" in (
        resumed.stderr
    )
    done = alice.get(timelapse_id)
    assert done["status"] == "complete"
    assert done["sizeBytes"] == clip_150mb.stat().st_size


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


def test_render_prints_json(clip_5s: Path, tmp_path: Path) -> None:
    out = tmp_path / "short.mp4"
    done = subprocess.run(
        [sys.executable, "-m", "lapse_cli", "render", str(clip_5s), "-o", str(out),
         "--target-seconds", "1", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["output"] == str(out)
    assert result["sizeBytes"] == out.stat().st_size
    assert 0.5 < result["durationSeconds"] <= 1.1


def test_submit_passes_the_option_flags(
    stack: RunningStack, token: str, alice: Api, clip_5s: Path
) -> None:
    done = lapse(
        stack, "submit", str(clip_5s), "--project", "p-cli", "--speed", "5", "--fps", "24",
        "--resolution", "720p", "--timestamp", "--deflicker", "--json", token=token,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    record = alice.get(json.loads(done.stdout)["id"])
    assert (record["speed"], record["targetSeconds"]) == (5, None)
    assert record["options"] == {
        "fps": 24, "resolution": "720p", "skipIdle": False, "timestamp": True, "deflicker": True,
    }  # fmt: skip


def test_render_takes_the_option_flags_and_refuses_speed_with_a_length(
    clip_5s: Path, tmp_path: Path
) -> None:
    out = tmp_path / "fast.mp4"
    command = [sys.executable, "-m", "lapse_cli", "render", str(clip_5s), "-o", str(out), "--json"]
    done = subprocess.run(
        [*command, "--speed", "5", "--fps", "60", "--resolution", "720p", "--timestamp",
         "--deflicker", "--skip-idle"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["fps"], result["frameCount"]) == (60, 60)  # 5 s / 5 = 1 s at 60 fps
    refused = subprocess.run(
        [*command, "--speed", "5", "--target-seconds", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "not both" in refused.stderr
