"""What Lambda runs is `app.py` and `chalicelib/`, nothing else: the CLI is its own package, and
the local stack's `/dev/token` route is not part of the app."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from app import app

ROOT = Path(__file__).resolve().parents[2]


def test_the_app_has_no_dev_token_route() -> None:
    assert "/dev/token" not in app.routes


def test_importing_the_app_loads_neither_the_cli_nor_the_local_stack() -> None:
    # A fresh interpreter: this test session has imported everything already.
    probe = (
        "import json, sys, app; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
    )
    assert "chalicelib" in loaded
    assert not {"lapse_cli", "local", "tests", "bench"} & set(loaded)


def test_chalicelib_holds_no_command_line_code() -> None:
    sources = list((ROOT / "chalicelib").rglob("*.py"))
    assert sources
    assert not [p for p in sources if "lapse_cli" in p.read_text() or p.stem in {"cli", "client"}]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    found |= {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    return found


def test_use_cases_depend_on_ports_not_on_adapters() -> None:
    for path in (ROOT / "chalicelib" / "services").glob("*.py"):
        leaks = {
            m
            for m in imported_modules(path)
            if m.startswith(("chalicelib.adapters", "chalicelib.media", "boto3", "pynamodb"))
        }
        assert not leaks, (path.name, leaks)


def test_the_domain_is_pure() -> None:
    for path in (ROOT / "chalicelib" / "domain").glob("*.py"):
        roots = {m.split(".")[0] for m in imported_modules(path)}
        assert not roots & {"boto3", "botocore", "pynamodb", "chalice", "os"}, path.name
        assert not {
            m
            for m in imported_modules(path)
            if m.startswith(("chalicelib.adapters", "chalicelib.services", "chalicelib.media"))
        }, path.name


def test_chalicelib_never_imports_pyav() -> None:
    # PyAV is not in the Lambda package; only the engine benchmark's "seek" row uses it.
    for path in (ROOT / "chalicelib").rglob("*.py"):
        assert not {m for m in imported_modules(path) if m.split(".")[0] == "av"}, path.name
