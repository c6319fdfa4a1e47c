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
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO

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


class Supervisor:
    def __init__(self, stack: LocalStack, log: IO[str] | None) -> None:
        self.stack = stack
        self.log = log
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.env = {**os.environ, **stack.environment()}
        self.web: ThreadingHTTPServer | None = None

    def start(self, name: str, *args: str, quiet: bool = False) -> subprocess.Popen[bytes]:
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
        self.processes.append((name, process))
        return process

    def stop(self) -> None:
        if self.web:
            self.web.shutdown()
        for _, process in reversed(self.processes):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for _, process in self.processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

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
            quiet=True,
        )
        wait_until(f"{stack.endpoint}/moto-api/", moto, "moto server")
        provision(stack)
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
        while True:
            for name, process in self.processes:
                if process.poll() is not None:
                    print(f"{name} exited with code {process.returncode}; stopping", flush=True)
                    return 1
            time.sleep(0.5)


def main() -> int:
    stack = LocalStack.from_env()
    supervisor = Supervisor(stack, None)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
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
