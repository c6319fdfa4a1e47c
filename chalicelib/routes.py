"""Every route of the API, declared once: method, path, success status, what it takes and answers,
and what it refuses. The blueprints register their handlers from this table (`endpoint`), so a
handler's success status is the table's; the OpenAPI paths are built from it (openapi.py); the
contract tests walk it (tests/unit/test_openapi.py)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from chalicelib import inputs
from chalicelib.domain.limits import Limits, MiB
from chalicelib.reference import BUNDLE

# Said of several routes.
_NOT_UPLOADING = (
    "409 if the timelapse was created for a single PUT, or its upload is over "
    "(it is no longer pending/awaiting_upload)."
)
_COMPANION_OVER = "409 once the timelapse no longer awaits its upload (the upload is then aborted)."


@dataclass(frozen=True)
class Route:
    """One operation. `body` is the request model (chalicelib/inputs.py) that parses the body and
    gives its schema; `answer` names the answer's component schema (its model in wire.py);
    `refusals` are the error statuses beyond 401 and 500, which every authenticated route may
    answer; `query` is the query's model (its fields are the query parameters); path parameters
    come from the path itself."""

    name: str  # the handler's name and the operationId
    method: str
    path: str
    summary: str
    success: int
    answer: str | None  # None: no body (204), or `media_type` text
    answer_description: str
    refusals: frozenset[int] = frozenset()
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    headers: tuple[str, ...] = ()  # optional request headers (openapi.HEADER_PARAMETERS)
    tag: str = "timelapses"
    description: str = ""
    public: bool = False
    media_type: str = "application/json"

    @property
    def error_statuses(self) -> frozenset[int]:
        return self.refusals if self.public else self.refusals | {401, 500}


def _refuses(*statuses: int) -> frozenset[int]:
    return frozenset(statuses)


ROUTES: tuple[Route, ...] = (
    # --- the service ----------------------------------------------------------------------------
    Route(
        "health", "GET", "/health", "Liveness check", 200, "Health", "The API is up.",
        tag="service", public=True,
    ),
    Route(
        "openapi", "GET", "/openapi.json", "This document", 200, "OpenApiDocument",
        "The OpenAPI 3.1 document.", tag="service", public=True,
    ),
    Route(
        "docs", "GET", "/docs", "This reference, for people", 200, None,
        "An HTML page that renders /openapi.json with Redoc.",
        tag="service", public=True, media_type="text/html",
    ),
    Route(
        "docs_bundle", "GET", f"/docs/{BUNDLE}", "The reference page's script", 200, None,
        "Redoc's standalone bundle, served with the API.",
        tag="service", public=True, media_type="text/javascript",
    ),
    # --- timelapses -----------------------------------------------------------------------------
    Route(
        "create_timelapse", "POST", "/timelapses",
        "Create a timelapse and get its upload instructions", 201, "CreatedTimelapse",
        "Created; upload the original as told.", _refuses(400, 409, 413, 415, 422),
        body=inputs.CreateTimelapseRequest, headers=("Idempotency-Key",),
        description=(
            "Creates a pending timelapse (`stage: awaiting_upload`). Files up to "
            f"{Limits().multipart_threshold_bytes / MiB:g} MiB get a single presigned PUT, larger "
            "ones a multipart upload. Once the original is stored, processing starts by itself "
            "(unless `process` is false; where storage sends no events, call "
            "`POST /timelapses/{timelapse_id}/process`)."
        ),
    ),
    Route(
        "get_timelapse", "GET", "/timelapses/{timelapse_id}",
        "Get a timelapse (the polling endpoint)", 200, "TimelapseWithUrls",
        "The timelapse, with download URLs.", _refuses(404),
    ),
    Route(
        "delete_timelapse", "DELETE", "/timelapses/{timelapse_id}",
        "Delete a timelapse and every object it owns", 204, None, "Deleted (no body).",
        _refuses(404),
        description=(
            "Deletes the record, the original, the timelapse and the poster, and aborts "
            "a multipart upload in flight. A pending or processing one is cancelled first."
        ),
    ),
    Route(
        "sign_upload_parts", "POST", "/timelapses/{timelapse_id}/upload/parts",
        "Fresh URLs for some parts of a multipart upload", 200, "PartUrls",
        "Presigned part URLs.", _refuses(400, 404, 409), body=inputs.PartNumbersRequest,
        tag="uploads", description=f"For resuming after the first URLs expired. {_NOT_UPLOADING}",
    ),
    Route(
        "get_upload", "GET", "/timelapses/{timelapse_id}/upload",
        "What storage already holds of a multipart upload", 200, "UploadStatus",
        "The stored parts.", _refuses(404, 409), tag="uploads",
        description=(
            "So that an interrupted upload resumes without re-sending those parts. "
            f"{_NOT_UPLOADING} 404 also if the multipart upload is gone."
        ),
    ),
    Route(
        "complete_upload", "POST", "/timelapses/{timelapse_id}/upload/complete",
        "Complete a multipart upload", 202, "TimelapseEnvelope",
        "Completed. The timelapse as it was (processing starts from the object's creation) or, "
        "where storage sends no events, already queued.",
        _refuses(400, 404, 409), body=inputs.CompleteUploadRequest, body_required=False,
        tag="uploads",
        description=(
            "400 when parts are missing or storage holds fewer bytes than declared; when it "
            "holds more, the upload is discarded, the timelapse fails (`size_mismatch`) and 400 "
            f"answers. {_NOT_UPLOADING}"
        ),
    ),
    Route(
        "cancel_timelapse", "POST", "/timelapses/{timelapse_id}/cancel",
        "Cancel a pending or processing timelapse", 202, "TimelapseEnvelope", "Cancelled.",
        _refuses(404, 409),
        description=(
            "A running render stops within seconds; a multipart upload in flight is aborted. "
            "Cancelling a cancelled one is a no-op 202; a complete or failed one answers 409."
        ),
    ),
    Route(
        "process_timelapse", "POST", "/timelapses/{timelapse_id}/process",
        "Queue processing of the stored original", 202, "TimelapseEnvelope", "Accepted.",
        _refuses(404, 409),
        description=(
            "For `process: false` uploads, for retrying a failed or cancelled one, and where "
            "storage sends no events (R2). On one still awaiting its upload, the stored original "
            "is checked (409 if missing or of another size than declared) and the timelapse is "
            "marked uploaded and queued (left idle, `stage: null`, if it was created with "
            "`process: false`). 409 while it is queued or processing, or complete."
        ),
    ),
    Route(
        "list_project_timelapses", "GET", "/projects/{project_id}/timelapses",
        "List the caller's timelapses of a project, newest first", 200, "TimelapseList",
        "One page.", _refuses(400), query=inputs.ListQuery,
    ),
    # --- webhooks -------------------------------------------------------------------------------
    Route(
        "get_webhook_secret", "GET", "/webhook-secret",
        "The caller's webhook signing secret", 200, "WebhookSecret",
        "The caller's current signing secret.", tag="webhooks",
        description=(
            "Made on first use (or at the first delivery). Give it to your receiver's "
            "`standardwebhooks` library: it verifies the `webhook-signature` header."
        ),
    ),
    Route(
        "rotate_webhook_secret", "POST", "/webhook-secret/rotate",
        "Replace the webhook signing secret", 200, "WebhookSecret", "The new secret.",
        _refuses(409), tag="webhooks",
        description=(
            "For the next 24 hours deliveries are signed by both the new and the previous secret "
            "(two `v1,` entries in `webhook-signature`), so receivers can switch without losing "
            "one. Two rotations at the same moment: one of them answers 409."
        ),
    ),
    # --- Uppy -----------------------------------------------------------------------------------
    Route(
        "sign_upload_request", "POST", "/uploads/sign",
        "Uppy 6 `signRequest`: presign one S3 request", 200, "UppySignedRequest", "Signed.",
        _refuses(400, 404, 409, 413, 415), body=inputs.UppySignRequest, tag="uppy",
        description=(
            "PUT or POST without `uploadId` creates the timelapse (PutObject, "
            "CreateMultipartUpload) and answers lapse's key, which Uppy adopts. With `uploadId`: "
            "PUT + partNumber (UploadPart), GET (ListParts), POST (CompleteMultipartUpload), "
            "DELETE (AbortMultipartUpload: also cancels the timelapse), each only for the "
            "caller's own key. 409 once the timelapse no longer awaits its upload. "
            "`web/lapse-uppy.js` builds such a `signRequest`."
        ),
    ),
    Route(
        "companion_create_multipart", "POST", "/s3/multipart",
        "Uppy 4–5: create a timelapse and open its multipart upload", 200, "CompanionMultipart",
        "Opened.", _refuses(400, 413, 415), body=inputs.CompanionCreateRequest, tag="uppy",
    ),
    Route(
        "companion_sign_part", "GET", "/s3/multipart/{upload_id}/{part_number}",
        "Uppy 4–5: presign one part", 200, "CompanionSignedPart", "Signed.",
        _refuses(400, 404, 409), query=inputs.KeyQuery, tag="uppy", description=_COMPANION_OVER,
    ),
    Route(
        "companion_list_parts", "GET", "/s3/multipart/{upload_id}",
        "Uppy 4–5: the parts storage holds (resume)", 200, "CompanionParts", "The parts.",
        _refuses(400, 404, 409), query=inputs.KeyQuery, tag="uppy", description=_COMPANION_OVER,
    ),
    Route(
        "companion_abort", "DELETE", "/s3/multipart/{upload_id}",
        "Uppy 4–5: abort the upload and cancel the timelapse", 200, "Empty", "Aborted: `{}`.",
        _refuses(400, 404, 409), query=inputs.KeyQuery, tag="uppy",
        description="409 if the timelapse is already complete or failed.",
    ),
    Route(
        "companion_complete", "POST", "/s3/multipart/{upload_id}/complete",
        "Uppy 4–5: complete the upload", 200, "CompanionCompleted", "Completed.",
        _refuses(400, 404, 409), body=inputs.CompleteUploadRequest, body_required=False,
        query=inputs.KeyQuery, tag="uppy",
        description=(
            "Processing starts from the object's creation; where storage sends no events it is "
            f"queued here. {_COMPANION_OVER}"
        ),
    ),
    Route(
        "companion_upload_parameters", "GET", "/s3/params",
        "Uppy 4–5: create a timelapse and presign a single PUT", 200, "CompanionParams",
        "Signed.", _refuses(400, 413, 415), tag="uppy",
        query=inputs.CompanionParamsQuery,
    ),
)  # fmt: skip

BY_NAME: dict[str, Route] = {route.name: route for route in ROUTES}
