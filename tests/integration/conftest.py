"""The local AWS-compatible services for integration tests: one moto server per test session.

`local_stack` starts `python -m moto.server` on a free loopback port, waits until it answers,
provisions it exactly as `make run` does (bucket, queue + DLQ, table), points the code under test
at it through the same environment the local stack uses, and stops it at the end. Tests that use
it carry `pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("integration")]`, so under
`pytest -n 2 --dist loadgroup` they share one worker and one server.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from chalicelib import wiring
from chalicelib.adapters.records import DynamoDBTimelapseRepository, bind_table
from chalicelib.adapters.storage import S3Storage
from chalicelib.domain.keys import new_timelapse_id, original_key
from chalicelib.domain.timelapse import (
    Stage,
    Status,
    Timelapse,
    UploadInfo,
    UploadMethod,
    utcnow,
)
from chalicelib.settings import Settings, get_settings
from local.config import LocalStack
from local.provision import provision

START_TIMEOUT_SECONDS = 30.0
WIRING_CACHES = (
    wiring.records,
    wiring.storage,
    wiring.work_queue,
    wiring.notifier,
    wiring.token_verifier,
    wiring.timelapse_service,
    wiring.processing_service,
    wiring.watchdog_service,
)


def pytest_configure(config: pytest.Config) -> None:
    # Registered by pytest-xdist when it is loaded; declared here so the tests also run without it.
    config.addinivalue_line("markers", "xdist_group(name): run in the same xdist worker")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_answering(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"moto server exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.1)  # polling for the server to come up, not synchronizing tests
    pytest.fail(
        f"moto server did not answer {url} within {START_TIMEOUT_SECONDS}s:\n{log.read_text()}"
    )


def clear_cached_wiring() -> None:
    get_settings.cache_clear()
    for factory in WIRING_CACHES:
        factory.cache_clear()


@contextlib.contextmanager
def running_moto(stack: LocalStack, log: Path) -> Iterator[None]:
    """The local stack's moto server (local/moto_server.py: DynamoDB writes atomic, as on AWS) on
    the stack's port, answering and provisioned; stopped after."""
    with log.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                *("-m", "local.moto_server", "-H", stack.host, "-p", str(stack.moto_port)),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_answering(f"{stack.endpoint}/moto-api/", server, log)
        provision(stack)
        yield
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A provisioned moto server, with the environment of the code under test pointing at it."""
    stack = LocalStack(moto_port=free_port(), api_port=free_port())
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with running_moto(stack, log), pytest.MonkeyPatch.context() as env:
        for name, value in stack.environment().items():
            env.setenv(name, value)
        clear_cached_wiring()
        settings = get_settings()
        bind_table(settings.table, settings.region, settings.aws_endpoint_url)
        yield stack
        clear_cached_wiring()
        bind_table("lapse-timelapses", "us-east-1", None)


@pytest.fixture(scope="session")
def settings(local_stack: LocalStack) -> Settings:
    return get_settings()


@pytest.fixture
def repository(local_stack: LocalStack) -> DynamoDBTimelapseRepository:
    return DynamoDBTimelapseRepository()


NewRecord = Callable[..., Timelapse]


@pytest.fixture
def new_record(repository: DynamoDBTimelapseRepository) -> Iterator[NewRecord]:
    """Creates pending/awaiting_upload records in the real table; deletes them after the test."""
    created: list[str] = []

    def make(
        *,
        owner_id: str = "user-1",
        project_id: str = "p-1",
        created_at: datetime | None = None,
        process: bool = True,
        save: bool = True,
    ) -> Timelapse:
        timelapse_id = new_timelapse_id()
        moment = created_at or utcnow()
        timelapse = Timelapse(
            id=timelapse_id,
            owner_id=owner_id,
            project_id=project_id,
            status=Status.PENDING,
            stage=Stage.AWAITING_UPLOAD,
            content_type="video/mp4",
            size_bytes=1024,
            original_video_key=original_key(timelapse_id, "video/mp4"),
            created_at=moment,
            updated_at=moment,
            upload=UploadInfo(UploadMethod.PUT),
            process=process,
        )
        created.append(timelapse_id)
        if save:
            repository.create(timelapse)
        return timelapse

    yield make
    for timelapse_id in created:
        repository.delete(timelapse_id)


@pytest.fixture
def storage(local_stack: LocalStack, settings: Settings) -> S3Storage:
    return S3Storage(wiring.s3_client(settings), settings.bucket)
