"""Settings: read once from the environment, typed, failing fast on a value lapse cannot use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chalicelib.domain.limits import GiB, Limits, MiB
from chalicelib.settings import Settings, SettingsError, get_settings
from local.config import LocalStack


def test_an_empty_environment_is_the_local_stack_with_the_contract_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.stage == "local"
    assert settings.is_local is True
    assert settings.region == "us-east-1"
    assert settings.bucket == "lapse-local"
    assert settings.table == "lapse-timelapses"
    assert settings.queue_url is None
    assert settings.aws_endpoint_url is None
    assert settings.storage_events is True
    assert settings.auth_mode == "hs256"
    assert settings.jwt_secret == "local-dev-secret"
    assert settings.webhook_secret == "local-webhook-secret"
    assert settings.lease_seconds == 60
    assert settings.max_attempts == 3
    assert settings.limits == Limits()


def test_default_limits_are_the_documented_ones() -> None:
    limits = Settings.from_env({}).limits
    assert limits.max_upload_bytes == 50 * GiB
    assert limits.multipart_threshold_bytes == 100 * MiB
    assert (limits.min_part_bytes, limits.max_part_bytes, limits.max_parts) == (
        10 * MiB,
        100 * MiB,
        10_000,
    )
    assert limits.upload_url_seconds == 3600
    assert limits.download_url_seconds == 900
    assert (limits.min_target_seconds, limits.default_target_seconds) == (1.0, 30.0)
    assert limits.max_target_seconds == 600.0
    assert limits.max_source_seconds == 24 * 3600


def test_every_variable_is_read() -> None:
    env = {
        "AWS_REGION": "eu-west-1",
        "AWS_DEFAULT_REGION": "us-west-2",
        "LAPSE_STAGE": "dev",
        "LAPSE_BUCKET": "b",
        "LAPSE_TABLE": "t",
        "LAPSE_QUEUE_URL": "https://sqs/q",
        "LAPSE_AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "LAPSE_S3_ENDPOINT_URL": "https://acct.r2.cloudflarestorage.com",
        "LAPSE_S3_REGION": "auto",
        "LAPSE_S3_ACCESS_KEY_ID": "AK",
        "LAPSE_S3_SECRET_ACCESS_KEY": "SK",
        "LAPSE_STORAGE_EVENTS": "false",
        "LAPSE_AUTH_MODE": "oidc",
        "LAPSE_OIDC_ISSUER": "https://issuer.example",
        "LAPSE_OIDC_AUDIENCE": "client-1",
        "LAPSE_WEBHOOK_SECRET": "whs",
        "LAPSE_LEASE_SECONDS": "120",
        "LAPSE_HEARTBEAT_SECONDS": "2.5",
        "LAPSE_MAX_ATTEMPTS": "5",
        "LAPSE_FFMPEG": "/opt/bin/ffmpeg",
        "LAPSE_LOG_LEVEL": "DEBUG",
        "LAPSE_MAX_UPLOAD_BYTES": "1000",
        "LAPSE_MULTIPART_THRESHOLD_BYTES": "500",
        "LAPSE_UPLOAD_URL_SECONDS": "60",
        "LAPSE_DOWNLOAD_URL_SECONDS": "30",
        "LAPSE_MAX_PIXELS": "100",
        "LAPSE_MAX_SOURCE_SECONDS": "3600.5",
        "LAPSE_DEFAULT_TARGET_SECONDS": "15",
        "LAPSE_MAX_TARGET_SECONDS": "120",
        "LAPSE_RENDER_VCPUS": "6",
        "LAPSE_PART_TARGET_SECONDS": "8",
    }
    settings = Settings.from_env(env)
    assert settings.region == "eu-west-1"  # AWS_REGION wins over AWS_DEFAULT_REGION
    assert settings.stage == "dev"
    assert settings.is_local is False
    assert (settings.bucket, settings.table, settings.queue_url) == ("b", "t", "https://sqs/q")
    assert settings.aws_endpoint_url == "http://127.0.0.1:4566"
    assert settings.s3_endpoint_url == "https://acct.r2.cloudflarestorage.com"
    assert (settings.s3_region, settings.s3_access_key_id) == ("auto", "AK")
    assert settings.s3_secret_access_key == "SK"
    assert settings.storage_events is False
    assert settings.auth_mode == "oidc"
    assert (settings.oidc_issuer, settings.oidc_audience) == ("https://issuer.example", "client-1")
    assert settings.webhook_secret == "whs"
    assert (settings.lease_seconds, settings.heartbeat_seconds) == (120, 2.5)
    assert settings.max_attempts == 5
    assert settings.ffmpeg_path == "/opt/bin/ffmpeg"
    assert settings.log_level == "DEBUG"
    assert (settings.render_vcpus, settings.part_target_seconds) == (6.0, 8.0)
    limits = settings.limits
    assert (limits.max_upload_bytes, limits.multipart_threshold_bytes) == (1000, 500)
    assert (limits.upload_url_seconds, limits.download_url_seconds) == (60, 30)
    assert (limits.max_pixels, limits.max_source_seconds) == (100, 3600.5)
    assert (limits.default_target_seconds, limits.max_target_seconds) == (15.0, 120.0)


def test_region_falls_back_to_aws_default_region() -> None:
    assert Settings.from_env({"AWS_DEFAULT_REGION": "ap-south-1"}).region == "ap-south-1"


def test_empty_values_mean_the_default() -> None:
    settings = Settings.from_env(
        {"LAPSE_QUEUE_URL": "", "LAPSE_LEASE_SECONDS": "", "LAPSE_STORAGE_EVENTS": ""}
    )
    assert settings.queue_url is None
    assert settings.lease_seconds == 60
    assert settings.storage_events is True


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        ("on", True),
        ("0", False),
        ("False", False),
        ("no", False),
        ("off", False),
    ],
)
def test_booleans(raw: str, value: bool) -> None:
    assert Settings.from_env({"LAPSE_STORAGE_EVENTS": raw}).storage_events is value


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"LAPSE_LEASE_SECONDS": "sixty"}, "LAPSE_LEASE_SECONDS must be an integer"),
        ({"LAPSE_MAX_ATTEMPTS": "2.5"}, "LAPSE_MAX_ATTEMPTS must be an integer"),
        ({"LAPSE_MAX_UPLOAD_BYTES": "50GiB"}, "LAPSE_MAX_UPLOAD_BYTES must be an integer"),
        ({"LAPSE_HEARTBEAT_SECONDS": "soon"}, "LAPSE_HEARTBEAT_SECONDS must be a number"),
        ({"LAPSE_MAX_SOURCE_SECONDS": "1h"}, "LAPSE_MAX_SOURCE_SECONDS must be a number"),
        ({"LAPSE_STORAGE_EVENTS": "maybe"}, "LAPSE_STORAGE_EVENTS must be true or false"),
        ({"LAPSE_AUTH_MODE": "none"}, "LAPSE_AUTH_MODE must be hs256 or oidc"),
        ({"LAPSE_PART_TARGET_SECONDS": "1"}, "LAPSE_PART_TARGET_SECONDS must be at least 3"),
        ({"LAPSE_PART_TARGET_SECONDS": "nan"}, "LAPSE_PART_TARGET_SECONDS must be at least 3"),
        ({"LAPSE_PART_TARGET_SECONDS": "8s"}, "LAPSE_PART_TARGET_SECONDS must be a number"),
        ({"LAPSE_AUTH_MODE": "oidc"}, "needs LAPSE_OIDC_ISSUER"),
        # Deployed stages default to OIDC, so they need an issuer
        ({"LAPSE_STAGE": "prod"}, "needs LAPSE_OIDC_ISSUER"),
    ],
)
def test_bad_values_fail_fast_naming_the_variable(env: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert words in str(caught.value)


def test_deployed_stage_defaults_to_oidc() -> None:
    settings = Settings.from_env(
        {
            "LAPSE_STAGE": "prod",
            "LAPSE_OIDC_ISSUER": "https://cognito-idp/pool",
            "LAPSE_WEBHOOK_SECRET": "from-secrets-manager",
        }
    )
    assert settings.auth_mode == "oidc"
    assert settings.is_local is False


@pytest.mark.parametrize("secret", [None, "local-webhook-secret", ""])
def test_a_deployed_stage_refuses_the_public_local_webhook_secret(secret: str | None) -> None:
    env = {"LAPSE_STAGE": "dev", "LAPSE_OIDC_ISSUER": "https://cognito-idp/pool"}
    if secret is not None:
        env["LAPSE_WEBHOOK_SECRET"] = secret
    with pytest.raises(SettingsError, match="LAPSE_WEBHOOK_SECRET must be a secret of its own"):
        Settings.from_env(env)
    assert Settings.from_env({}).webhook_secret == "local-webhook-secret"


def test_a_deployed_stage_refuses_hs256_dev_tokens() -> None:
    with pytest.raises(SettingsError):
        Settings.from_env({"LAPSE_STAGE": "prod", "LAPSE_AUTH_MODE": "hs256"})


def test_the_local_stack_environment_is_what_settings_read() -> None:
    # Given the environment the local stack hands to the API and the worker
    stack = LocalStack(moto_port=4999, api_port=8123)
    # When settings read it
    settings = Settings.from_env(stack.environment())
    # Then every service points at the local endpoint
    assert settings.is_local
    assert settings.aws_endpoint_url == "http://127.0.0.1:4999"
    assert settings.queue_url == "http://127.0.0.1:4999/123456789012/lapse-process"
    assert (settings.bucket, settings.table) == (stack.bucket, stack.table)
    assert settings.region == "us-east-1"
    assert settings.auth_mode == "hs256"


@pytest.fixture
def fresh_settings_cache() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fresh_settings_cache")
def test_get_settings_reads_the_process_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a bucket name in the environment
    monkeypatch.setenv("LAPSE_BUCKET", "first")
    first = get_settings()
    # When the environment changes afterwards
    monkeypatch.setenv("LAPSE_BUCKET", "second")
    # Then the settings read at the edge stay the same
    assert get_settings() is first
    assert first.bucket == "first"


def test_a_lease_shorter_than_the_heartbeat_can_renew_is_refused() -> None:
    # A worker writes its lease at most every 2 s; a lease under 5 s would lapse between writes
    with pytest.raises(SettingsError, match="LAPSE_LEASE_SECONDS must be at least 5"):
        Settings.from_env({"LAPSE_LEASE_SECONDS": "3"})
    assert Settings.from_env({"LAPSE_LEASE_SECONDS": "5"}).lease_seconds == 5
