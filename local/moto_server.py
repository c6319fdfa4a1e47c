"""moto server with DynamoDB requests serialized (`python -m local.moto_server -p PORT`): the
local stack's S3, SQS and DynamoDB.

moto's server is threaded and its DynamoDB checks a ConditionExpression and then writes, with no
lock in between: two concurrent conditional updates of one item can both succeed (measured: 2 of
5 concurrent claims both won; a cancel and a complete both won). Real DynamoDB evaluates the
condition and writes atomically per item, and lapse's exactly-once guarantees rest on that. This
wrapper restores the property by running one DynamoDB request at a time; S3 and SQS stay
concurrent (SQS long polls must not block the table). Object GETs stream from the key's buffer
and cost what they send, ranges included (local/s3_streaming.py); multipart uploads complete in
bounded memory (local/s3_multipart.py); form-encoded PUTs are answered as S3 answers them
(local/s3_form_put.py).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

from local import persist, s3_multipart, s3_streaming
from local.s3_form_put import FormEncodedPut

StartResponse = Callable[..., Any]


class AtomicDynamoDB:
    """WSGI middleware: DynamoDB requests (X-Amz-Target: DynamoDB_*) one at a time."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        self._app = app
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if not str(environ.get("HTTP_X_AMZ_TARGET", "")).startswith("DynamoDB_"):
            return self._app(environ, start_response)
        with self._lock:
            return list(self._app(environ, start_response))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    parser.add_argument("--data", type=Path, help="keep objects here across restarts")
    parser.add_argument("--region", default="us-east-1")
    args = parser.parse_args(argv)
    s3_streaming.install()
    s3_multipart.install()
    saver = persist.Saver(args.data) if args.data else None
    if saver:
        started = time.monotonic()
        count = persist.restore_objects(args.data, args.region)
        print(f"restored {count} objects in {time.monotonic() - started:.2f} s", flush=True)
        saver.start()

    def stop(*_: object) -> None:
        if saver:
            started = time.monotonic()
            messages = persist.save_queues(args.data, args.region)
            print(f"saved {messages} queue messages", flush=True)
            copied = saver.stop()
            print(
                f"saved objects ({copied / 1e6:.0f} MB new) in {time.monotonic() - started:.1f} s",
                flush=True,
            )
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        s3_streaming.RangedGet(FormEncodedPut(AtomicDynamoDB(app))),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
