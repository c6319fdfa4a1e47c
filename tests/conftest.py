"""Shared by every test folder: Hypothesis runs the same examples on every run (derandomized), so a
property test fails the same way on a developer's machine and in CI, never by the draw.
`HYPOTHESIS_PROFILE=explore` draws fresh examples instead."""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))
