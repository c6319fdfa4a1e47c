"""A burst of simultaneous requests against the local API, as `make run` starts it:

    python -m bench.burst [connections] [rounds]

Each round opens `connections` (default 200) connections at once (a barrier releases them
together), each sending one authorised request: half `GET /health`, half
`GET /projects/{id}/timelapses` (a DynamoDB query behind the API). Prints what came back (status
codes or the connection error's type) and the latencies. tests/e2e/test_local_stack.py asserts the
same burst is answered 200 every time; this prints the numbers, beside a baseline taken in the
same run: the same requests one at a time.
"""

from __future__ import annotations

import collections
import http.client
import statistics
import sys
import threading
import time
from pathlib import Path

from bench.stack import running_stack
from chalicelib.adapters.auth import make_local_token
from local.stack import RUN_DIR


def burst(port: int, connections: int, token: str) -> tuple[collections.Counter[str], list[float]]:
    answers: collections.Counter[str] = collections.Counter()
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(connections)

    def one(index: int) -> None:
        path = "/health" if index % 2 else "/projects/p-burst/timelapses"
        start.wait()
        began = time.monotonic()
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
            answer = connection.getresponse()
            answer.read()
            outcome = str(answer.status)
            connection.close()
        except OSError as exc:
            outcome = type(exc).__name__
        with lock:
            answers[outcome] += 1
            latencies.append(time.monotonic() - began)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, latencies


def one_at_a_time(port: int, count: int, token: str) -> list[float]:
    latencies = []
    for index in range(count):
        path = "/health" if index % 2 else "/projects/p-burst/timelapses"
        began = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        answer = connection.getresponse()
        answer.read()
        connection.close()
        assert answer.status == 200, answer.status
        latencies.append(time.monotonic() - began)
    return latencies


def main() -> None:
    connections = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    token = make_local_token("burst", "local-dev-secret")
    RUN_DIR.mkdir(exist_ok=True)
    with running_stack(Path(RUN_DIR) / "bench-burst.log") as stack:
        alone = one_at_a_time(stack.config.api_port, 40, token)
        print(
            f"baseline: 40 requests one at a time: median "
            f"{statistics.median(alone) * 1000:.0f} ms, {sum(alone):.2f} s in all",
            flush=True,
        )
        for round_ in range(1, rounds + 1):
            started = time.monotonic()
            answers, latencies = burst(stack.config.api_port, connections, token)
            elapsed = time.monotonic() - started
            cuts = statistics.quantiles(latencies, n=100)
            print(
                f"round {round_}: {connections} simultaneous connections in {elapsed:.2f} s: "
                f"{dict(answers)}; latency p50 {cuts[49] * 1000:.0f} ms, "
                f"p95 {cuts[94] * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms",
                flush=True,
            )
    with open("/proc/loadavg") as load:
        print(f"load average {load.read().split()[0]}")


if __name__ == "__main__":
    main()
