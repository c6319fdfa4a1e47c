"""Serves the Chalice app over HTTP on loopback, as API Gateway would (`python -m local.api`)."""

from __future__ import annotations

import json
import os
import threading
from http import HTTPStatus
from typing import Any

from chalice.config import Config
from chalice.local import (
    ChaliceRequestHandler,
    LocalDevServer,
    LocalGateway,
    LocalGatewayException,
    ThreadedHTTPServer,
)

from app import app
from local.dev_token import dev

# The local gateway's own refusals (API Gateway answers an unknown route 403), as lapse names them.
GATEWAY_ERRORS = {
    401: ("unauthorized", "not authorized"),
    403: ("not_found", "no such route"),
}


def error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


# Chalice keeps the request being handled in one attribute of the app (`app.current_request`), as
# Lambda runs one request at a time per instance; the local server runs each connection in its own
# thread. Two requests at once (a health check the client gave up on, Uppy's parallel part
# signing) would read each other's body and token, so the app handles one request at a time here.
APP_LOCK = threading.Lock()


class SerializedGateway(LocalGateway):
    def handle_request(self, *args: Any, **kwargs: Any) -> Any:
        with APP_LOCK:
            return super().handle_request(*args, **kwargs)


class LapseRequestHandler(ChaliceRequestHandler):
    """Chalice's handler, with every refusal in lapse's `{"error": {code, message}}` shape: the
    HTTP server's own (an oversized header line or too many headers → 431, a malformed request
    line → 400), which http.server writes as HTML, and the gateway's (an unknown route)."""

    def __init__(
        self, request: Any, client_address: Any, server: Any, app_object: Any, config: Any
    ) -> None:
        self.local_gateway = SerializedGateway(app_object, config)
        # BaseHTTPRequestHandler's constructor handles the request: the gateway must exist first.
        super(ChaliceRequestHandler, self).__init__(request, client_address, server)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        reason = message or HTTPStatus(code).phrase
        body = error_body(HTTPStatus(code).phrase.lower().replace(" ", "_"), reason)
        self.close_connection = True
        self.send_response(code, reason)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= HTTPStatus.OK:
            self.wfile.write(body)

    def _send_error_response(self, error: LocalGatewayException) -> None:
        code, message = GATEWAY_ERRORS.get(error.CODE, ("internal_error", "internal error"))
        self._send_http_response(error.CODE, dict(error.headers), error_body(code, message))


class BurstServer(ThreadedHTTPServer):
    """Chalice's threaded server with a listen backlog for bursts: with http.server's 5, a burst
    of 200 connections left 110 unanswered after 60 s (the kernel drops what the queue cannot
    hold). Threads are daemons so that a client holding a connection open cannot delay a stop."""

    request_queue_size = 1024
    daemon_threads = True


def main() -> None:
    app.register_blueprint(dev)  # the local stack's own route, never deployed
    host = os.environ.get("LAPSE_API_HOST", "127.0.0.1")
    port = int(os.environ.get("LAPSE_API_PORT", "8000"))
    config = Config.create(chalice_stage="local", app_name="lapse", chalice_app=app)
    server = LocalDevServer(
        app, config, host, port, handler_cls=LapseRequestHandler, server_cls=BurstServer
    )
    server.server.serve_forever()


if __name__ == "__main__":
    main()
