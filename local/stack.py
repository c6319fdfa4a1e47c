"""`make run`: the whole lapse stack on this machine, in the foreground.

Starts moto server (S3, SQS, DynamoDB) on loopback, provisions the bucket, queues and table,
then the API and the worker. Prints where each listens; Ctrl-C stops everything it started.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

from local import persist
from local.config import LocalStack
from local.provision import provision

ROOT = Path(__file__).resolve().parent.parent
RUN_DIR = ROOT / ".run"
WEB_DIR = ROOT / "web"
STARTUP_SECONDS = 60.0


class StackError(RuntimeError):
    pass


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def children_file(stack: LocalStack) -> Path:
    """The process groups of a running stack's children, one a line."""
    return RUN_DIR / f"stack-{stack.api_port}.children"


def _members(group: int) -> list[int]:
    """Live processes of process group `group` that the local stack started (python -m local.…)
    or that they started (ffmpeg)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if int(fields[2]) == group and fields[0] != "Z":
                members.append(int(entry.name))
    ours = False
    for pid in members:
        with contextlib.suppress(OSError):
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
            ours = ours or b"local." in command or b"ffmpeg" in command
    return members if ours else []


def reap_leftovers(stack: LocalStack) -> int:
    """Stops what a stack killed without a chance to stop its children left running (they run in
    sessions of their own, holding the ports). Returns how many processes were stopped."""
    path = children_file(stack)
    if not path.exists():
        return 0
    groups = [int(line) for line in path.read_text().split() if line.isdigit()]
    found = {group: _members(group) for group in groups}
    for group, members in found.items():
        if members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(_members(group) for group in found):
        time.sleep(0.1)
    for group in found:
        if _members(group):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return sum(len(members) for members in found.values())


@contextlib.contextmanager
def single_instance(stack: LocalStack) -> Iterator[None]:
    """Refuses a second stack on the same ports, with a message instead of a tangle."""
    RUN_DIR.mkdir(exist_ok=True)
    lock_path = RUN_DIR / f"stack-{stack.api_port}.lock"
    with lock_path.open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise StackError(
                f"lapse is already running on port {stack.api_port} (pid {lock.read().strip()}); "
                "stop it with Ctrl-C, or set LAPSE_API_PORT and LAPSE_MOTO_PORT to run another."
            ) from None
        if reaped := reap_leftovers(stack):
            print(f"stopped {reaped} processes a killed stack left running", flush=True)
        for variable, port in (
            ("LAPSE_API_PORT", stack.api_port),
            ("LAPSE_MOTO_PORT", stack.moto_port),
        ):
            if port_in_use(stack.host, port):
                raise StackError(
                    f"port {port} is already in use by another program; "
                    f"free it or choose another with {variable}."
                )
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def wait_until(check_url: str, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise StackError(f"{name} exited with code {process.returncode} while starting")
        try:
            with urllib.request.urlopen(check_url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise StackError(f"{name} did not answer at {check_url} within {STARTUP_SECONDS:.0f} s")


class WebHandler(SimpleHTTPRequestHandler):
    """web/ as static files, plus /config.json: where the page finds the API."""

    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript"}

    def __init__(self, *args: object, stack: LocalStack, **kwargs: object) -> None:
        self.stack = stack
        super().__init__(*args, directory=str(WEB_DIR), **kwargs)  # type: ignore[arg-type]

    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/config.json":
            super().do_GET()
            return
        body = json.dumps(
            {"api": self.stack.api_url, "storageEvents": self.stack.storage_events}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


def serve_web(stack: LocalStack) -> ThreadingHTTPServer | None:
    """The upload page on LAPSE_WEB_PORT, in a thread; a busy port only costs the page."""
    try:
        server = ThreadingHTTPServer(
            (stack.host, stack.web_port), functools.partial(WebHandler, stack=stack)
        )
    except OSError as exc:
        print(f"upload page not served: port {stack.web_port}: {exc} (set LAPSE_WEB_PORT)")
        return None
    threading.Thread(target=server.serve_forever, name="web", daemon=True).start()
    return server


def stop_within(process: subprocess.Popen[bytes], seconds: float) -> None:
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        reap_group(process, signal.SIGKILL)
        process.wait()
    reap_group(process, signal.SIGKILL)  # what it started and left behind


def reap_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    """Signals the child's process group: the child and whatever it started (ffmpeg), even once
    the child itself is gone (its orphans keep the group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


# Stateless children come back when they die, as Lambda starts a new instance; moto holds the data
# and the stack stops with it. A child that keeps dying at once is given up on.
RESTARTED = {"api", "worker"}
QUICK_DEATH_SECONDS = 5.0
# Saving new objects at Ctrl-C copies them (~1 GB/s on a local disk).
STORAGE_SAVE_SECONDS = 300.0
MAX_QUICK_DEATHS = 5


@dataclass
class Child:
    name: str
    args: tuple[str, ...]
    quiet: bool
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    quick_deaths: int = 0


class Supervisor:
    def __init__(self, stack: LocalStack, log: IO[str] | None) -> None:
        self.stack = stack
        self.log = log
        self.children: list[Child] = []
        self.env = {**os.environ, **stack.environment()}
        self.web: ThreadingHTTPServer | None = None
        data = os.environ.get("LAPSE_DATA_DIR")
        self.data = Path(data).resolve() if data else None

    def _spawn(self, name: str, args: tuple[str, ...], quiet: bool) -> subprocess.Popen[bytes]:
        """A child in its own process group; `quiet` sends its output to .run/<name>-<port>.log."""
        output = None
        if quiet:
            output = (RUN_DIR / f"{name}-{self.stack.api_port}.log").open("ab")
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env=self.env,
            start_new_session=True,
            stdout=output,
            stderr=output,
        )
        with children_file(self.stack).open("a") as groups:  # for the next start, if killed
            groups.write(f"{process.pid}\n")
        return process

    def start(self, name: str, *args: str, quiet: bool = False) -> subprocess.Popen[bytes]:
        process = self._spawn(name, args, quiet)
        self.children.append(Child(name, args, quiet, process))
        return process

    def stop(self) -> None:
        """The API and the worker first; then the records are saved (LAPSE_DATA_DIR) while the
        storage still runs; then the storage, which saves its new objects as it stops."""
        if self.web:
            self.web.shutdown()
        users = [child for child in self.children if child.name != "moto"]
        for child in reversed(users):
            reap_group(child.process, signal.SIGTERM)
        for child in users:
            stop_within(child.process, 5)
        storage = [child for child in self.children if child.name == "moto"]
        if self.data and storage and storage[0].process.poll() is None:
            self.save_records()
        for child in storage:
            reap_group(child.process, signal.SIGTERM)
            stop_within(child.process, STORAGE_SAVE_SECONDS)
        if self.children:
            children_file(self.stack).unlink(missing_ok=True)

    def save_records(self) -> None:
        assert self.data is not None
        started = time.monotonic()
        try:
            count = persist.save_table(self.data, self.stack.dynamodb(), self.stack.table)
        except Exception as exc:  # the objects are still saved; say what was not
            print(f"records NOT saved: {exc}", flush=True)
            return
        print(f"saved {count} records in {time.monotonic() - started:.1f} s", flush=True)

    def restore_records(self) -> None:
        if self.data is None:
            return
        started = time.monotonic()
        count = persist.restore_table(self.data, self.stack.dynamodb(), self.stack.table)
        messages = persist.restore_queues(self.data, self.stack.sqs(), self.stack.queue_urls())
        print(
            f"restored {count} records and {messages} queue messages "
            f"in {time.monotonic() - started:.1f} s",
            flush=True,
        )

    def revive(self, child: Child) -> str | None:
        """Restarts a child that died; what it started dies with it (its process group).
        Returns why the stack must stop instead, or None."""
        code = child.process.returncode
        reap_group(child.process, signal.SIGKILL)
        if child.name not in RESTARTED:
            return f"{child.name} exited with code {code}; stopping"
        quick = time.monotonic() - child.started < QUICK_DEATH_SECONDS
        child.quick_deaths = child.quick_deaths + 1 if quick else 0
        if child.quick_deaths >= MAX_QUICK_DEATHS:
            return f"{child.name} keeps exiting at once (code {code}); stopping"
        print(f"{child.name} exited with code {code}; restarting it", flush=True)
        child.process = self._spawn(child.name, child.args, child.quiet)
        child.started = time.monotonic()
        return None

    def watch(self) -> int:
        while True:
            for child in self.children:
                if child.process.poll() is not None and (reason := self.revive(child)):
                    print(reason, flush=True)
                    return 1
            time.sleep(0.5)

    def run(self) -> int:
        stack = self.stack
        started = time.monotonic()
        moto = self.start(
            "moto",
            "-m",
            "local.moto_server",
            "-H",
            stack.host,
            "-p",
            str(stack.moto_port),
            *(("--data", str(self.data), "--region", stack.region) if self.data else ()),
            quiet=True,
        )
        wait_until(f"{stack.endpoint}/moto-api/", moto, "moto server")
        provision(stack)
        self.restore_records()
        api = self.start("api", "-m", "local.api")
        self.start("worker", "-m", "local.worker")
        wait_until(f"{stack.api_url}/health", api, "API")
        self.web = serve_web(stack)
        print(
            f"\nlapse is up in {time.monotonic() - started:.1f} s\n"
            f"  API              {stack.api_url}   (OpenAPI: {stack.api_url}/openapi.json)\n"
            f"  API reference    {stack.api_url}/docs\n"
            + (f"  upload page      {stack.web_url}/\n" if self.web else "")
            + f"  moto server      {stack.endpoint}   (S3, SQS, DynamoDB; log in .run/)\n"
            f"  bucket {stack.bucket}, queue {stack.queue_name} (+ {stack.dlq_name}), "
            f"table {stack.table}\n"
            f"  worker           polling {stack.queue_name}"
            + ("" if stack.storage_events else "   (no bucket events, as on R2)")
            + "\n"
            "Ctrl-C stops everything.\n",
            flush=True,
        )
        return self.watch()


def main() -> int:
    stack = LocalStack.from_env()
    supervisor = Supervisor(stack, None)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    # Ctrl-C stops the stack even when it was started in the background of a script (`make run &`),
    # whose shell leaves SIGINT ignored for everything it starts: Python then installs no handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with single_instance(stack):
            return supervisor.run()
    except StackError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nstopping lapse…", flush=True)
        return 0
    finally:
        supervisor.stop()


if __name__ == "__main__":
    sys.exit(main())
