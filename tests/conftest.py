"""Shared by every test folder: Hypothesis runs the same examples on every run (derandomized), so a
property test fails the same way on a developer's machine and in CI, never by the draw.
`HYPOTHESIS_PROFILE=explore` draws fresh examples instead.

Ctrl-C reaches what the tests start: a run launched in the background of a script inherits SIGINT
ignored, and every process it starts would ignore the Ctrl-C the end-to-end tests send (the CLI's
resume offer, the stack's stop)."""

from __future__ import annotations

import os
import signal

from hypothesis import settings

signal.signal(signal.SIGINT, signal.default_int_handler)

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
