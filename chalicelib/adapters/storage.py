"""S3 or any S3-compatible storage (Cloudflare R2, moto): presign, multipart, head, delete, upload.

The only code that talks to the bucket. SDK errors that mean "not there" become `None` or
`NotFoundError`; everything else propagates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from chalicelib.domain.parts import MULTIPART_THRESHOLD
from chalicelib.errors import NotFoundError
from chalicelib.services.ports import ObjectInfo, PresignedUrl, StoredPart

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MiB = 1024 * 1024
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING


def content_disposition(filename: str) -> str:
    """`inline` with the name offered twice (RFC 6266): a plain-ASCII fallback for old clients,
    and the exact name percent-encoded as UTF-8 in `filename*`. Nothing of the name can end the
    header or start another (no quotes, backslashes or control characters survive)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\%' else "_" for c in filename
    )
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


def transfer_config_for(size_bytes: int) -> TransferConfig:
    """Part size grows with the file (≥ 8 MiB, ≤ 10,000 parts); parts go up in parallel."""
    part = max(8 * MiB, -(-size_bytes // 9_000))
    part = -(-part // MiB) * MiB
    return TransferConfig(
        multipart_threshold=MULTIPART_THRESHOLD,
        multipart_chunksize=part,
        max_concurrency=4,
        use_threads=True,
    )


class S3Storage:
    def __init__(self, client: S3Client, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    # --- presigned URLs -------------------------------------------------------------------

    def _presign(self, method: str, params: dict[str, Any], seconds: int) -> PresignedUrl:
        url = self._client.generate_presigned_url(
            method, Params={"Bucket": self.bucket, **params}, ExpiresIn=seconds
        )
        return PresignedUrl(url, datetime.now(UTC) + timedelta(seconds=seconds))

    def presign_put(
        self, key: str, *, content_type: str, size_bytes: int | None, seconds: int
    ) -> PresignedUrl:
        """A PUT signed for exactly this key, content type and length (any length when None:
        then the size is checked once the object is stored)."""
        params: dict[str, Any] = {"Key": key, "ContentType": content_type}
        if size_bytes is not None:
            params["ContentLength"] = size_bytes
        return self._presign("put_object", params, seconds)

    def presign_part(
        self, key: str, upload_id: str, part_number: int, seconds: int
    ) -> PresignedUrl:
        return self._presign(
            "upload_part",
            {"Key": key, "UploadId": upload_id, "PartNumber": part_number},
            seconds,
        )

    def presign_get(self, key: str, seconds: int, *, filename: str | None = None) -> PresignedUrl:
        params: dict[str, Any] = {"Key": key}
        if filename:
            params["ResponseContentDisposition"] = content_disposition(filename)
        return self._presign("get_object", params, seconds)

    def presign_request(self, method: str, params: dict[str, Any], seconds: int) -> PresignedUrl:
        """Any S3 operation, signed (used by the Uppy routes)."""
        return self._presign(method, params, seconds)

    # --- multipart (the client's upload) ----------------------------------------------------

    def create_multipart(self, key: str, *, content_type: str, metadata: dict[str, str]) -> str:
        answer = self._client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ContentType=content_type, Metadata=metadata
        )
        return answer["UploadId"]

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        parts: list[StoredPart] = []
        marker = 0
        try:
            while True:
                page = self._client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
                parts.extend(
                    StoredPart(p["PartNumber"], p["ETag"], p["Size"]) for p in page.get("Parts", [])
                )
                if not page.get("IsTruncated"):
                    return parts
                marker = int(page["NextPartNumberMarker"])
        except ClientError as exc:
            if _missing(exc):
                raise NotFoundError("the multipart upload is gone (completed or aborted)") from exc
            raise

    def upload_in_progress(self, key: str, upload_id: str) -> bool:
        """True while this multipart upload is open (neither completed nor aborted)."""
        try:
            self._client.list_parts(Bucket=self.bucket, Key=key, UploadId=upload_id, MaxParts=1)
        except ClientError as exc:
            if _missing(exc):
                return False
            raise
        return True

    def complete_multipart(
        self, key: str, upload_id: str, parts: Iterable[tuple[int, str]]
    ) -> None:
        ordered = sorted(parts)
        try:
            self._client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etag} for n, etag in ordered]},
            )
        except ClientError as exc:
            if _missing(exc):
                raise NotFoundError("the multipart upload is gone (completed or aborted)") from exc
            raise

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if not _missing(exc):
                raise

    def list_multipart_uploads(self, prefix: str = "") -> list[tuple[str, str]]:
        answer = self._client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
        return [(u["Key"], u["UploadId"]) for u in answer.get("Uploads", [])]

    # --- objects ------------------------------------------------------------------------------

    def head(self, key: str) -> ObjectInfo | None:
        try:
            answer = self._client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return ObjectInfo(
            key=key,
            size=int(answer["ContentLength"]),
            content_type=answer.get("ContentType"),
            metadata=dict(answer.get("Metadata", {})),
            etag=answer.get("ETag"),
        )

    def delete(self, *keys: str) -> None:
        wanted = [k for k in keys if k]
        if wanted:
            self._client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in wanted], "Quiet": True},
            )

    def delete_prefix(self, prefix: str) -> None:
        """Delete every object under `prefix` and abort the multipart uploads there."""
        for key, upload_id in self.list_multipart_uploads(prefix):
            self.abort_multipart(key, upload_id)
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [found["Key"] for found in page.get("Contents", [])]
            if keys:
                self.delete(*keys)

    def download(self, key: str, path: Path) -> None:
        self._client.download_file(self.bucket, key, str(path))

    def upload_file(
        self,
        path: Path,
        key: str,
        *,
        content_type: str,
        metadata: dict[str, str],
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        """Upload a finished file; large ones go up as parallel multipart parts.

        `on_bytes` runs as bytes go out; raising from it stops the transfer, and s3transfer then
        aborts the multipart upload it started, so a cancel leaves no orphaned parts.
        """
        size = path.stat().st_size
        self._client.upload_file(
            str(path),
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type, "Metadata": metadata},
            Callback=on_bytes,
            Config=transfer_config_for(size),
        )
