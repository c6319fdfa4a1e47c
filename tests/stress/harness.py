"""A lapse stack of the test's own, for fault injection, put together as `make run` does
(local/stack.py: moto server, provision, `python -m local.api`, `python -m local.worker`) on free
ports, with two differences:

- moto runs behind local/moto_server.py (as in make run), which makes DynamoDB's conditional
  writes atomic as the real service's are (moto's are not under concurrent requests);
- the stack's own worker takes no queue work (LAPSE_WORKER_CONCURRENCY=0): it runs the watchdog
  and the dead-letter poller only. The test starts, kills and stops the queue workers.

Each worker gets its own TMPDIR: a killed worker's folder is its sandbox, discarded with it as
Lambda discards a crashed environment, and a surviving worker's folder must end empty.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from local.config import LocalStack
from local.provision import provision
from tests.e2e.conftest import Api
from tests.support import free_port

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0
LONG_POLL_SECONDS = 1.0  # local/worker.py's WaitTimeSeconds


def until(condition: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """Poll `condition` until it returns something truthy; that value, or the last falsy one."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


@dataclass
class Worker:
    name: str
    process: subprocess.Popen[bytes]
    tmpdir: Path
    log: Path

    def work_dirs(self) -> list[Path]:
        return sorted(self.tmpdir.glob("lapse-*"))

    def child_commands(self) -> list[bytes]:
        """The command lines of the worker's direct children (its ffmpeg processes)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[2]) == self.process.pid:
                found.append(cmdline)
        return found

    def kill(self) -> None:
        """SIGKILL the worker and its ffmpeg: a crash, with no chance to clean up."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class OwnStack:
    config: LocalStack
    directory: Path
    env: dict[str, str]
    services: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[Worker] = field(default_factory=list)

    def api(self, user: str) -> Api:
        return Api(self.config.api_url, user)

    def start_worker(self, name: str, **env: str) -> Worker:
        """`python -m local.worker` against this stack; `env` overrides (LAPSE_LEASE_SECONDS…)."""
        tmpdir = self.directory / f"tmp-{name}"
        tmpdir.mkdir(exist_ok=True)
        log = self.directory / f"worker-{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "local.worker"],
                cwd=ROOT,
                env={**self.env, "TMPDIR": str(tmpdir), "LAPSE_WORKER_CONCURRENCY": "1", **env},
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
        worker = Worker(name, process, tmpdir, log)
        self.workers.append(worker)
        return worker

    def stop_workers(self) -> None:
        for worker in self.workers:  # all at once, then wait for each
            if worker.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.process.pid, signal.SIGTERM)
        for worker in self.workers:
            worker.stop()
        if self.workers:
            # A worker that exits inside a 1 s long poll leaves moto holding that receive: a
            # message arriving in that second is handed to the dead socket and stays invisible
            # for the visibility timeout. Let those polls run out before the next test sends any.
            time.sleep(LONG_POLL_SECONDS + 0.5)
        self.workers.clear()

    def queue_depth(self, queue_url: str | None = None, *, in_flight: bool = False) -> int:
        """Messages waiting in the queue (plus, with `in_flight`, those received, not deleted)."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        attributes = self.config.sqs().get_queue_attributes(
            QueueUrl=queue_url or self.config.queue_url,
            AttributeNames=names,  # type: ignore[arg-type]
        )["Attributes"]
        return sum(int(attributes[name]) for name in names[: 2 if in_flight else 1])  # type: ignore[misc, index]

    def objects(self, prefix: str) -> list[str]:
        s3 = self.config.s3()
        keys: list[str] = []
        for page in s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.config.bucket, Prefix=prefix
        ):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def log_tail(self, lines: int = 60) -> str:
        logs = [self.directory / "stack.log", *sorted(self.directory.glob("worker-*.log"))]
        return "\n".join(
            f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            for log in logs
            if log.exists()
        )


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args!r} exited while starting:\n{log.read_text()[-3000:]}"
            )
        try:
            requests.get(url, timeout=1).raise_for_status()
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.1)


@contextlib.contextmanager
def own_stack(directory: Path, **env: str) -> Iterator[OwnStack]:
    """Start the stack on free ports with `env`; stop it and every worker after."""
    config = LocalStack(api_port=free_port(), moto_port=free_port())
    stack_env = {
        **os.environ,
        **config.environment(),
        "LAPSE_WORKER_CONCURRENCY": "0",
        "LAPSE_WATCHDOG_SECONDS": "1",
        **env,
    }
    # Queue workers run no watchdog of their own: the stack's is the one under test.
    stack = OwnStack(config, directory, {**stack_env, "LAPSE_WATCHDOG_SECONDS": "3600"})
    log = directory / "stack.log"
    try:
        moto = _start(
            ["-m", "local.moto_server", "-H", config.host, "-p", str(config.moto_port)],
            stack_env,
            log,
        )
        stack.services.append(moto)
        _wait_for(f"{config.endpoint}/moto-api/", moto, log)
        provision(config)
        api = _start(["-m", "local.api"], stack_env, log)
        stack.services.append(api)
        stack.services.append(_start(["-m", "local.worker"], stack_env, log))
        _wait_for(f"{config.api_url}/health", api, log)
        yield stack
    finally:
        stack.stop_workers()
        for process in reversed(stack.services):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in stack.services:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
