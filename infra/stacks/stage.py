"""What a deployed stage is made of: names, sizes and options, read from `.chalice/config.json`.

Memory, timeout and reserved concurrency live in Chalice's config (where Chalice reads them); the
stack reads the same file, so the queue's visibility timeout and the alarms follow the
processor's timeout instead of restating it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Storage = Literal["s3", "r2"]

# Chalice function name → logical id in the packaged template. A new handler in the app needs a
# line here and a role in permissions.py; synthesis fails until it has both.
FUNCTIONS = {
    "api_handler": "APIHandler",
    "process_uploads": "ProcessUploads",
    "watchdog": "Watchdog",
    "dead_letters": "DeadLetters",
    "deliver_webhooks": "DeliverWebhooks",
    "webhook_dead_letters": "WebhookDeadLetters",
}
PROCESSOR = "process_uploads"
DEAD_LETTER_CONSUMER = "dead_letters"
WEBHOOK_DELIVERER = "deliver_webhooks"
WEBHOOK_DEAD_LETTER_CONSUMER = "webhook_dead_letters"

# Lambda's /tmp for the processor: the decode-all fallback may stage the source locally, and the
# render writes the timelapse and poster before uploading them.
PROCESSOR_EPHEMERAL_MB = 10240
VISIBILITY_FACTOR = 6  # AWS's advice for SQS event sources: visibility >= 6 x function timeout
MAX_RECEIVE_COUNT = 5
LOG_RETENTION_DAYS = {"dev": 14, "prod": 90}  # values of logs.RetentionDays


@dataclass(frozen=True)
class FunctionSize:
    memory_mb: int
    timeout_s: int
    reserved_concurrency: int | None


@dataclass(frozen=True)
class Stage:
    name: str  # the Chalice stage: dev or prod
    storage: Storage
    functions: dict[str, FunctionSize]
    queue_name: str

    @property
    def stack_name(self) -> str:
        return f"lapse-{self.name}" if self.storage == "s3" else f"lapse-{self.name}-r2"

    @property
    def processor(self) -> FunctionSize:
        return self.functions[PROCESSOR]

    @property
    def visibility_timeout_s(self) -> int:
        return VISIBILITY_FACTOR * self.processor.timeout_s

    @property
    def dlq_name(self) -> str:
        return f"{self.queue_name}-dlq"

    @property
    def webhook_queue_name(self) -> str:
        return self.queue_name.removesuffix("-process") + "-webhooks"

    @property
    def webhook_dlq_name(self) -> str:
        return f"{self.webhook_queue_name}-dlq"

    @property
    def webhook_visibility_timeout_s(self) -> int:
        return VISIBILITY_FACTOR * self.functions[WEBHOOK_DELIVERER].timeout_s

    @property
    def webhook_dlq_visibility_timeout_s(self) -> int:
        return VISIBILITY_FACTOR * self.functions[WEBHOOK_DEAD_LETTER_CONSUMER].timeout_s

    @property
    def dlq_visibility_timeout_s(self) -> int:
        return VISIBILITY_FACTOR * self.functions[DEAD_LETTER_CONSUMER].timeout_s

    @property
    def log_retention_days(self) -> int:
        return LOG_RETENTION_DAYS.get(self.name, 14)


def _lookup(config: dict[str, Any], stage: str, function: str, key: str) -> Any:
    staged = config["stages"][stage]
    for layer in (staged.get("lambda_functions", {}).get(function, {}), staged, config):
        if key in layer:
            return layer[key]
    return None


def load_stage(project_dir: Path, name: str, storage: Storage) -> Stage:
    config = json.loads((project_dir / ".chalice" / "config.json").read_text())
    if name not in config["stages"] or name == "local":
        raise ValueError(f"no deployable stage {name!r} in .chalice/config.json")
    functions = {
        function: FunctionSize(
            memory_mb=_lookup(config, name, function, "lambda_memory_size") or 128,
            timeout_s=_lookup(config, name, function, "lambda_timeout") or 60,
            reserved_concurrency=_lookup(config, name, function, "reserved_concurrency"),
        )
        for function in FUNCTIONS
    }
    suffix = "" if storage == "s3" else "-r2"
    return Stage(
        name=name,
        storage=storage,
        functions=functions,
        queue_name=f"lapse-{name}{suffix}-process",
    )
