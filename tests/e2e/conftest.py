"""The whole local stack, started as `make run` starts it (python -m local.stack), once per session,
on free ports; tests talk to it only over HTTP and through the presigned URLs it hands out."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from chalicelib.adapters.auth import make_local_token
from local.config import LocalStack
from tests.support import free_port, make_clip, make_large_clip

ROOT = Path(__file__).resolve().parents[2]
TERMINAL = {"complete", "failed", "cancelled"}


@dataclass
class Api:
    base: str
    user: str
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        token = make_local_token(self.user, "local-dev-secret")
        self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, self.url(path), timeout=30, **kwargs)

    def create(self, size: int, **fields: Any) -> dict[str, Any]:
        body = {"projectId": "p-e2e", "contentType": "video/mp4", "sizeBytes": size, **fields}
        answer = self.request("POST", "/timelapses", json=body)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def get(self, timelapse_id: str) -> dict[str, Any]:
        answer = self.request("GET", f"/timelapses/{timelapse_id}")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def wait_for(
        self, timelapse_id: str, done: Any = None, *, timeout: float = 120
    ) -> dict[str, Any]:
        """Poll GET /timelapses/{id} until `done(record)` (default: a terminal status)."""
        done = done or (lambda record: record["status"] in TERMINAL)
        deadline = time.monotonic() + timeout
        while True:
            record = self.get(timelapse_id)
            if done(record):
                return record
            assert time.monotonic() < deadline, f"gave up waiting; last seen {record}"
            time.sleep(0.2)

    def upload_put(self, created: dict[str, Any], data: bytes) -> None:
        upload = created["upload"]
        assert upload["method"] == "PUT"
        answer = requests.put(upload["url"], data=data, headers=upload["headers"], timeout=60)
        assert answer.status_code == 200, answer.text

    def submit(self, path: Path, **fields: Any) -> dict[str, Any]:
        data = path.read_bytes()
        created = self.create(len(data), **fields)
        self.upload_put(created, data)
        return created


@dataclass
class RunningStack:
    config: LocalStack
    process: subprocess.Popen[bytes]
    log: Path

    def api(self, user: str) -> Api:
        return Api(self.config.api_url, user)


@contextlib.contextmanager
def running_stack(log: Path, **env: str) -> Iterator[RunningStack]:
    """`python -m local.stack` on free ports, as `make run` starts it; stopped by Ctrl-C."""
    config = LocalStack(
        api_port=free_port(),
        moto_port=free_port(),
        storage_events=env.get("LAPSE_STORAGE_EVENTS", "true") == "true",
    )
    environment = {
        **os.environ,
        "LAPSE_API_PORT": str(config.api_port),
        "LAPSE_MOTO_PORT": str(config.moto_port),
        "LAPSE_WATCHDOG_SECONDS": "2",
        **env,
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.stack"], cwd=ROOT, env=environment, stdout=out, stderr=out
        )
    running = RunningStack(config, process, log)
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        try:
            if requests.get(f"{config.api_url}/health", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            pass
        assert time.monotonic() < deadline, "the stack did not come up:\n" + log.read_text()[-3000:]
        time.sleep(0.2)
    try:
        yield running
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail("the stack did not stop on Ctrl-C within 20 s")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(tmp_path_factory.mktemp("stack") / "stack.log") as running:
        yield running


@pytest.fixture(scope="session")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def clip_5s(media: Path) -> Path:
    return make_clip(media / "clip-5s.mp4", seconds=5)


@pytest.fixture(scope="session")
def clip_slow(media: Path) -> Path:
    """720p, 30 s, one keyframe: the engine must decode every frame, so it renders for a while."""
    return make_clip(media / "clip-slow.mp4", seconds=30, size="1280x720", gop=900)


@pytest.fixture(scope="session")
def clip_150mb(media: Path) -> Path:
    return make_large_clip(media / "clip-150mb.mp4", at_least_bytes=150 * 1024 * 1024)


@pytest.fixture
def alice(stack: RunningStack) -> Api:
    return stack.api("alice")


@pytest.fixture
def bob(stack: RunningStack) -> Api:
    return stack.api("bob")
