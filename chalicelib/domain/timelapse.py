"""The timelapse record, its statuses and the allowed transitions (DESIGN.md, "state machine").

Pure: the repository enforces each transition as one conditional write built from these rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from chalicelib.domain.fanout import FanOut
from chalicelib.domain.options import RenderOptions

_T = TypeVar("_T")


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


class Stage(StrEnum):
    AWAITING_UPLOAD = "awaiting_upload"
    QUEUED = "queued"
    PROBING = "probing"
    RENDERING = "rendering"
    UPLOADING = "uploading"


TERMINAL = frozenset({Status.COMPLETE, Status.FAILED, Status.CANCELLED})


class UploadMethod(StrEnum):
    PUT = "PUT"
    MULTIPART = "multipart"


@dataclass(frozen=True)
class UploadInfo:
    method: UploadMethod
    upload_id: str | None = None
    part_size: int | None = None
    part_count: int | None = None


@dataclass(frozen=True)
class ErrorInfo:
    code: str
    message: str


@dataclass(frozen=True)
class Timelapse:
    id: str
    owner_id: str
    project_id: str
    status: Status
    stage: Stage | None
    content_type: str
    size_bytes: int | None  # None: not declared (Uppy); set from storage once the upload is in
    original_video_key: str
    created_at: datetime
    updated_at: datetime
    upload: UploadInfo
    process: bool = True
    progress: int = 0
    filename: str | None = None
    duration_minutes: float | None = None
    target_seconds: float | None = 30.0  # None when `speed` sets the length
    speed: float | None = None
    options: RenderOptions = field(default_factory=RenderOptions)
    callback_url: str | None = None
    processed_video_key: str | None = None
    poster_key: str | None = None
    source: dict[str, Any] | None = None
    output: dict[str, Any] | None = None
    error: ErrorInfo | None = None
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None
    uploaded_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    # The one multipart upload a client opened through the Uppy routes; no other counts.
    client_upload_id: str | None = None
    # The original's ETag when its upload was accepted: a later object on the key is another.
    original_etag: str | None = None
    # While the render runs as parts on the queue (domain/fanout.py): the parts and their state.
    fanout: FanOut | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def video_key(self) -> str:
        """What to play now: the original until complete, then the timelapse."""
        if self.status is Status.COMPLETE and self.processed_video_key:
            return self.processed_video_key
        return self.original_video_key

    @property
    def is_multipart(self) -> bool:
        return self.upload.method is UploadMethod.MULTIPART


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- the state machine ---------------------------------------------------------------------


class Transition(StrEnum):
    """Every change of a record after it is created; each is one conditional write."""

    MARK_UPLOADED = "mark_uploaded"  # the original landed: queue it (or leave it idle)
    BIND_UPLOAD = "bind_upload"  # the one client multipart upload is named (Uppy routes)
    REQUEUE = "requeue"  # POST /process on a failed, cancelled or idle one
    CLAIM = "claim"  # a worker takes it (or takes over one whose lease ran out)
    HEARTBEAT = "heartbeat"  # the owning worker extends its lease, writes stage and progress
    COMPLETE = "complete"  # the owning worker finished
    FAIL = "fail"  # the owning worker gave up with a reason
    FAN_OUT = "fan_out"  # the owning worker hands the render to parts on the queue
    FINISH_PART = "finish_part"  # a part's segment is stored: counted once (the last one joins)
    FAIL_PART = "fail_part"  # a part failed: counted; it is tried again or the timelapse fails
    FAIL_PENDING = "fail_pending"  # an upload refused before any worker claimed it
    FAIL_ABANDONED = "fail_abandoned"  # its message reached the dead-letter queue
    EXPIRE_LEASE = "expire_lease"  # the watchdog: the owner's lease ran out
    CANCEL = "cancel"  # the owner
    EXPIRE_UPLOAD = "expire_upload"  # the watchdog: the upload window ended, nothing uploaded


class Anything(StrEnum):
    """A `From` field that matches whatever the record holds."""

    ANY = "*"


ANY = Anything.ANY


@dataclass(frozen=True)
class From:
    """One state a transition may start from. `stage=None` means the record has no stage;
    `owned` needs the caller's lease token, `lease_expired` a lease that ran out before `now`,
    `attempts_left` fewer attempts than the caller's maximum."""

    status: Status
    stage: Stage | Anything | None = ANY
    owned: bool = False
    lease_expired: bool = False
    attempts_left: bool = False


_OWNED = From(Status.PROCESSING, owned=True)

TRANSITIONS: dict[Transition, tuple[From, ...]] = {
    Transition.MARK_UPLOADED: (From(Status.PENDING, Stage.AWAITING_UPLOAD),),
    Transition.BIND_UPLOAD: (From(Status.PENDING, Stage.AWAITING_UPLOAD),),
    # Idle: uploaded with `process: false` (pending, no stage).
    Transition.REQUEUE: (From(Status.FAILED), From(Status.CANCELLED), From(Status.PENDING, None)),
    Transition.CLAIM: (
        From(Status.PENDING, Stage.QUEUED),
        # A redelivered message after its worker died, while attempts remain.
        From(Status.PROCESSING, lease_expired=True, attempts_left=True),
    ),
    Transition.HEARTBEAT: (_OWNED,),
    Transition.COMPLETE: (_OWNED,),
    Transition.FAIL: (_OWNED,),
    # The parts of a fanned-out render share its lease token; each write also renews the lease.
    Transition.FAN_OUT: (_OWNED,),
    Transition.FINISH_PART: (_OWNED,),
    Transition.FAIL_PART: (_OWNED,),
    Transition.FAIL_PENDING: (From(Status.PENDING),),
    Transition.FAIL_ABANDONED: (
        From(Status.PENDING),
        From(Status.PROCESSING, lease_expired=True),
    ),
    Transition.EXPIRE_LEASE: (From(Status.PROCESSING, owned=True, lease_expired=True),),
    Transition.CANCEL: (From(Status.PENDING), From(Status.PROCESSING)),
    Transition.EXPIRE_UPLOAD: (From(Status.PENDING, Stage.AWAITING_UPLOAD),),
}


@dataclass(frozen=True)
class Guard:
    """What a transition's condition compares against, besides the record itself."""

    token: str | None = None
    now: datetime | None = None
    max_attempts: int | None = None

    def lease_token(self) -> str:
        return _required(self.token, "token")

    def moment(self) -> datetime:
        return _required(self.now, "now")

    def attempt_limit(self) -> int:
        return _required(self.max_attempts, "max_attempts")


def allows(transition: Transition, timelapse: Timelapse, guard: Guard | None = None) -> bool:
    """Whether `transition` may start from the record as it is (the conditional write's rule)."""
    given = guard or Guard()
    return any(_matches(start, timelapse, given) for start in TRANSITIONS[transition])


def _matches(start: From, timelapse: Timelapse, guard: Guard) -> bool:
    expires = timelapse.lease_expires_at
    return (
        timelapse.status is start.status
        and (start.stage is ANY or timelapse.stage is start.stage)
        and (not start.owned or timelapse.lease_owner == guard.lease_token())
        and (not start.lease_expired or (expires is not None and expires < guard.moment()))
        and (not start.attempts_left or timelapse.attempts < guard.attempt_limit())
    )


def _required(value: _T | None, name: str) -> _T:
    if value is None:
        raise TypeError(f"this transition's condition needs the guard's {name}")
    return value
