"""The one domain error hierarchy. Each error maps to an HTTP status in exactly one place (api.py).

Adapters translate SDK and subprocess failures into these; nothing upstream inspects SDK errors or
message text.
"""

from __future__ import annotations


class LapseError(Exception):
    """Base of every error lapse raises on purpose. `code` is stable and machine-readable."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ValidationError(LapseError):
    code = "invalid_request"


class UnauthorizedError(LapseError):
    code = "unauthorized"


class NotFoundError(LapseError):
    code = "not_found"


class ConflictError(LapseError):
    """A conditional write found the record in another state than expected."""

    code = "conflict"


class TooLargeError(LapseError):
    code = "too_large"


class UnsupportedMediaError(LapseError):
    code = "unsupported_media_type"


class InvalidMediaError(LapseError):
    """The uploaded object is not a video lapse can render; the message is for the user."""

    code = "invalid_media"


class RenderError(LapseError):
    """ffmpeg failed on an input that looked valid."""

    code = "render_failed"


class RenderCancelled(LapseError):
    """The render was stopped because the record was cancelled or the worker lost its claim."""

    code = "cancelled"


class DeadlineExceeded(LapseError):
    """The function would run out of time before the render could finish."""

    code = "timeout"


class UploadRefused(InvalidMediaError):
    """The stored original is not the upload the record was made for (size, or another object);
    `code` says which rule it broke."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class IdempotencyKeyReused(LapseError):
    """An Idempotency-Key already used by this user for a request with another body."""

    code = "idempotency_key_reused"
