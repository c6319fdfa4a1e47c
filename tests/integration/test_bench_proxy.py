"""bench/proxy.py, the S3-like link `make bench` puts in front of the local storage: each request
waits before it reaches storage, each connection is held to its bandwidth, bytes pass unchanged."""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.proxy import ThrottlingProxy
from bench.range_server import Network, serve_directory

pytestmark = [pytest.mark.integration]

SIZE = 2_000_000


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, bytes]]:
    root = tmp_path_factory.mktemp("origin")
    data = bytes(range(256)) * (SIZE // 256)
    Path(root / "object").write_bytes(data)
    with serve_directory(root) as (base, _):
        yield int(base.rsplit(":", 1)[1]), data


def fetch(connection: http.client.HTTPConnection, spec: str) -> bytes:
    connection.request("GET", "/object", headers={"Range": spec})
    return connection.getresponse().read()


def test_a_request_waits_and_an_answer_is_paced(origin: tuple[int, bytes]) -> None:
    port, data = origin
    link = Network(first_byte_seconds=0.05, bytes_per_second=20e6)  # 2 MB: 0.1 s
    with ThrottlingProxy(("127.0.0.1", port), link) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        started = time.monotonic()
        small = fetch(connection, "bytes=0-99")
        small_seconds = time.monotonic() - started
        whole = fetch(connection, "bytes=0-")  # the same connection: a second request
        both_seconds = time.monotonic() - started
        connection.close()

    assert small == data[:100]
    assert whole == data
    assert small_seconds >= 0.05
    assert both_seconds >= 0.05 + 0.05 + SIZE / 20e6
    assert proxy.traffic.requests == 2
    assert proxy.traffic.bytes_down > SIZE


def test_idle_time_earns_no_burst(origin: tuple[int, bytes]) -> None:
    port, data = origin
    with ThrottlingProxy(("127.0.0.1", port), Network(0, 20e6)) as proxy:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        fetch(connection, "bytes=0-99")
        time.sleep(0.2)
        started = time.monotonic()
        assert fetch(connection, "bytes=0-") == data
        seconds = time.monotonic() - started
        connection.close()

    assert seconds >= 0.9 * SIZE / 20e6
