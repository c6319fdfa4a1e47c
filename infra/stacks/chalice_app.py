"""Chalice's CDK construct, packaged for the runtime lapse actually deploys on.

`chalice.cdk.Chalice` packages the app with the local interpreter's version (3.11 here) and takes
the Chalice stage from the CDK scope's name. lapse needs python3.12 (Amazon Linux 2023, glibc 2.34:
the ffmpeg binary needs glibc >= 2.28), so packaging here:

- picks wheels for the deployed runtime (cp312 / manylinux up to glibc 2.34), not for the local one;
- uses the Chalice stage given explicitly, and imports a fresh copy of the app for each stage (the
  app reads `LAPSE_QUEUE_NAME` at import time, and Chalice exports the stage's variables before
  importing it);
- exposes the packaged SAM template, so the stack can find each function and its event sources.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

from chalice import api as chalice_api
from chalice.cdk import Chalice
from chalice.config import Config
from chalice.deploy.packager import PipRunner
from constructs import Construct

LAMBDA_RUNTIME = "python3.12"
_TARGET_PYTHON = LAMBDA_RUNTIME.removeprefix("python")


def _download_for_target(
    self: PipRunner,
    abi: str,
    packages: list[str],
    directory: str,
    platforms: list[str] | None = None,
) -> None:
    """PipRunner.download_manylinux_wheels, for the deployed interpreter instead of this one.

    Chalice asks pip for `--abi cp312` wheels but not for Python 3.12, so pip (on 3.11) finds no
    compatible cp312 wheel (cffi, for one) and Chalice gives up on that dependency.
    """
    for package in packages:
        arguments = ["--only-binary=:all:", "--no-deps"]
        for platform in platforms or ["manylinux2014_x86_64"]:
            arguments += ["--platform", platform]
        arguments += ["--implementation", "cp", "--python-version", _TARGET_PYTHON]
        arguments += ["--abi", abi, "--dest", directory, package]
        self._execute("download", arguments)


@contextmanager
def _isolated_import(environment: dict[str, str]) -> Iterator[None]:
    """Import the app afresh with `environment` exported, and leave no trace of it afterwards."""
    saved_env = dict(os.environ)
    saved_modules = {
        name: module
        for name, module in sys.modules.items()
        if name == "app" or name.split(".")[0] == "chalicelib"
    }
    for name in saved_modules:
        del sys.modules[name]
    os.environ.update(environment)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        for name in [n for n in sys.modules if n == "app" or n.split(".")[0] == "chalicelib"]:
            del sys.modules[name]
        sys.modules.update(saved_modules)


class ChaliceApp(Chalice):
    """The Chalice app as SAM resources inside a stack, packaged for `LAMBDA_RUNTIME`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        source_dir: str,
        chalice_stage: str,
        stage_config: dict[str, Any],
        import_environment: dict[str, str],
    ) -> None:
        self._chalice_stage = chalice_stage
        self._import_environment = import_environment
        super().__init__(scope, construct_id, source_dir=source_dir, stage_config=stage_config)

    def _package_app(self) -> None:
        runtime = property(lambda _self: LAMBDA_RUNTIME)
        with (
            _isolated_import(self._import_environment),
            mock.patch.object(Config, "lambda_python_version", runtime),
            mock.patch.object(PipRunner, "download_manylinux_wheels", _download_for_target),
        ):
            chalice_api.package_app(
                project_dir=self.source_dir,
                output_dir=self._sam_package_dir,
                stage=self._chalice_stage,
                chalice_config=self.stage_config,
            )

    @property
    def packaged_template(self) -> dict[str, Any]:
        """The SAM template as Chalice wrote it (logical ids are preserved in the stack)."""
        template: dict[str, Any] = json.loads(
            (Path(self._sam_package_dir) / "sam.json").read_text()
        )
        return template

    @property
    def deployment_zip(self) -> Path:
        return Path(self._sam_package_dir) / "deployment.zip"

    def functions(self) -> dict[str, dict[str, Any]]:
        """Logical id → properties of every function Chalice packaged."""
        resources = self.packaged_template["Resources"]
        return {
            logical_id: resource["Properties"]
            for logical_id, resource in resources.items()
            if resource["Type"] == "AWS::Serverless::Function"
        }
