"""A tiny HTTP server with Range support that counts the bytes it sends, standing in for S3 GETs.

On loopback a request costs nothing, which flatters a reader that makes many small requests
(seeking per sample) against one that streams the whole file. ``Network`` adds what a GET to S3
from Lambda costs: a wait before the first byte of each request and a per-connection bandwidth.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

SEND_BUFFER_BYTES = 1024 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_CHUNK = 256 * 1024


class Network(NamedTuple):
    """Time to first byte per request and bytes per second per connection (0: unlimited)."""

    first_byte_seconds: float = 0.0
    bytes_per_second: float = 0.0


LOOPBACK = Network()
# S3 GET from Lambda in the same region: ~20 ms to the first byte, ~80 MB/s per connection
# (published guidance and common measurements; assumed, not measured here).
S3_LIKE = Network(first_byte_seconds=0.020, bytes_per_second=80e6)


class ByteCounter:
    def __init__(self) -> None:
        self.bytes_sent = 0
        self.requests = 0
        self._lock = threading.Lock()

    def add(self, sent: int) -> None:
        with self._lock:
            self.bytes_sent += sent

    def request(self) -> None:
        with self._lock:
            self.requests += 1

    def reset(self) -> None:
        with self._lock:
            self.bytes_sent = 0
            self.requests = 0


def _pace(network: Network, started: float, sent: int) -> None:
    """Sleep while `sent` bytes are ahead of the connection's bandwidth."""
    if network.bytes_per_second:
        ahead = sent / network.bytes_per_second - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


def _handler(root: Path, counter: ByteCounter, network: Network) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = root / self.path.split("?", 1)[0].lstrip("/")
            if not path.is_file() or root not in path.resolve().parents:
                self.send_error(404)
                return
            counter.request()
            if network.first_byte_seconds:
                time.sleep(network.first_byte_seconds)
            size = path.stat().st_size
            start, end = 0, size - 1
            match = _RANGE.fullmatch(self.headers.get("Range", ""))
            if match and (match[1] or match[2]):
                if match[1]:
                    start = int(match[1])
                    end = int(match[2]) if match[2] else size - 1
                else:
                    start = max(0, size - int(match[2]))
                end = min(end, size - 1)
                if start >= size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(end - start + 1))
            self.end_headers()
            self._send(path, start, end - start + 1)

        def _send(self, path: Path, start: int, length: int) -> None:
            started, sent = time.monotonic(), 0
            with path.open("rb") as source:
                source.seek(start)
                while length > 0:
                    _pace(network, started, sent)
                    chunk = source.read(min(length, _CHUNK))
                    if not chunk:
                        return
                    try:
                        self.wfile.write(chunk)
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    counter.add(len(chunk))
                    sent += len(chunk)
                    length -= len(chunk)

    return Handler


class _QuietServer(ThreadingHTTPServer):
    """Threads per connection; a send buffer like a network's bandwidth-delay product.

    On loopback the kernel would otherwise accept many MB of an open-ended range response that
    ffmpeg never reads (it closes the connection to seek), and count them as sent.
    """

    daemon_threads = True

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = super().get_request()
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
        return connection, address

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # ffmpeg drops connections when it seeks; that is not an error


@contextmanager
def serve_directory(root: Path, network: Network = LOOPBACK) -> Iterator[tuple[str, ByteCounter]]:
    """Serve `root` on 127.0.0.1; yields the base URL and the byte counter."""
    counter = ByteCounter()
    server = _QuietServer(("127.0.0.1", 0), _handler(root.resolve(), counter, network))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", counter
    finally:
        server.shutdown()
        server.server_close()
