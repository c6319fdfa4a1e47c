"""cfn-lint on every template; the ffmpeg layer's contents, version, licence and size budget."""

from __future__ import annotations

import json
import subprocess
import zipfile

import pytest
from cfnlint.api import ManualArgs, lint_file
from infra_template import REPO

pytestmark = [pytest.mark.infrastructure, pytest.mark.xdist_group("infra")]

LAYER_ZIP = REPO / "build" / "layers" / "ffmpeg.zip"
LAMBDA_UNZIPPED_LIMIT = 262_144_000  # function code + all its layers, unzipped (250 MiB)


def test_cfn_lint_finds_nothing(stack):
    matches = lint_file(stack.path, config=ManualArgs(regions=["us-east-1", "eu-central-1"]))
    assert [str(m) for m in matches] == []


def _unzipped_size(path) -> int:
    with zipfile.ZipFile(path) as archive:
        return sum(info.file_size for info in archive.infolist())


def _asset_zip(synthesis, stack, logical_id, prop_path):
    """The packaged zip behind a resource's code location (resolved through the assets manifest)."""
    value = stack.resources[logical_id]["Properties"]
    for key in prop_path:
        value = value[key]
    asset_hash = value.removesuffix(".zip")
    manifest = json.loads((synthesis.out / f"{stack.name}.assets.json").read_text())
    source = manifest["files"][asset_hash]["source"]
    return synthesis.out / source["path"]


def test_layer_zip_holds_an_executable_ffmpeg(synthesis):
    with zipfile.ZipFile(LAYER_ZIP) as archive:
        info = archive.getinfo("bin/ffmpeg")
    assert (info.external_attr >> 16) & 0o111 == 0o111
    assert _unzipped_size(LAYER_ZIP) < 200 * 1024 * 1024


def test_stack_deploys_the_layer_that_make_layer_builds(synthesis):
    stack = synthesis.stacks["lapse-dev"]
    layer_id, _ = stack.one("AWS::Lambda::LayerVersion")
    deployed = _asset_zip(synthesis, stack, layer_id, ["Content", "S3Key"])
    assert deployed.read_bytes() == LAYER_ZIP.read_bytes()


def test_processor_code_and_layers_fit_lambdas_size_limit(synthesis):
    stack = synthesis.stacks["lapse-dev"]
    code = _asset_zip(synthesis, stack, "ProcessUploads", ["CodeUri", "Key"])
    dependencies_id, _ = stack.one("AWS::Serverless::LayerVersion")
    dependencies = _asset_zip(synthesis, stack, dependencies_id, ["ContentUri", "Key"])
    with zipfile.ZipFile(dependencies) as archive:
        names = archive.namelist()
    site_packages = "python/lib/python3.12/site-packages/"
    assert all(n.startswith(site_packages) for n in names)
    # The binary reaches Lambda through the ffmpeg layer only; imageio-ffmpeg is left out.
    assert not [n for n in names if "imageio_ffmpeg" in n]
    # Wheels for the deployed interpreter (python3.12), not for the one that synthesized.
    assert f"{site_packages}_cffi_backend.cpython-312-x86_64-linux-gnu.so" in names
    assert not [n for n in names if "cpython-311" in n]
    total = _unzipped_size(code) + _unzipped_size(dependencies) + _unzipped_size(LAYER_ZIP)
    assert total < LAMBDA_UNZIPPED_LIMIT


def test_ffmpeg_is_9_0_2_and_a_gpl_build(synthesis):
    import imageio_ffmpeg  # noqa: PLC0415 - the layer's source

    version = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-version"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert version.startswith("ffmpeg version n9.0.2")
    assert "--enable-gpl" in version
    readme = (REPO / "layers" / "ffmpeg" / "README.md").read_text()
    assert "9.0.2" in readme
    assert "GPL" in readme
