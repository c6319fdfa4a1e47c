"""The local stack as `make run` starts it, for the bench: started on free ports, watched, stopped.

Also what the bench reads off it: the storage's access lines (local/s3_streaming.py logs the bytes
each object GET sent; werkzeug logs every request) and the worker's memory (sampled from /proc:
the worker's Python and everything it runs, ffmpeg included).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from local.config import LocalStack
from local.stack import ROOT, RUN_DIR, reap_leftovers

START_SECONDS = 90.0
# The stack stops its API and worker (5 s each at most), then its storage, which exits at once
# when it keeps no data.
STOP_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class RunningStack:
    config: LocalStack
    process: subprocess.Popen[bytes]

    @property
    def storage_log(self) -> Path:
        return RUN_DIR / f"moto-{self.config.api_port}.log"

    def worker_pid(self) -> int:
        for pid in descendants(self.process.pid):
            with contextlib.suppress(OSError):
                if b"local.worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    return pid
        raise RuntimeError("the stack runs no worker")


@contextlib.contextmanager
def running_stack(log: Path, moto_port: int = 0, **env: str) -> Iterator[RunningStack]:
    """`python -m local.stack` with `env` on top of this environment; Ctrl-C'd at the end."""
    config = LocalStack(
        api_port=free_port(), moto_port=moto_port or free_port(), web_port=free_port()
    )
    environment = {
        **os.environ,
        "LAPSE_API_PORT": str(config.api_port),
        "LAPSE_MOTO_PORT": str(config.moto_port),
        "LAPSE_WEB_PORT": str(config.web_port),
        **env,
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "local.stack"], cwd=ROOT, env=environment, stdout=out, stderr=out
        )
    try:
        _wait_for_health(config, process, log)
        yield RunningStack(config, process)
    finally:
        _stop(process, config)


def _stop(process: subprocess.Popen[bytes], config: LocalStack) -> None:
    """Ctrl-C the stack; if it is killed, or dies, before its children are down, stop them too.

    Its children run in sessions of their own (so a Ctrl-C in a terminal reaches the supervisor
    only): killing the supervisor alone left its moto server running, holding the port and the
    uploaded gigabytes (seen after every link run of session 2). The supervisor writes their
    process groups to a file for this; `reap_leftovers` signals those that still run lapse code.
    """
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if reaped := reap_leftovers(config):
        print(f"bench: stopped {reaped} processes the stack left running", file=sys.stderr)


def _wait_for_health(config: LocalStack, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the stack exited while starting:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{config.api_url}/health", timeout=1).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"the stack did not come up:\n{log.read_text()[-3000:]}")


# --- what storage served --------------------------------------------------------------------------

_SENT = re.compile(r"^storage GET (?P<object>\S+) bytes=\S+ sent=(?P<sent>\d+)$")
# werkzeug's request line, colored on a terminal: "GET /bucket/key?query HTTP/1.1" 206 -
_READ = re.compile(r'"(?:\x1b\[[0-9;]*m)*(?:GET|HEAD) /(?P<object>[^?" \x1b]+)')


@dataclass(frozen=True)
class StorageReads:
    bytes_sent: int
    requests: int


def storage_reads(log: Path, offset: int, bucket: str, key: str) -> StorageReads:
    """Bytes storage sent of `bucket/key` and the reads (GET, HEAD) of it, after `offset`."""
    wanted = f"{bucket}/{key}"
    sent = requests_seen = 0
    with log.open("rb") as lines:
        lines.seek(offset)
        for raw in lines:
            line = raw.decode("utf-8", "replace").strip()
            if match := _SENT.match(line):
                sent += int(match["sent"]) if match["object"] == wanted else 0
            elif (match := _READ.search(line)) and match["object"] == wanted:
                requests_seen += 1
    return StorageReads(sent, requests_seen)


# --- memory ---------------------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            parent = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def rss_bytes(pid: int) -> int:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    return 0


class MemorySampler:
    """Peak RSS of a process and, apart, of all its descendants together, sampled every 100 ms."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_self = 0
        self.peak_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_self = max(self.peak_self, rss_bytes(self.pid))
            children = sum(rss_bytes(child) for child in descendants(self.pid))
            self.peak_children = max(self.peak_children, children)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
