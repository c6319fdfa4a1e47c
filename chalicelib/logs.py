"""Observability with Powertools: one logger, metrics (CloudWatch EMF) and tracing hooks.

Deployed, logs are structured JSON with the timelapse id and request id on every line. Locally
(`LAPSE_STAGE=local`) the same records print as one readable line each.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "lapse")
_STANDARD = {"level", "location", "message", "timestamp", "service", "xray_trace_id"}


class ReadableFormatter(LambdaPowertoolsFormatter):
    """`10:03:18 INFO  claimed  timelapse_id=a5a10403… attempt=1` — for a person at a terminal."""

    def serialize(self, log: dict[str, Any]) -> str:  # type: ignore[override]
        moment = datetime.now(UTC).strftime("%H:%M:%S")
        extras = " ".join(
            f"{key}={_short(value)}" for key, value in log.items() if key not in _STANDARD
        )
        line = f"{moment} {log.get('level', ''):<5} {log.get('message', '')}"
        return f"{line}  {extras}" if extras else line


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 300 else text[:300] + "…"


def _formatter() -> LambdaPowertoolsFormatter | None:
    if os.environ.get("LAPSE_STAGE", "local") == "local" and not os.environ.get("LAPSE_LOG_JSON"):
        return ReadableFormatter()
    return None


logger = Logger(service=SERVICE, logger_formatter=_formatter())
# Metrics go out as CloudWatch embedded metric format on stdout; flushed by the handlers.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "lapse"), service=SERVICE
)
# X-Ray segments where tracing is on (deployed); a no-op locally and in tests.
tracer = Tracer(service=SERVICE, disabled=os.environ.get("LAPSE_STAGE", "local") == "local")
