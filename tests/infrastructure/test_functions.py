"""The three functions: runtime, sizes (as in .chalice/config.json), layer, environment."""

from __future__ import annotations

import pytest
from infra_template import FUNCTIONS

pytestmark = [pytest.mark.infrastructure, pytest.mark.xdist_group("infra")]

SUPPORTED_RUNTIMES = {"python3.12", "python3.13", "python3.14"}  # Amazon Linux 2023: glibc >= 2.34


def test_app_packages_exactly_the_known_functions(stack):
    assert set(stack.of_type("AWS::Serverless::Function")) == set(FUNCTIONS.values())
    assert stack.of_type("AWS::Lambda::Function") == {}  # no helper Lambdas from CDK constructs


@pytest.mark.parametrize("name", FUNCTIONS)
def test_functions_run_on_python312_or_newer(stack, name):
    # Chalice writes the local interpreter's version (3.11 → Amazon Linux 2, glibc 2.26); the
    # ffmpeg binary needs glibc >= 2.28. The stack overrides it.
    assert stack.function(name)["Runtime"] in SUPPORTED_RUNTIMES


@pytest.mark.parametrize("name", FUNCTIONS)
def test_memory_and_timeout_match_chalice_config(synthesis, stack, name):
    stage = "prod" if stack.name == "lapse-prod" else "dev"
    staged = synthesis.chalice_config["stages"][stage]
    configured = staged["lambda_functions"][name]
    function = stack.function(name)
    assert function["MemorySize"] == configured["lambda_memory_size"]
    assert function["Timeout"] == configured["lambda_timeout"]
    if "reserved_concurrency" in configured:
        assert function["ReservedConcurrentExecutions"] == configured["reserved_concurrency"]


def test_processor_is_sized_for_ffmpeg(stack):
    processor = stack.function("process_uploads")
    assert 3008 <= processor["MemorySize"] <= 10240
    assert processor["EphemeralStorage"]["Size"] >= 2048
    assert processor["Timeout"] == 900


def test_processor_has_reserved_concurrency(stack):
    assert stack.function("process_uploads")["ReservedConcurrentExecutions"] >= 1


def test_api_answers_within_api_gateways_limit(stack):
    assert stack.function("api_handler")["Timeout"] <= 29


def test_only_the_processor_carries_the_ffmpeg_layer(stack):
    (layer_id, layer) = stack.one("AWS::Lambda::LayerVersion")
    assert {"Ref": layer_id} in stack.function("process_uploads")["Layers"]
    for name in FUNCTIONS:
        if name != "process_uploads":
            assert {"Ref": layer_id} not in stack.function(name).get("Layers", []), name
    assert stack.function("process_uploads")["Environment"]["Variables"]["LAPSE_FFMPEG"] == (
        "/opt/bin/ffmpeg"
    )
    props = layer["Properties"]
    assert set(props["CompatibleRuntimes"]) <= SUPPORTED_RUNTIMES
    assert props["LicenseInfo"].startswith("GPL")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_function_gets_the_settings_it_needs(stack, name):
    env = stack.function(name)["Environment"]["Variables"]
    expected = {
        "LAPSE_STAGE",
        "LAPSE_BUCKET",
        "LAPSE_TABLE",
        "LAPSE_QUEUE_URL",
        "LAPSE_QUEUE_NAME",
        "LAPSE_STORAGE_EVENTS",
        "LAPSE_AUTH_MODE",
        "LAPSE_OIDC_ISSUER",
        "LAPSE_OIDC_AUDIENCE",
        "LAPSE_WEBHOOK_SECRET",
        "POWERTOOLS_SERVICE_NAME",
    }
    assert expected <= set(env)
    assert env["LAPSE_AUTH_MODE"] == "oidc"
    assert "LAPSE_AWS_ENDPOINT_URL" not in env  # local services only
    assert "{{resolve:secretsmanager:" in str(env["LAPSE_WEBHOOK_SECRET"])


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_function_has_the_dependency_layer_for_its_runtime(stack, name):
    (layer_id, layer) = stack.one("AWS::Serverless::LayerVersion")
    assert {"Ref": layer_id} in stack.function(name)["Layers"]
    assert layer["Properties"]["CompatibleRuntimes"] == [stack.function(name)["Runtime"]]


def test_watchdog_runs_every_minute(stack):
    events = stack.function("watchdog")["Events"]
    (schedule,) = [e["Properties"]["Schedule"] for e in events.values() if e["Type"] == "Schedule"]
    assert schedule == "rate(1 minute)"
