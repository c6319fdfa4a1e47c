"""Every log line of the worker names its timelapse and request; locally it reads as one line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.e2e.conftest import Api, RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def test_worker_log_lines_carry_timelapse_and_request_ids(
    alice: Api, clip_5s: Path, stack: RunningStack
) -> None:
    tid = alice.submit(clip_5s, targetSeconds=1)["timelapse"]["id"]
    assert alice.wait_for(tid)["status"] == "complete"

    lines = [line for line in stack.log.read_text().splitlines() if f"timelapse_id={tid}" in line]
    messages = [line.split()[2] for line in lines]
    # claimed → rendered → complete, each a readable line: "HH:MM:SS LEVEL message  key=value…"
    assert {"claimed", "rendered", "complete"} <= set(messages), lines
    for line in lines:
        assert re.match(r"^\d\d:\d\d:\d\d (INFO|WARNING|ERROR|DEBUG)\s", line), line
        assert re.search(r"request_id=[0-9a-f-]{36}", line), line
