"""The one Powertools logger of lapse: structured JSON, with the timelapse id and request id added
as context by the handlers (`logger.append_keys`)."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "lapse"))
