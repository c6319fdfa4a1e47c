"""Serves the Chalice app over HTTP on loopback, as API Gateway would (`python -m local.api`)."""

from __future__ import annotations

import os

from chalice.config import Config
from chalice.local import create_local_server

from app import app


def main() -> None:
    host = os.environ.get("LAPSE_API_HOST", "127.0.0.1")
    port = int(os.environ.get("LAPSE_API_PORT", "8000"))
    config = Config.create(chalice_stage="local", app_name="lapse", chalice_app=app)
    server = create_local_server(app, config, host, port)
    server.server.serve_forever()


if __name__ == "__main__":
    main()
