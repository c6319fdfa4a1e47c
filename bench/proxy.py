"""A TCP proxy in front of the local storage that makes it look like S3 seen from Lambda.

Set as `LAPSE_S3_ENDPOINT_URL`, every S3 request of the API and the worker, and every presigned
URL they hand out, goes through it. Each connection gets what bench/range_server.py's `Network`
says: a wait before a request reaches storage (so its first answer byte comes that much later)
and a bandwidth per direction. It relays bytes and does not parse HTTP: a request starts when the
client sends after the server has answered (HTTP/1.1 without pipelining, as boto3, urllib3 and
ffmpeg speak it).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from bench.range_server import Network

CHUNK_BYTES = 256 * 1024
# Like a link's bandwidth-delay product (80 MB/s x 20 ms): on loopback the kernel would otherwise
# take many MB of an answer its reader never reads (ffmpeg hangs up to seek).
SEND_BUFFER_BYTES = 1024 * 1024


@dataclass
class Traffic:
    """What went through the proxy: requests (client turns) and bytes each way."""

    requests: int = 0
    bytes_down: int = 0
    bytes_up: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, *, requests: int = 0, down: int = 0, up: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.bytes_down += down
            self.bytes_up += up


class Pacer:
    """Holds a direction of one connection to `bytes_per_second`; idle time earns no credit."""

    def __init__(self, bytes_per_second: float) -> None:
        self.bytes_per_second = bytes_per_second
        self.free_at = 0.0

    def wait(self, size: int) -> None:
        if not self.bytes_per_second:
            return
        start = max(time.monotonic(), self.free_at)
        self.free_at = start + size / self.bytes_per_second
        delay = self.free_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)


class Connection:
    def __init__(self, client: socket.socket, upstream: socket.socket, network: Network) -> None:
        self.client = client
        self.upstream = upstream
        self.network = network
        self.answered = True  # a new connection's first bytes start a request

    def relay_up(self, traffic: Traffic) -> None:
        pacer = Pacer(self.network.bytes_per_second)
        with contextlib.suppress(OSError):
            while chunk := self.client.recv(CHUNK_BYTES):
                if self.answered:
                    self.answered = False
                    traffic.add(requests=1)
                    if self.network.first_byte_seconds:
                        time.sleep(self.network.first_byte_seconds)
                traffic.add(up=len(chunk))
                pacer.wait(len(chunk))
                self.upstream.sendall(chunk)
        self.close()

    def relay_down(self, traffic: Traffic) -> None:
        pacer = Pacer(self.network.bytes_per_second)
        with contextlib.suppress(OSError):
            while chunk := self.upstream.recv(CHUNK_BYTES):
                self.answered = True
                traffic.add(down=len(chunk))  # taken from storage, before the client has it
                pacer.wait(len(chunk))
                self.client.sendall(chunk)
        self.close()

    def close(self) -> None:
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


class ThrottlingProxy:
    """Listens on 127.0.0.1 (a free port) and relays every connection to `upstream`."""

    def __init__(self, upstream: tuple[str, int], network: Network) -> None:
        self.upstream = upstream
        self.network = network
        self.traffic = Traffic()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, name="proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER_BYTES)
                try:
                    upstream = socket.create_connection(self.upstream, timeout=10)
                except OSError:
                    client.close()
                    continue
                upstream.settimeout(None)
                connection = Connection(client, upstream, self.network)
                for relay in (connection.relay_up, connection.relay_down):
                    threading.Thread(target=relay, args=(self.traffic,), daemon=True).start()

    def __enter__(self) -> ThrottlingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        self._listener.close()


@contextlib.contextmanager
def throttled(upstream: tuple[str, int], network: Network) -> Iterator[ThrottlingProxy]:
    with ThrottlingProxy(upstream, network) as proxy:
        yield proxy
