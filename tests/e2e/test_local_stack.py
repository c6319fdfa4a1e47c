"""The local stack behaves like a service (`python -m local.stack`, as `make run` starts it): a
worker that dies is replaced and what it ran dies with it, the API takes a burst of connections,
and a start stops what a killed stack left running."""

from __future__ import annotations

import collections
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from bench.stack import descendants
from chalicelib.adapters.auth import make_local_token
from tests.e2e.conftest import ROOT, Api, RunningStack, running_stack
from tests.support import free_port, make_clip

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("local-stack")]

BURST = 200


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    log = tmp_path_factory.mktemp("local-stack") / "stack.log"
    with running_stack(log, LAPSE_LEASE_SECONDS="5") as running:
        yield running


def processes_of(stack: RunningStack, marker: bytes) -> set[int]:
    found = set()
    for pid in descendants(stack.process.pid):
        try:
            if marker in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except OSError:
            continue
    return found


def alive(pids: set[int]) -> set[int]:
    """Those still running (a zombie — dead, not yet reaped by its new parent — is not)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


def until(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


def orphans_of(group: int) -> set[int]:
    """Processes still in process group `group` (a dead worker's ffmpeg, if not reaped)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            found.add(int(entry.name))
    return found


def test_a_killed_worker_is_replaced_and_its_ffmpeg_reaped(
    own: RunningStack, tmp_path: Path
) -> None:
    clip = make_clip(tmp_path / "slow.mp4", seconds=20, size="960x540", gop=600)
    api = own.api("carol")
    data = clip.read_bytes()
    created = api.create(len(data), targetSeconds=2)
    api.upload_put(created, data)
    tid = created["timelapse"]["id"]
    api.wait_for(tid, lambda r: r["stage"] == "rendering", timeout=60)
    (worker,) = processes_of(own, b"local.worker")
    assert until(lambda: bool(processes_of(own, b"ffmpeg")), timeout=20), "no ffmpeg started"

    os.kill(worker, signal.SIGKILL)

    assert until(lambda: not orphans_of(worker), timeout=10), "the worker's ffmpeg outlived it"
    assert until(lambda: bool(alive(processes_of(own, b"local.worker"))), timeout=10)
    assert worker not in processes_of(own, b"local.worker")
    done = api.wait_for(tid, timeout=90)  # the lease runs out; the watchdog requeues it
    assert done["status"] == "complete", done
    assert done["attempts"] == 2
    assert own.process.poll() is None


def test_a_burst_of_connections_is_answered(own: RunningStack) -> None:
    token = make_local_token("dave", "local-dev-secret")
    answers: collections.Counter[int | str] = collections.Counter()
    lock = threading.Lock()
    start = threading.Barrier(BURST)

    def one(index: int) -> None:
        path = "/health" if index % 2 else "/projects/p-burst/timelapses"
        try:
            start.wait()
            connection = http.client.HTTPConnection("127.0.0.1", own.config.api_port, timeout=30)
            connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            answer = connection.getresponse()
            answer.read()
            outcome: int | str = answer.status
            connection.close()
        except OSError as exc:
            outcome = type(exc).__name__
        with lock:
            answers[outcome] += 1

    threads = [threading.Thread(target=one, args=(index,)) for index in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert answers == {200: BURST}


def start_stack(
    env: dict[str, str], log: Path, *, sigint_ignored: bool = False
) -> subprocess.Popen[bytes]:
    """`python -m local.stack`, once it says it is up (a health check could reach the old API).
    `sigint_ignored`: started as a script's background job is (`make run &`)."""
    command = [sys.executable, "-m", "local.stack"]
    if sigint_ignored:
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    with log.open("ab") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    until(lambda: process.poll() is not None or "lapse is up" in log.read_text(), timeout=60)
    assert process.poll() is None, log.read_text()[-2000:]
    assert "lapse is up" in log.read_text(), log.read_text()[-2000:]
    return process


def test_a_start_stops_what_a_killed_stack_left_running(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LAPSE_API_PORT": str(free_port()),
        "LAPSE_MOTO_PORT": str(free_port()),
        "LAPSE_WEB_PORT": str(free_port()),
    }
    killed = start_stack(env, tmp_path / "killed.log")
    left = set(descendants(killed.pid))
    killed.kill()  # SIGKILL: no chance to stop its children, which keep the ports
    killed.wait()
    assert alive(left), "the children died with the stack: nothing to show"

    second = start_stack(env, tmp_path / "second.log")
    try:
        assert not alive(left), "the new stack runs beside the old one's children"
        assert (
            "stopped 3 processes a killed stack left running"
            in (tmp_path / "second.log").read_text()
        )
        health = f"http://127.0.0.1:{env['LAPSE_API_PORT']}/health"
        assert requests.get(health, timeout=5).status_code == 200
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=30)


def test_ctrl_c_stops_a_stack_started_in_the_background_of_a_script(tmp_path: Path) -> None:
    # Given a stack started as `make run &` starts it: SIGINT ignored from its parent shell
    env = {
        **os.environ,
        "LAPSE_API_PORT": str(free_port()),
        "LAPSE_MOTO_PORT": str(free_port()),
        "LAPSE_WEB_PORT": str(free_port()),
        "LAPSE_DATA_DIR": str(tmp_path / "data"),
    }
    log = tmp_path / "background.log"
    stack = start_stack(env, log, sigint_ignored=True)
    # When it gets a Ctrl-C, then it stops as from a terminal
    stack.send_signal(signal.SIGINT)
    try:
        assert stack.wait(timeout=30) == 0
    finally:
        if stack.poll() is None:
            stack.terminate()
            stack.wait(timeout=30)
    assert "stopping lapse" in log.read_text()


def test_the_stack_still_serves_after_both(own: RunningStack) -> None:
    api: Api = own.api("erin")
    assert api.request("GET", "/projects/p-after/timelapses").status_code == 200
