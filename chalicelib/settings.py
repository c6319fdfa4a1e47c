"""Typed settings, read once from the environment at the edge. Fails fast on a bad value.

Every environment variable lapse reads is here; the README's configuration table mirrors this file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache

from chalicelib.domain.limits import Limits

MiB = 1024 * 1024
GiB = 1024 * MiB
MIN_LEASE_SECONDS = 5
# A part's estimate includes 1.5 s of overhead (domain/fanout.py): below this a split only adds
# invocations.
MIN_PART_TARGET_SECONDS = 3.0
# Public (it is in the README): refused outside the local stage.
LOCAL_WEBHOOK_SECRET = "local-webhook-secret"


class SettingsError(ValueError):
    """An environment variable holds a value lapse cannot use."""


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from exc


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _optional(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name) or None


@dataclass(frozen=True)
class Settings:
    stage: str = "local"
    region: str = "us-east-1"
    bucket: str = "lapse-local"
    table: str = "lapse-timelapses"
    queue_url: str | None = None
    # Where webhook deliveries are queued (their own queue, drained by their own function).
    webhook_queue_url: str | None = None
    # Where deliveries given up on go (their consumer records them).
    webhook_dlq_url: str | None = None
    # One endpoint for DynamoDB and SQS when they are local; None means AWS itself.
    aws_endpoint_url: str | None = None
    # Storage may live elsewhere (Cloudflare R2): its own endpoint, region and credentials.
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    # False where the bucket cannot send ObjectCreated events (R2): the API enqueues instead.
    storage_events: bool = True
    auth_mode: str = "hs256"
    jwt_secret: str = "local-dev-secret"
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    webhook_secret: str = LOCAL_WEBHOOK_SECRET
    # Locally a callbackUrl may reach the loopback interface (http too); never when deployed.
    webhook_allow_loopback: bool = True
    webhook_max_attempts: int = 5
    webhook_timeout_seconds: float = 5.0
    webhook_backoff_seconds: int = 2
    lease_seconds: int = 60
    heartbeat_seconds: float = 1.0
    max_attempts: int = 3
    ffmpeg_path: str | None = None
    # vCPUs one render has: parts of a fanned-out render are sized for it (domain/fanout.py).
    render_vcpus: float = 2.0
    # A render estimated past this many seconds (domain/fanout.py's estimate) is split into parts
    # of about this size that run side by side, for latency; None: split only to fit the limit.
    part_target_seconds: float | None = None
    log_level: str = "INFO"
    limits: Limits = field(default_factory=Limits)

    @property
    def is_local(self) -> bool:
        return self.stage == "local"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        stage = env.get("LAPSE_STAGE", "local")
        auth_mode = env.get("LAPSE_AUTH_MODE", "hs256" if stage == "local" else "oidc")
        if auth_mode not in {"hs256", "oidc"}:
            raise SettingsError(f"LAPSE_AUTH_MODE must be hs256 or oidc, got {auth_mode!r}")
        if auth_mode == "hs256" and stage != "local":
            raise SettingsError(
                "LAPSE_AUTH_MODE=hs256 is for the local stack only; deployed stages use oidc"
            )
        lease = _int(env, "LAPSE_LEASE_SECONDS", 60)
        if lease < MIN_LEASE_SECONDS:
            # A worker writes its lease at most every 2 s: a shorter lease would lapse in between.
            raise SettingsError(f"LAPSE_LEASE_SECONDS must be at least {MIN_LEASE_SECONDS}")
        if auth_mode == "oidc" and not env.get("LAPSE_OIDC_ISSUER"):
            raise SettingsError("LAPSE_AUTH_MODE=oidc needs LAPSE_OIDC_ISSUER")
        allow_loopback = _bool(env, "LAPSE_WEBHOOK_ALLOW_LOOPBACK", stage == "local")
        if allow_loopback and stage != "local":
            raise SettingsError("LAPSE_WEBHOOK_ALLOW_LOOPBACK=true is for LAPSE_STAGE=local only")
        limits = Limits(
            max_upload_bytes=_int(env, "LAPSE_MAX_UPLOAD_BYTES", 50 * GiB),
            multipart_threshold_bytes=_int(env, "LAPSE_MULTIPART_THRESHOLD_BYTES", 100 * MiB),
            upload_url_seconds=_int(env, "LAPSE_UPLOAD_URL_SECONDS", 3600),
            upload_window_seconds=_int(env, "LAPSE_UPLOAD_WINDOW_SECONDS", 24 * 3600),
            download_url_seconds=_int(env, "LAPSE_DOWNLOAD_URL_SECONDS", 900),
            max_pixels=_int(env, "LAPSE_MAX_PIXELS", 8192 * 4320),
            max_source_seconds=_float(env, "LAPSE_MAX_SOURCE_SECONDS", 24 * 3600.0),
            default_target_seconds=_float(env, "LAPSE_DEFAULT_TARGET_SECONDS", 30.0),
            max_target_seconds=_float(env, "LAPSE_MAX_TARGET_SECONDS", 600.0),
        )
        return cls(
            stage=stage,
            region=region,
            bucket=env.get("LAPSE_BUCKET", "lapse-local"),
            table=env.get("LAPSE_TABLE", "lapse-timelapses"),
            queue_url=_optional(env, "LAPSE_QUEUE_URL"),
            webhook_queue_url=_optional(env, "LAPSE_WEBHOOK_QUEUE_URL"),
            webhook_dlq_url=_optional(env, "LAPSE_WEBHOOK_DLQ_URL"),
            aws_endpoint_url=_optional(env, "LAPSE_AWS_ENDPOINT_URL"),
            s3_endpoint_url=_optional(env, "LAPSE_S3_ENDPOINT_URL"),
            s3_region=_optional(env, "LAPSE_S3_REGION"),
            s3_access_key_id=_optional(env, "LAPSE_S3_ACCESS_KEY_ID"),
            s3_secret_access_key=_optional(env, "LAPSE_S3_SECRET_ACCESS_KEY"),
            storage_events=_bool(env, "LAPSE_STORAGE_EVENTS", True),
            auth_mode=auth_mode,
            jwt_secret=env.get("LAPSE_JWT_SECRET", "local-dev-secret"),
            oidc_issuer=_optional(env, "LAPSE_OIDC_ISSUER"),
            oidc_audience=_optional(env, "LAPSE_OIDC_AUDIENCE"),
            webhook_secret=_webhook_secret(env, stage),
            webhook_allow_loopback=allow_loopback,
            webhook_max_attempts=_int(env, "LAPSE_WEBHOOK_MAX_ATTEMPTS", 5),
            webhook_timeout_seconds=_float(env, "LAPSE_WEBHOOK_TIMEOUT_SECONDS", 5.0),
            webhook_backoff_seconds=_int(env, "LAPSE_WEBHOOK_BACKOFF_SECONDS", 2),
            lease_seconds=lease,
            heartbeat_seconds=_float(env, "LAPSE_HEARTBEAT_SECONDS", 1.0),
            max_attempts=_int(env, "LAPSE_MAX_ATTEMPTS", 3),
            ffmpeg_path=_optional(env, "LAPSE_FFMPEG"),
            render_vcpus=_float(env, "LAPSE_RENDER_VCPUS", 2.0),
            part_target_seconds=_part_target(env),
            log_level=env.get("LAPSE_LOG_LEVEL", "INFO"),
            limits=limits,
        )


def _part_target(env: Mapping[str, str]) -> float | None:
    if _optional(env, "LAPSE_PART_TARGET_SECONDS") is None:
        return None
    target = _float(env, "LAPSE_PART_TARGET_SECONDS", 0.0)
    if not target >= MIN_PART_TARGET_SECONDS:  # NaN too
        raise SettingsError(
            f"LAPSE_PART_TARGET_SECONDS must be at least {MIN_PART_TARGET_SECONDS:g}"
        )
    return target


def _webhook_secret(env: Mapping[str, str], stage: str) -> str:
    """The service-wide secret of `Lapse-Signature`; the local default is public, so a deployed
    stage that still has it (or none) would sign with a secret anyone can read."""
    secret = env.get("LAPSE_WEBHOOK_SECRET", LOCAL_WEBHOOK_SECRET)
    if stage != "local" and secret in {LOCAL_WEBHOOK_SECRET, ""}:
        raise SettingsError(
            "LAPSE_WEBHOOK_SECRET must be a secret of its own outside the local stage "
            f"(the local default {LOCAL_WEBHOOK_SECRET!r} is public)"
        )
    return secret


@cache
def get_settings() -> Settings:
    return Settings.from_env()
