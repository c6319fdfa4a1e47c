"""The one rule for what may be rendered: the stored original must be the upload its record was
made for. Checked on every path into a render (the storage event, `POST /process`, the
watchdog's recovery, and the worker itself just before it reads the file)."""

from __future__ import annotations

from chalicelib.domain.limits import Limits
from chalicelib.domain.timelapse import ErrorInfo, Timelapse
from chalicelib.services.ports import ObjectInfo, Storage


def original_refusal(
    timelapse: Timelapse, found: ObjectInfo | None, limits: Limits
) -> ErrorInfo | None:
    """Why the object in storage may not be rendered for this record, or None when it may."""
    if found is None:
        return ErrorInfo(
            "upload_missing", "The uploaded video is gone from storage; upload it again."
        )
    if found.size > limits.max_upload_bytes:
        return ErrorInfo(
            "too_large",
            f"The uploaded file has {found.size} bytes, over the limit of "
            f"{limits.max_upload_bytes}; it was not processed.",
        )
    if timelapse.size_bytes is None and found.size == 0:
        return ErrorInfo("empty_upload", "The uploaded file is empty; upload the video again.")
    # No size declared (Uppy's routes): the limits above are the check; mark_uploaded records it.
    if timelapse.size_bytes is not None and found.size != timelapse.size_bytes:
        return ErrorInfo(
            "size_mismatch",
            f"The uploaded file has {found.size} bytes but {timelapse.size_bytes} were "
            "declared; upload the file again.",
        )
    if timelapse.original_etag and found.etag != timelapse.original_etag:
        return ErrorInfo(
            "upload_replaced",
            "The file in storage is not the one accepted for this timelapse; it was not "
            "processed. Create a new timelapse to upload another file.",
        )
    return None


def bound_upload_refusal(timelapse: Timelapse, storage: Storage) -> ErrorInfo | None:
    """The client bound one multipart upload to this record (the Uppy routes); while that upload
    is still open, the object in storage came from another one."""
    bound = timelapse.client_upload_id
    if bound is None or not storage.upload_in_progress(timelapse.original_video_key, bound):
        return None
    return ErrorInfo(
        "upload_mismatch",
        "The file in storage did not come from this timelapse's upload; it was not processed.",
    )


def acceptance_refusal(
    timelapse: Timelapse, found: ObjectInfo | None, storage: Storage, limits: Limits
) -> ErrorInfo | None:
    """Why an upload may not be accepted for its record (before it is first queued)."""
    return original_refusal(timelapse, found, limits) or bound_upload_refusal(timelapse, storage)


def abort_uploads(timelapse: Timelapse, storage: Storage) -> None:
    """Abort every multipart upload in flight to the original's key: the one the API opened, the
    one a client bound, and any other a client opened itself with presigned requests (Uppy 6)."""
    key = timelapse.original_video_key
    upload_ids = {upload_id for k, upload_id in storage.list_multipart_uploads(key) if k == key}
    upload_ids |= {u for u in (timelapse.upload.upload_id, timelapse.client_upload_id) if u}
    for upload_id in upload_ids:
        storage.abort_multipart(key, upload_id)
