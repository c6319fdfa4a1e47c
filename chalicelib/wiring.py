"""Builds the adapters and use cases from settings: the one seam tests replace
(tests/unit/test_handlers.py wires the use cases to tests/fakes.py here)."""

from __future__ import annotations

import uuid
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from chalicelib.adapters.auth import HS256Verifier, OIDCVerifier, TokenVerifier
from chalicelib.adapters.idempotency import DynamoDBIdempotencyKeys, bind_idempotency_table
from chalicelib.adapters.media import FfmpegRenderer
from chalicelib.adapters.queue import SQSWorkQueue
from chalicelib.adapters.records import DynamoDBTimelapseRepository, bind_table
from chalicelib.adapters.storage import S3Storage
from chalicelib.adapters.webhook_secrets import DynamoDBWebhookSecrets, bind_secret_table
from chalicelib.adapters.webhooks import HttpWebhookSender, SQSWebhookQueue, resolve
from chalicelib.domain.webhooks import CallbackPolicy
from chalicelib.logs import logger
from chalicelib.media.ffmpeg import locate_ffmpeg
from chalicelib.services.parts import PartsService
from chalicelib.services.ports import Notifier
from chalicelib.services.processing import ProcessingService
from chalicelib.services.timelapses import TimelapseService
from chalicelib.services.watchdog import WatchdogService
from chalicelib.services.webhook_secrets import WebhookSecretService
from chalicelib.services.webhooks import WebhookService
from chalicelib.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient


def s3_client(settings: Settings) -> S3Client:
    # Path-style addressing and SigV4 work on S3, R2 and moto alike.
    config = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 5, "mode": "standard"},
        max_pool_connections=16,
    )
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url or settings.aws_endpoint_url,
        region_name=settings.s3_region or settings.region,
        aws_access_key_id=settings.s3_access_key_id,
        aws_secret_access_key=settings.s3_secret_access_key,
        config=config,
    )


def sqs_client(settings: Settings) -> SQSClient:
    return boto3.client("sqs", endpoint_url=settings.aws_endpoint_url, region_name=settings.region)


@cache
def records() -> DynamoDBTimelapseRepository:
    settings = get_settings()
    bind_table(settings.table, settings.region, settings.aws_endpoint_url)
    return DynamoDBTimelapseRepository()


@cache
def storage() -> S3Storage:
    settings = get_settings()
    return S3Storage(s3_client(settings), settings.bucket)


@cache
def work_queue() -> SQSWorkQueue:
    settings = get_settings()
    if not settings.queue_url:
        raise RuntimeError("LAPSE_QUEUE_URL is not set")
    return SQSWorkQueue(sqs_client(settings), settings.queue_url)


@cache
def webhook_secret_service() -> WebhookSecretService:
    settings = get_settings()
    bind_secret_table(settings.table, settings.region, settings.aws_endpoint_url)
    return WebhookSecretService(DynamoDBWebhookSecrets())


@cache
def webhook_service() -> WebhookService:
    settings = get_settings()
    return WebhookService(
        queue=SQSWebhookQueue(lambda: sqs_client(settings), settings.webhook_queue_url),
        sender=HttpWebhookSender(
            timeout_seconds=settings.webhook_timeout_seconds,
            allow_loopback=settings.webhook_allow_loopback,
        ),
        secret=settings.webhook_secret,
        signing_secrets=webhook_secret_service(),
        max_attempts=settings.webhook_max_attempts,
        backoff_seconds=settings.webhook_backoff_seconds,
        dead_letters=SQSWebhookQueue(lambda: sqs_client(settings), settings.webhook_dlq_url)
        if settings.webhook_dlq_url
        else None,
        failures=records(),
    )


@cache
def notifier() -> Notifier:
    return webhook_service()


@cache
def token_verifier() -> TokenVerifier:
    settings = get_settings()
    if settings.auth_mode == "oidc":
        assert settings.oidc_issuer
        return OIDCVerifier(settings.oidc_issuer, settings.oidc_audience)
    return HS256Verifier(settings.jwt_secret)


def callback_policy(settings: Settings) -> CallbackPolicy:
    # callbackUrl checks at create time follow the same policy as delivery; deployed, they also
    # resolve the host (locally that is left to delivery, so unit tests never touch DNS).
    return CallbackPolicy(
        allow_loopback=settings.webhook_allow_loopback,
        resolve=None if settings.is_local else resolve,
    )


@cache
def timelapse_service() -> TimelapseService:
    settings = get_settings()
    return TimelapseService(
        records=records(),
        storage=storage(),
        queue=work_queue(),
        limits=settings.limits,
        notifier=notifier(),
        storage_events=settings.storage_events,
        callbacks=callback_policy(settings),
        idempotency=idempotency_keys(),
    )


@cache
def idempotency_keys() -> DynamoDBIdempotencyKeys:
    settings = get_settings()
    bind_idempotency_table(settings.table, settings.region, settings.aws_endpoint_url)
    return DynamoDBIdempotencyKeys()


def warm_up() -> None:
    """Build the processing service and open its connections before the first job, as a Lambda
    function's init phase would: otherwise the first upload after a start pays ~0.2 s for the
    clients (measured locally: 152 ms to build, 58 ms for the first table read) and ~0.5 s in all
    from upload to `complete`. Reads a record and an object that do not exist."""
    service = processing_service()
    try:
        service.records.get(str(uuid.UUID(int=0)))
        service.storage.head("videos/warm-up")
    except Exception:
        logger.warning("warm-up read failed; the first job opens the connections", exc_info=True)


@cache
def processing_service() -> ProcessingService:
    settings = get_settings()
    return ProcessingService(
        records=records(),
        storage=storage(),
        limits=settings.limits,
        notifier=notifier(),
        media=FfmpegRenderer(locate_ffmpeg(settings.ffmpeg_path)),
        lease_seconds=settings.lease_seconds,
        heartbeat_seconds=settings.heartbeat_seconds,
        max_attempts=settings.max_attempts,
        # A render too long for one invocation is fanned out to parts on the processing queue.
        queue=work_queue() if settings.queue_url else None,
        vcpus=settings.render_vcpus,
        part_target_seconds=settings.part_target_seconds,
    )


@cache
def parts_service() -> PartsService:
    return PartsService(processing=processing_service(), queue=work_queue())


def recovers_unannounced_uploads(settings: Settings) -> bool:
    """Whether the watchdog looks in storage for originals no message announced. Locally a worker
    killed in the middle of a receive can swallow a storage event; where storage sends no events
    (R2) the front end's `POST /process` announces it, and a tab closed before that call would
    leave the record waiting until its upload window ends. On S3, S3 → SQS delivers at least
    once: no look is needed."""
    return settings.is_local or not settings.storage_events


@cache
def watchdog_service() -> WatchdogService:
    settings = get_settings()
    return WatchdogService(
        # Storage, to abort the uploads of records whose upload window ended and to find uploads
        # that arrived unannounced.
        storage=storage(),
        recover_uploads=recovers_unannounced_uploads(settings),
        records=records(),
        queue=work_queue(),
        notifier=notifier(),
        max_attempts=settings.max_attempts,
        limits=settings.limits,
    )
