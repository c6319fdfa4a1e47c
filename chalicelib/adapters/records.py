"""DynamoDB through PynamoDB: the only code that touches the table.

Every status change is one conditional UpdateItem built from the state machine in
`domain/timelapse.py`; a false condition becomes `ConflictError`, never a silent overwrite.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import operator
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
)
from pynamodb.exceptions import DoesNotExist, PutError, QueryError, UpdateError
from pynamodb.expressions.condition import Condition
from pynamodb.expressions.update import Action
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.domain import schema
from chalicelib.domain.fanout import FanOut, PartRange
from chalicelib.domain.keys import is_timelapse_id
from chalicelib.domain.options import RenderOptions
from chalicelib.domain.timelapse import (
    ANY,
    TRANSITIONS,
    ErrorInfo,
    From,
    Guard,
    Stage,
    Status,
    Timelapse,
    Transition,
    UploadInfo,
    UploadMethod,
    utcnow,
)
from chalicelib.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.services.ports import WebhookFailure

CONDITION_FAILED = "ConditionalCheckFailedException"
# What a listing's LastEvaluatedKey holds: the table's key and the index's keys.
CURSOR_KEYS = (schema.TABLE_KEY, schema.OWNER_PROJECT, schema.CREATED_AT)


class OwnerProjectIndex(GlobalSecondaryIndex["TimelapseModel"]):
    class Meta:
        index_name = schema.OWNER_PROJECT_INDEX
        projection = AllProjection()

    owner_project = UnicodeAttribute(hash_key=True, attr_name=schema.OWNER_PROJECT)
    created_at = UnicodeAttribute(range_key=True, attr_name=schema.CREATED_AT)


class InFlightIndex(GlobalSecondaryIndex["TimelapseModel"]):
    """Sparse: only pending and processing records have the key, so the watchdog reads the work
    in flight instead of scanning every record ever made."""

    class Meta:
        index_name = schema.IN_FLIGHT_INDEX
        projection = AllProjection()

    in_flight = UnicodeAttribute(hash_key=True, attr_name=schema.IN_FLIGHT)
    created_at = UnicodeAttribute(range_key=True, attr_name=schema.CREATED_AT)


class TimelapseModel(Model):
    class Meta:
        table_name = "lapse-timelapses"
        region = "us-east-1"
        host: str | None = None

    id = UnicodeAttribute(hash_key=True, attr_name=schema.TABLE_KEY)
    owner_id = UnicodeAttribute(attr_name="ownerId")
    project_id = UnicodeAttribute(attr_name="projectId")
    owner_project = UnicodeAttribute(attr_name=schema.OWNER_PROJECT)
    by_owner_project = OwnerProjectIndex()
    in_flight = UnicodeAttribute(attr_name=schema.IN_FLIGHT, null=True)
    by_in_flight = InFlightIndex()
    status = UnicodeAttribute()
    stage = UnicodeAttribute(null=True)
    progress = NumberAttribute(default=0)
    content_type = UnicodeAttribute(attr_name="contentType")
    size_bytes = NumberAttribute(attr_name="sizeBytes", null=True)
    original_video_key = UnicodeAttribute(attr_name="originalVideoKey")
    processed_video_key = UnicodeAttribute(attr_name="processedVideoKey", null=True)
    poster_key = UnicodeAttribute(attr_name="posterKey", null=True)
    filename = UnicodeAttribute(null=True)
    duration_minutes = NumberAttribute(attr_name="durationMinutes", null=True)
    target_seconds = NumberAttribute(attr_name="targetSeconds", null=True)
    speed = NumberAttribute(null=True)
    options: MapAttribute[str, Any] = MapAttribute(null=True)
    process = BooleanAttribute(default=True)
    callback_url = UnicodeAttribute(attr_name="callbackUrl", null=True)
    upload: MapAttribute[str, Any] = MapAttribute(null=True)
    source: MapAttribute[str, Any] = MapAttribute(null=True)
    output: MapAttribute[str, Any] = MapAttribute(null=True)
    error: MapAttribute[str, Any] = MapAttribute(null=True)
    # The last webhook delivery given up on (services/webhooks.py); stored, not in the resource.
    webhook_delivery: MapAttribute[str, Any] = MapAttribute(
        attr_name=schema.WEBHOOK_DELIVERY, null=True
    )
    attempts = NumberAttribute(default=0)
    created_at = UnicodeAttribute(attr_name=schema.CREATED_AT)
    updated_at = UnicodeAttribute(attr_name="updatedAt")
    started_at = UnicodeAttribute(attr_name="startedAt", null=True)
    completed_at = UnicodeAttribute(attr_name="completedAt", null=True)
    uploaded_at = UnicodeAttribute(attr_name="uploadedAt", null=True)
    lease_owner = UnicodeAttribute(attr_name="leaseOwner", null=True)
    lease_expires_at = NumberAttribute(attr_name="leaseExpiresAt", null=True)
    client_upload_id = UnicodeAttribute(attr_name="clientUploadId", null=True)
    original_etag = UnicodeAttribute(attr_name="originalEtag", null=True)
    # A render fanned out to parts (domain/fanout.py): the parts, set once; the parts done (the
    # conditional counter: a part is added once), their segments' keys, frames and failures.
    fanout: MapAttribute[str, Any] = MapAttribute(null=True)
    parts_done = UnicodeSetAttribute(attr_name="partsDone", null=True)
    part_keys: MapAttribute[str, Any] = MapAttribute(attr_name="partKeys", null=True)
    part_frames: MapAttribute[str, Any] = MapAttribute(attr_name="partFrames", null=True)
    part_failures: MapAttribute[str, Any] = MapAttribute(attr_name="partFailures", null=True)
    ttl = TTLAttribute(null=True, attr_name=schema.TTL)


def create_table_request(table_name: str) -> dict[str, Any]:
    """CreateTable's arguments for the model's table (the local stack, tests): its keys and
    indexes come from the model, so they are declared once."""
    schema_: Any = TimelapseModel._get_schema()  # PynamoDB types it loosely
    indexes = [
        {
            "IndexName": index["index_name"],
            # DynamoDB wants the partition key first: "HASH" sorts before "RANGE".
            "KeySchema": sorted(index["key_schema"], key=lambda k: k["KeyType"]),
            "Projection": index["projection"],
        }
        for index in schema_["global_secondary_indexes"]
    ]
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": schema_["attribute_definitions"],
        "KeySchema": schema_["key_schema"],
        "GlobalSecondaryIndexes": indexes,
    }


def bind_table(table_name: str, region: str, host: str | None) -> None:
    """Point the model at a table; called once by wiring.py."""
    TimelapseModel.Meta.table_name = table_name
    TimelapseModel.Meta.region = region
    TimelapseModel.Meta.host = host
    TimelapseModel._connection = None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _parse(raw: str | None) -> datetime | None:
    return datetime.fromisoformat(raw) if raw else None


def _plain(attribute: MapAttribute[str, Any] | None) -> dict[str, Any] | None:
    if attribute is None:
        return None
    return {key: _number(value) for key, value in attribute.as_dict().items()}


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    return value


def _fanout(item: TimelapseModel) -> FanOut | None:
    raw = _plain(item.fanout)
    if not raw:
        return None

    def numbers(attribute: MapAttribute[str, Any] | None) -> dict[int, int]:
        return {int(k): int(v) for k, v in (_plain(attribute) or {}).items()}

    return FanOut(
        token=str(raw["token"]),
        parts=tuple(PartRange(int(a), int(b), float(seek)) for a, b, seek in raw["parts"]),
        frame_count=int(raw["frames"]),
        done=frozenset(int(part) for part in item.parts_done or ()),
        keys={int(k): str(v) for k, v in (_plain(item.part_keys) or {}).items()},
        frames=numbers(item.part_frames),
        failures=numbers(item.part_failures),
    )


def to_domain(item: TimelapseModel) -> Timelapse:
    upload = _plain(item.upload) or {}
    error = _plain(item.error)
    lease = item.lease_expires_at
    fanout = _fanout(item)
    return Timelapse(
        id=item.id,
        owner_id=item.owner_id,
        project_id=item.project_id,
        status=Status(item.status),
        stage=Stage(item.stage) if item.stage else None,
        progress=fanout.progress if fanout else int(item.progress or 0),
        content_type=item.content_type,
        size_bytes=None if item.size_bytes is None else int(item.size_bytes),
        original_video_key=item.original_video_key,
        processed_video_key=item.processed_video_key,
        poster_key=item.poster_key,
        filename=item.filename,
        duration_minutes=item.duration_minutes,
        target_seconds=None if item.target_seconds is None else float(item.target_seconds),
        speed=None if item.speed is None else float(item.speed),
        options=RenderOptions.from_api(_plain(item.options)),
        process=bool(item.process),
        callback_url=item.callback_url,
        upload=UploadInfo(
            method=UploadMethod(upload.get("method", "PUT")),
            upload_id=upload.get("uploadId"),
            part_size=upload.get("partSize"),
            part_count=upload.get("partCount"),
        ),
        source=_plain(item.source),
        output=_plain(item.output),
        error=ErrorInfo(error["code"], error["message"]) if error else None,
        attempts=int(item.attempts or 0),
        created_at=_parse(item.created_at) or utcnow(),
        updated_at=_parse(item.updated_at) or utcnow(),
        started_at=_parse(item.started_at),
        completed_at=_parse(item.completed_at),
        uploaded_at=_parse(item.uploaded_at),
        lease_owner=item.lease_owner,
        lease_expires_at=datetime.fromtimestamp(float(lease), UTC) if lease else None,
        client_upload_id=item.client_upload_id,
        original_etag=item.original_etag,
        fanout=fanout,
    )


def _without_fanout() -> list[Action]:
    """A fresh attempt, or an ending, forgets any fan-out (its parts then stop by themselves)."""
    return [
        TimelapseModel.fanout.remove(),
        TimelapseModel.parts_done.remove(),
        TimelapseModel.part_keys.remove(),
        TimelapseModel.part_frames.remove(),
        TimelapseModel.part_failures.remove(),
    ]


def _upload_map(upload: UploadInfo) -> dict[str, Any]:
    raw: dict[str, Any] = {"method": upload.method.value}
    if upload.upload_id:
        raw.update(
            uploadId=upload.upload_id, partSize=upload.part_size, partCount=upload.part_count
        )
    return raw


def condition_for(transition: Transition, guard: Guard | None = None) -> Condition:
    """The transition's rule from the domain's table, as one DynamoDB condition expression."""
    given = guard or Guard()
    starts = [_start_condition(start, given) for start in TRANSITIONS[transition]]
    return functools.reduce(operator.or_, starts)


def _start_condition(start: From, guard: Guard) -> Condition:
    condition: Condition = TimelapseModel.status == start.status.value
    if start.stage is None:
        condition &= TimelapseModel.stage.does_not_exist()
    elif start.stage is not ANY:
        condition &= TimelapseModel.stage == start.stage.value
    if start.owned:
        condition &= TimelapseModel.lease_owner == guard.lease_token()
    if start.lease_expired:
        condition &= TimelapseModel.lease_expires_at < guard.moment().timestamp()
    if start.attempts_left:
        condition &= TimelapseModel.attempts < guard.attempt_limit()
    return condition


def _encode_cursor(key: dict[str, Any] | None) -> str | None:
    if not key:
        return None
    return base64.urlsafe_b64encode(json.dumps(key, sort_keys=True).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error) as exc:
        raise ValidationError("cursor is not one this API handed out") from exc
    if (
        not isinstance(key, dict)
        or set(key) != set(CURSOR_KEYS)
        or not all(
            isinstance(value, dict) and set(value) == {"S"} and isinstance(value["S"], str)
            for value in key.values()
        )
    ):
        raise ValidationError("cursor is not one this API handed out")
    return key


class DynamoDBTimelapseRepository:
    """Records of timelapses; each method is one read or one conditional write."""

    def create(self, timelapse: Timelapse) -> None:
        item = TimelapseModel(
            timelapse.id,
            owner_id=timelapse.owner_id,
            project_id=timelapse.project_id,
            owner_project=schema.owner_project(timelapse.owner_id, timelapse.project_id),
            in_flight=timelapse.status.value,
            status=timelapse.status.value,
            stage=timelapse.stage.value if timelapse.stage else None,
            progress=timelapse.progress,
            content_type=timelapse.content_type,
            size_bytes=timelapse.size_bytes,
            original_video_key=timelapse.original_video_key,
            filename=timelapse.filename,
            duration_minutes=timelapse.duration_minutes,
            target_seconds=timelapse.target_seconds,
            speed=timelapse.speed,
            options=timelapse.options.as_api(),
            process=timelapse.process,
            callback_url=timelapse.callback_url,
            upload=_upload_map(timelapse.upload),
            attempts=0,
            created_at=_iso(timelapse.created_at),
            updated_at=_iso(timelapse.updated_at),
        )
        try:
            item.save(condition=TimelapseModel.id.does_not_exist())
        except PutError as exc:
            if exc.cause_response_code == CONDITION_FAILED:
                raise ConflictError(f"timelapse {timelapse.id} already exists") from exc
            raise

    def get(self, timelapse_id: str) -> Timelapse | None:
        if not is_timelapse_id(timelapse_id):
            return None  # the table holds other items too (webhook secrets)
        try:
            return to_domain(TimelapseModel.get(timelapse_id, consistent_read=True))
        except DoesNotExist:
            return None

    def get_owned(self, timelapse_id: str, owner_id: str) -> Timelapse:
        """The record if it belongs to `owner_id`; another's is as unknown as a missing one."""
        found = self.get(timelapse_id)
        if found is None or found.owner_id != owner_id:
            raise NotFoundError(f"no timelapse {timelapse_id}")
        return found

    def list_by_project(
        self,
        owner_id: str,
        project_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        status: Status | None = None,
    ) -> tuple[list[Timelapse], str | None]:
        start = _decode_cursor(cursor) if cursor else None
        partition = schema.owner_project(owner_id, project_id)
        if start is not None and start[schema.OWNER_PROJECT]["S"] != partition:
            raise ValidationError("cursor is not one this API handed out")
        results = TimelapseModel.by_owner_project.query(
            partition,
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=start,
            filter_condition=(TimelapseModel.status == status.value) if status else None,
        )
        try:
            items = [to_domain(item) for item in results]
        except QueryError as exc:
            if start is not None:
                raise ValidationError("cursor is not one this API handed out") from exc
            raise
        next_key = results.last_evaluated_key if len(items) >= limit else None
        return items, _encode_cursor(next_key)

    # --- the watchdog's reads: queries of the sparse in-flight index, never a scan ---------------

    def _in_flight(self, status: Status, **query: Any) -> Iterator[Timelapse]:
        for item in TimelapseModel.by_in_flight.query(status.value, **query):
            yield to_domain(item)

    def find_expired_leases(self, now: datetime) -> Iterator[Timelapse]:
        """Processing records whose worker's lease ran out."""
        return self._in_flight(
            Status.PROCESSING, filter_condition=TimelapseModel.lease_expires_at < now.timestamp()
        )

    def find_stale_pending(self, stage: Stage, before: datetime) -> Iterator[Timelapse]:
        """Records pending in `stage` since before `before`: queued ones no worker claimed (a lost
        message), or awaiting an upload whose storage event never came."""
        condition = (TimelapseModel.stage == stage.value) & (
            TimelapseModel.updated_at < _iso(before)
        )
        return self._in_flight(
            Status.PENDING,
            range_key_condition=TimelapseModel.created_at < _iso(before),
            filter_condition=condition,
        )

    def find_upload_overdue(self, created_before: datetime) -> Iterator[Timelapse]:
        """Records still awaiting their upload that were created before `created_before`."""
        return self._in_flight(
            Status.PENDING,
            range_key_condition=TimelapseModel.created_at < _iso(created_before),
            filter_condition=TimelapseModel.stage == Stage.AWAITING_UPLOAD.value,
        )

    def delete(self, timelapse_id: str) -> None:
        TimelapseModel(timelapse_id).delete()

    def record_webhook_failure(self, timelapse_id: str, failure: WebhookFailure) -> bool:
        """Keeps the delivery given up on; `updatedAt` stays (the record's state did not change)."""
        delivery = {
            "status": "failed",
            "event": failure.event,
            "deliveryId": failure.delivery_id,
            "attempts": failure.attempts,
            "reason": failure.reason,
            "failedAt": _iso(failure.failed_at),
        }
        try:
            TimelapseModel(timelapse_id).update(
                actions=[TimelapseModel.webhook_delivery.set(delivery)],
                condition=TimelapseModel.id.exists(),
            )
        except UpdateError as exc:
            if exc.cause_response_code == CONDITION_FAILED:
                return False  # deleted since: nobody left to tell
            raise
        return True

    # --- transitions: each one conditional write -------------------------------------------

    def _update(
        self,
        timelapse_id: str,
        actions: list[Action],
        transition: Transition,
        guard: Guard | None = None,
        *,
        also: Condition | None = None,
    ) -> Timelapse:
        """One conditional write: the transition's rule (and `also`, a condition on fields the
        state machine does not describe)."""
        condition = condition_for(transition, guard)
        if also is not None:
            condition &= also
        item = TimelapseModel(timelapse_id)
        now = utcnow()
        try:
            item.update(
                actions=[*actions, TimelapseModel.updated_at.set(_iso(now))], condition=condition
            )
        except UpdateError as exc:
            if exc.cause_response_code == CONDITION_FAILED:
                raise ConflictError(
                    f"timelapse {timelapse_id} is not in the expected state"
                ) from exc
            raise
        return to_domain(item)

    def mark_uploaded(
        self,
        timelapse_id: str,
        *,
        queue: bool,
        etag: str | None = None,
        size_bytes: int | None = None,
    ) -> Timelapse:
        """awaiting_upload → queued (or → uploaded-and-idle for process=false); `etag` names the
        object accepted, so that only it is ever rendered; `size_bytes`, the stored original's,
        fills in a size the client did not declare (Uppy)."""
        stage = (
            TimelapseModel.stage.set(Stage.QUEUED.value) if queue else TimelapseModel.stage.remove()
        )
        # An idle upload (process=false) waits for its owner, not for the watchdog.
        flight = (
            TimelapseModel.in_flight.set(Status.PENDING.value)
            if queue
            else TimelapseModel.in_flight.remove()
        )
        actions: list[Action] = [stage, flight, TimelapseModel.uploaded_at.set(_iso(utcnow()))]
        if etag:
            actions.append(TimelapseModel.original_etag.set(etag))
        if size_bytes is not None:
            actions.append(TimelapseModel.size_bytes.set(size_bytes))
        return self._update(
            timelapse_id,
            actions,
            Transition.MARK_UPLOADED,
        )

    def bind_client_upload(self, timelapse_id: str, upload_id: str) -> Timelapse:
        """Make `upload_id` the record's one client multipart upload: set at its first sight,
        refused (ConflictError) once another is bound or the upload is over."""
        unbound = TimelapseModel.client_upload_id.does_not_exist() | (
            TimelapseModel.client_upload_id == upload_id
        )
        return self._update(
            timelapse_id,
            [TimelapseModel.client_upload_id.set(upload_id)],
            Transition.BIND_UPLOAD,
            also=unbound,
        )

    def requeue(self, timelapse_id: str) -> Timelapse:
        """failed / cancelled / uploaded-idle → pending/queued, ready for a fresh attempt."""
        return self._update(
            timelapse_id,
            [
                TimelapseModel.status.set(Status.PENDING.value),
                TimelapseModel.in_flight.set(Status.PENDING.value),
                TimelapseModel.stage.set(Stage.QUEUED.value),
                TimelapseModel.progress.set(0),
                TimelapseModel.attempts.set(0),  # the owner asked again: a fresh set of tries
                TimelapseModel.error.remove(),
                TimelapseModel.completed_at.remove(),
                TimelapseModel.lease_owner.remove(),
                TimelapseModel.lease_expires_at.remove(),
                *_without_fanout(),
            ],
            Transition.REQUEUE,
        )

    def claim(
        self, timelapse_id: str, token: str, lease_seconds: float, *, max_attempts: int = 3
    ) -> Timelapse:
        """pending/queued → processing/probing, owned by `token` until the lease runs out.

        Also takes over a processing record whose worker's lease ran out (a redelivered message
        after the worker died), while attempts remain; the watchdog fails it otherwise.
        """
        now = utcnow()
        return self._update(
            timelapse_id,
            [
                TimelapseModel.status.set(Status.PROCESSING.value),
                TimelapseModel.in_flight.set(Status.PROCESSING.value),
                TimelapseModel.stage.set(Stage.PROBING.value),
                TimelapseModel.progress.set(0),
                TimelapseModel.attempts.add(1),
                TimelapseModel.lease_owner.set(token),
                TimelapseModel.lease_expires_at.set(
                    (now + timedelta(seconds=lease_seconds)).timestamp()
                ),
                TimelapseModel.started_at.set(_iso(now)),
                TimelapseModel.error.remove(),
                *_without_fanout(),
            ],
            Transition.CLAIM,
            Guard(now=now, max_attempts=max_attempts),
        )

    def heartbeat(
        self,
        timelapse_id: str,
        token: str,
        lease_seconds: float,
        *,
        stage: Stage | None = None,
        progress: int | None = None,
        source: dict[str, Any] | None = None,
        part_frames: tuple[int, int] | None = None,
    ) -> Timelapse:
        """Extend the lease (and record stage/progress/source, or how many frames a part of a
        fanned-out render has rendered) while the worker still owns it."""
        expires = (utcnow() + timedelta(seconds=lease_seconds)).timestamp()
        actions: list[Action] = [TimelapseModel.lease_expires_at.set(expires)]
        if part_frames is not None:
            part, frames = part_frames
            actions.append(TimelapseModel.part_frames[str(part)].set(frames))
        if stage is not None:
            actions.append(TimelapseModel.stage.set(stage.value))
        if progress is not None:
            actions.append(TimelapseModel.progress.set(progress))
        if source is not None:
            actions.append(TimelapseModel.source.set(source))
        return self._update(timelapse_id, actions, Transition.HEARTBEAT, Guard(token=token))

    def complete(
        self,
        timelapse_id: str,
        token: str,
        *,
        processed_video_key: str,
        poster_key: str,
        output: dict[str, Any],
    ) -> Timelapse:
        return self._update(
            timelapse_id,
            [
                TimelapseModel.status.set(Status.COMPLETE.value),
                TimelapseModel.in_flight.remove(),
                TimelapseModel.stage.remove(),
                TimelapseModel.progress.set(100),
                TimelapseModel.processed_video_key.set(processed_video_key),
                TimelapseModel.poster_key.set(poster_key),
                TimelapseModel.output.set(output),
                TimelapseModel.completed_at.set(_iso(utcnow())),
                TimelapseModel.lease_owner.remove(),
                TimelapseModel.lease_expires_at.remove(),
                *_without_fanout(),
            ],
            Transition.COMPLETE,
            Guard(token=token),
        )

    def _failure_actions(self, error: ErrorInfo) -> list[Action]:
        return self._ending_actions(Status.FAILED, error)

    def _ending_actions(self, status: Status, error: ErrorInfo) -> list[Action]:
        """A terminal state with its reason; the worker's lease goes with it."""
        return [
            TimelapseModel.status.set(status.value),
            TimelapseModel.in_flight.remove(),
            TimelapseModel.stage.remove(),
            TimelapseModel.error.set({"code": error.code, "message": error.message}),
            TimelapseModel.completed_at.set(_iso(utcnow())),
            TimelapseModel.lease_owner.remove(),
            TimelapseModel.lease_expires_at.remove(),
            *_without_fanout(),
        ]

    def fan_out(
        self, timelapse_id: str, token: str, fanout: FanOut, lease_seconds: float
    ) -> Timelapse:
        """Hand the owned render to parts: the parts are written once, nothing is done yet."""
        expires = (utcnow() + timedelta(seconds=lease_seconds)).timestamp()
        parts = [[p.first_frame, p.end_frame, p.seek_seconds] for p in fanout.parts]
        return self._update(
            timelapse_id,
            [
                TimelapseModel.fanout.set(
                    {"token": token, "parts": parts, "frames": fanout.frame_count}
                ),
                TimelapseModel.parts_done.remove(),
                TimelapseModel.part_keys.set({}),
                TimelapseModel.part_frames.set({}),
                TimelapseModel.part_failures.set({}),
                TimelapseModel.stage.set(Stage.RENDERING.value),
                TimelapseModel.progress.set(0),
                TimelapseModel.lease_expires_at.set(expires),
            ],
            Transition.FAN_OUT,
            Guard(token=token),
        )

    def finish_part(
        self, timelapse_id: str, token: str, part: int, *, key: str, frames: int
    ) -> Timelapse:
        """Count part `part` done, with its segment: once. A part finishing again (a duplicate
        message, a retry that overlapped) meets a false condition (ConflictError), so exactly one
        write makes the set complete, and the invocation that made it joins."""
        name = str(part)
        return self._update(
            timelapse_id,
            [
                TimelapseModel.parts_done.add({name}),
                TimelapseModel.part_keys[name].set(key),
                TimelapseModel.part_frames[name].set(frames),
            ],
            Transition.FINISH_PART,
            Guard(token=token),
            also=~TimelapseModel.parts_done.contains(name),
        )

    def fail_part(self, timelapse_id: str, token: str, part: int) -> Timelapse:
        """Count one failure of part `part` (the record says how many it has had)."""
        failures = TimelapseModel.part_failures[str(part)]
        return self._update(
            timelapse_id,
            [failures.set((failures | 0) + 1)],
            Transition.FAIL_PART,
            Guard(token=token),
            also=~TimelapseModel.parts_done.contains(str(part)),
        )

    def fail(self, timelapse_id: str, token: str, error: ErrorInfo) -> Timelapse:
        """processing → failed, by the worker that owns it."""
        return self._update(
            timelapse_id, self._failure_actions(error), Transition.FAIL, Guard(token=token)
        )

    def fail_pending(self, timelapse_id: str, error: ErrorInfo) -> Timelapse:
        """pending → failed, for an upload refused before any worker claimed it."""
        return self._update(
            timelapse_id,
            self._failure_actions(error),
            Transition.FAIL_PENDING,
        )

    def fail_abandoned(self, timelapse_id: str, error: ErrorInfo, now: datetime) -> Timelapse:
        """pending, or processing with a lease that ran out → failed (a dead-lettered message)."""
        return self._update(
            timelapse_id, self._failure_actions(error), Transition.FAIL_ABANDONED, Guard(now=now)
        )

    def expire_lease(
        self, timelapse_id: str, token: str, now: datetime, *, retry: bool, error: ErrorInfo
    ) -> Timelapse:
        """processing, lease run out → pending/queued (retry) or failed (out of tries)."""
        guard = Guard(token=token, now=now)
        if not retry:
            return self._update(
                timelapse_id, self._failure_actions(error), Transition.EXPIRE_LEASE, guard
            )
        return self._update(
            timelapse_id,
            [
                TimelapseModel.status.set(Status.PENDING.value),
                TimelapseModel.in_flight.set(Status.PENDING.value),
                TimelapseModel.stage.set(Stage.QUEUED.value),
                TimelapseModel.progress.set(0),
                TimelapseModel.lease_owner.remove(),
                TimelapseModel.lease_expires_at.remove(),
                *_without_fanout(),
            ],
            Transition.EXPIRE_LEASE,
            guard,
        )

    def expire_upload(self, timelapse_id: str, error: ErrorInfo) -> Timelapse:
        """pending/awaiting_upload → failed: the upload window ended before the upload did."""
        return self._update(timelapse_id, self._failure_actions(error), Transition.EXPIRE_UPLOAD)

    def cancel(self, timelapse_id: str, error: ErrorInfo) -> Timelapse:
        """pending or processing → cancelled. Raises ConflictError from any other state."""
        return self._update(
            timelapse_id,
            self._ending_actions(Status.CANCELLED, error),
            Transition.CANCEL,
        )
