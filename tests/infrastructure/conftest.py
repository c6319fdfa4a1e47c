"""Synthesizes the stacks once per session and hands the templates to the tests.

Run these alone with `pytest tests/infrastructure` or `pytest -m infrastructure`. Under
`pytest -n 2 --dist loadgroup` they share one worker (xdist group "infra"), so synthesis runs once.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from infra_template import REPO, STACKS, Stack, Synthesis


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "infrastructure: asserts on the synthesized CloudFormation templates"
    )
    # Registered by pytest-xdist when it is loaded; declared here so the tests also run without it.
    config.addinivalue_line("markers", "xdist_group(name): run in the same xdist worker")


@pytest.fixture(scope="session")
def synthesis(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    """Synthesize once per run, even when xdist spreads these tests over several workers.

    `--dist loadgroup` should keep the "infra" group on one worker, but with pytest 9.2 and
    pytest-xdist 3.8 it does not (xdist renames node ids through `item._nodeid`, which pytest 9
    no longer reads), so workers share one synthesis through a lock in the run's temp root.
    """
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if run_id is None:
        return _synthesize(tmp_path_factory.mktemp("infra"))
    shared = tmp_path_factory.getbasetemp().parent / f"infra-{run_id}"
    with (shared.parent / f"infra-{run_id}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (shared / "done").exists():
            return _load(shared)
        shared.mkdir(exist_ok=True)
        synthesis = _synthesize(shared)
        (shared / "done").touch()
        return synthesis


def _synthesize(out: Path) -> Synthesis:
    env = {**os.environ, "PYTHON": sys.executable}
    layer = subprocess.run(
        ["bash", "layers/ffmpeg/build.sh"],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
    )
    assert layer.returncode == 0, layer.stderr
    synth = subprocess.run(
        [sys.executable, "infra/app.py", "--out", str(out), "--work", "build/chalice-tests"],
        check=False,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert synth.returncode == 0, f"synthesis failed:\n{synth.stdout}\n{synth.stderr}"
    return _load(out)


def _load(out: Path) -> Synthesis:
    stacks = {
        name: Stack(name, json.loads(path.read_text()), path)
        for name in STACKS
        for path in [out / f"{name}.template.json"]
    }
    config = json.loads((REPO / ".chalice" / "config.json").read_text())
    return Synthesis(out=out, stacks=stacks, chalice_config=config)


@pytest.fixture(params=STACKS)
def stack(request: pytest.FixtureRequest, synthesis: Synthesis) -> Stack:
    return synthesis.stacks[request.param]


@pytest.fixture(params=["lapse-dev", "lapse-prod"])
def s3_stack(request: pytest.FixtureRequest, synthesis: Synthesis) -> Stack:
    return synthesis.stacks[request.param]


@pytest.fixture
def r2_stack(synthesis: Synthesis) -> Stack:
    return synthesis.stacks["lapse-dev-r2"]
