"""The history check: many uploads through the whole stack while duplicate deliveries are injected,
owners cancel at random moments and a worker is killed mid-render; every status change of every
record is recorded (a poller reads the table many times a second) and checked afterwards.

Size: LAPSE_STRESS_UPLOADS (default 24, inside `make test`; `make stress` runs 200). The table is
read through moto, so the poller reads only records still moving, many times a second, and the
whole table every 5 s; it prints the rate it reached.
Figures are printed at the end: uploads, injected duplicates, cancels, kills, lost, doubled.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from chalicelib.adapters.queue import process_message
from tests.e2e.conftest import Api
from tests.stress.harness import OwnStack, Worker, own_stack, until
from tests.support import make_clip

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("stress")]

MiB = 1024 * 1024
UPLOADS = int(os.environ.get("LAPSE_STRESS_UPLOADS", "24"))
SEED = int(os.environ.get("LAPSE_STRESS_SEED", "1"))
TERMINAL = {"complete", "failed", "cancelled"}
STAGE_ORDER = {"probing": 0, "rendering": 1, "uploading": 2}


@dataclass(frozen=True)
class Seen:
    """One observed state of a record."""

    status: str
    stage: str | None
    attempts: int
    progress: int
    updated_at: str

    @property
    def state(self) -> str:
        return f"{self.status}/{self.stage}" if self.stage else self.status


@dataclass
class History:
    """Every distinct state of every record, in the order the poller saw them."""

    seen: dict[str, list[Seen]] = field(default_factory=dict)
    polls: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def record(self, items: list[dict[str, Any]]) -> None:
        for item in items:
            snapshot = Seen(
                status=item["status"]["S"],
                stage=item.get("stage", {}).get("S"),
                attempts=int(item.get("attempts", {}).get("N", "0")),
                progress=int(float(item.get("progress", {}).get("N", "0"))),
                updated_at=item["updatedAt"]["S"],
            )
            states = self.seen.setdefault(item["id"]["S"], [])
            if not states or states[-1] != snapshot:
                states.append(snapshot)


def scan_table(stack: OwnStack, history: History) -> None:
    dynamodb = stack.config.dynamodb()
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(
        TableName=stack.config.table, ConsistentRead=True
    ):
        items += page["Items"]
    history.record(items)


def poll_table(
    stack: OwnStack, history: History, known: Callable[[], list[str]], hz: float = 20.0
) -> None:
    """Read every record still moving up to `hz` times a second (batch gets of the ids created so
    far), and the whole table every few seconds (proof that finished ones no longer change)."""
    dynamodb = stack.config.dynamodb()
    table = stack.config.table
    last_scan = time.monotonic()
    while not history.stop.is_set():
        if time.monotonic() - last_scan >= 5.0:
            last_scan = time.monotonic()
            scan_table(stack, history)
            continue
        seen = history.seen
        moving = [t for t in known() if t not in seen or seen[t][-1].status not in TERMINAL]
        for start in range(0, len(moving), 100):
            keys = [{"id": {"S": tid}} for tid in moving[start : start + 100]]
            answer = dynamodb.batch_get_item(
                RequestItems={table: {"Keys": keys, "ConsistentRead": True}}
            )
            history.record(answer["Responses"].get(table, []))
        history.polls += 1
        history.stop.wait(1 / hz)


def backwards(before: Seen, after: Seen) -> str | None:
    """Why `before` → `after` (possibly with unseen states between) breaks the state machine."""
    if before.status in TERMINAL:
        return None if after == before else "changed after a terminal state"
    if after.attempts < before.attempts:
        return "attempts went down"
    if before.status == "processing" and after.state == "pending/awaiting_upload":
        return "processing went back to awaiting the upload"
    if before.state == "pending/queued" and after.state == "pending/awaiting_upload":
        return "queued went back to awaiting the upload"
    claimed = after.status == "processing" and before.status == "pending"
    if claimed and after.attempts <= before.attempts:
        return "claimed without counting an attempt"
    if before.status == after.status == "processing" and before.attempts == after.attempts:
        if STAGE_ORDER[after.stage or ""] < STAGE_ORDER[before.stage or ""]:
            return "stage went backwards within one attempt"
        if after.progress < before.progress:
            return "progress went down within one attempt"
    return None


@dataclass
class Load:
    """What the run did to the stack."""

    ids: list[str] = field(default_factory=list)
    duplicates: int = 0
    cancels_sent: int = 0
    cancels_accepted: int = 0
    multipart: int = 0
    kills: int = 0
    killed_jobs: list[str] = field(default_factory=list)  # ids the killed worker was working on
    lock: threading.Lock = field(default_factory=threading.Lock)


def _upload(api: Api, data: bytes, load: Load) -> tuple[str, str, bool]:
    created = api.create(len(data), targetSeconds=1)
    tid = str(created["timelapse"]["id"])
    with load.lock:
        load.ids.append(tid)
    plan = created["upload"]
    if plan["method"] == "PUT":
        api.upload_put(created, data)
        return tid, created["timelapse"]["originalVideoKey"], False
    parts = []
    for part in plan["parts"]:
        n = part["partNumber"]
        chunk = data[(n - 1) * plan["partSize"] : n * plan["partSize"]]
        answer = requests.put(part["url"], data=chunk, timeout=60)
        parts.append({"partNumber": n, "etag": answer.headers.get("ETag", "")})
    # A cancel may already have aborted it: then completing is refused, as it should be.
    api.request("POST", f"/timelapses/{tid}/upload/complete", json={"parts": parts})
    return tid, created["timelapse"]["originalVideoKey"], True


def _event(key: str) -> dict[str, Any]:
    """An S3 ObjectCreated notification, as the bucket sends it to the queue."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": "lapse-local"}, "object": {"key": key}},
            }
        ]
    }


def one_upload(stack: OwnStack, api: Api, clip: bytes, rng: random.Random, load: Load) -> None:
    """Upload one clip; maybe inject duplicate deliveries; maybe cancel it at a random moment."""
    tid, key, multipart = _upload(api, clip, load)
    with load.lock:
        load.multipart += multipart
    sqs = stack.config.sqs()
    if rng.random() < 0.4:
        copies = rng.randint(1, 3)
        for _ in range(copies):
            body = _event(key) if rng.random() < 0.7 else process_message(tid)
            sqs.send_message(
                QueueUrl=stack.config.queue_url,
                MessageBody=json.dumps(body),
                DelaySeconds=rng.choice([0, 0, 1, 3]),
            )
        with load.lock:
            load.duplicates += copies
    if rng.random() < 0.25:
        time.sleep(rng.uniform(0, 2.0))
        answer = api.request("POST", f"/timelapses/{tid}/cancel")
        assert answer.status_code in {202, 409}, answer.text
        with load.lock:
            load.cancels_sent += 1
            load.cancels_accepted += answer.status_code == 202


# The victim's 5 s lease lets its jobs come back quickly after the kill; the workers that live
# hold 20 s leases, so a machine too loaded to renew within 5 s does not hand a healthy render
# to a second worker (a "doubled" job that says more about the load than about lapse).
SURVIVOR = {"LAPSE_LEASE_SECONDS": "20", "LAPSE_WORKER_CONCURRENCY": "2"}


def running_renders(worker: Worker) -> list[bytes]:
    """The command lines of `worker`'s rendering ffmpeg processes (not probes, not posters)."""
    return [command for command in worker.child_commands() if b"-progress" in command]


def kill_mid_render(stack: OwnStack, victim: Worker, load: Load) -> None:
    """Wait until `victim` runs ffmpeg, SIGKILL it, and start a replacement."""
    commands = until(lambda: running_renders(victim), timeout=120, interval=0.05)
    if not commands:
        return
    victim.kill()
    # What it held is what its sandbox still holds: one folder per job in progress.
    held = {path.name.split("-")[1] for path in victim.work_dirs()}
    with load.lock:
        load.kills += 1
        load.killed_jobs += [tid for tid in load.ids if tid[:8] in held]
    stack.start_worker("replacement", **SURVIVOR)


@pytest.fixture(scope="module")
def stress_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    directory = tmp_path_factory.mktemp("stress")
    with own_stack(
        directory, LAPSE_MAX_ATTEMPTS="3", LAPSE_MULTIPART_THRESHOLD_BYTES=str(MiB)
    ) as stack:
        # The killed worker's unfinished long polls take (and lose) messages that arrive just
        # after its death; they come back after the visibility timeout, so keep that short.
        stack.config.sqs().set_queue_attributes(
            QueueUrl=stack.config.queue_url, Attributes={"VisibilityTimeout": "20"}
        )
        # Every write of an output becomes a version: a second render of one record shows.
        stack.config.s3().put_bucket_versioning(
            Bucket=stack.config.bucket, VersioningConfiguration={"Status": "Enabled"}
        )
        yield stack


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("stress-clips")
    small = [
        make_clip(folder / f"c{n}.mp4", seconds=seconds, size=size).read_bytes()
        for n, (seconds, size) in enumerate([(1, "320x240"), (2, "320x240"), (1, "480x270")])
    ]
    # Slower ones (a keyframe every 4 s: every frame decoded) so a kill finds a render running;
    # padded past 1 MiB so they go up multipart (readers ignore bytes after the last box).
    slow = make_clip(folder / "slow.mp4", seconds=4, size="640x360", gop=120).read_bytes()
    return [*small, *small, slow + b"\0" * (MiB + 1 - len(slow) % MiB)]


def _output_versions(stack: OwnStack, timelapse_id: str) -> int:
    listed = stack.config.s3().list_object_versions(
        Bucket=stack.config.bucket, Prefix=f"timelapses/{timelapse_id}"
    )
    return len(listed.get("Versions", []))


def test_history_of_a_stress_run(stress_stack: OwnStack, clips: list[bytes]) -> None:
    stack = stress_stack
    rng = random.Random(SEED)
    api = stack.api("stress")
    history = History()
    load = Load()
    started = time.monotonic()
    # Given two workers (two jobs at a time each) and a poller recording every state
    victim = stack.start_worker("victim", LAPSE_LEASE_SECONDS="5", LAPSE_WORKER_CONCURRENCY="2")
    stack.start_worker("steady", **SURVIVOR)
    poller = threading.Thread(
        target=poll_table, args=(stack, history, lambda: list(load.ids)), daemon=True
    )
    poller.start()
    # When uploads arrive four at a time, with duplicates and cancels, and the victim is killed
    killer = threading.Thread(target=kill_mid_render, args=(stack, victim, load), daemon=True)
    killer.start()
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(
                one_upload, stack, api, clips[n % len(clips)], random.Random(rng.random()), load
            )
            for n in range(UPLOADS)
        ]
        for future in futures:
            future.result()
    killer.join(timeout=120)

    def settled() -> bool:
        last = {tid: states[-1] for tid, states in history.seen.items()}
        return all(tid in last and last[tid].status in TERMINAL for tid in load.ids)

    until(settled, timeout=60 + UPLOADS, interval=0.5)
    time.sleep(2)  # a last look: nothing may change after the terminal state
    history.stop.set()
    poller.join(timeout=10)
    scan_table(stack, history)  # the last word: what every record says now
    elapsed = time.monotonic() - started

    # Then every record ended in exactly one terminal state, never moving backwards
    problems: list[str] = []
    lost = [tid for tid in load.ids if history.seen[tid][-1].status not in TERMINAL]
    for tid in load.ids:
        states = history.seen[tid]
        for before, after in itertools.pairwise(states):
            if reason := backwards(before, after):
                problems.append(f"{tid}: {before.state} → {after.state}: {reason}")
    # And each record has at most one output, only if complete, written once unless re-rendered
    outcomes: dict[str, int] = {}
    doubled = []
    for tid in load.ids:
        final = history.seen[tid][-1]
        outcomes[final.status] = outcomes.get(final.status, 0) + 1
        outputs = stack.objects(f"timelapses/{tid}")
        expected = [f"timelapses/{tid}.mp4"] if final.status == "complete" else []
        if outputs != expected:
            problems.append(f"{tid}: {final.status} with outputs {outputs}")
        writes = _output_versions(stack, tid)
        if writes > 1 or final.attempts > 1 + (tid in load.killed_jobs):
            # With the states the poller saw, to tell a lease that lapsed under load (a requeue
            # after `processing`) from a job the victim held that the kill's count missed.
            path = " → ".join(f"{seen.state}#{seen.attempts}" for seen in history.seen[tid])
            doubled.append(f"{tid}: {writes} output writes, {final.attempts} attempts: {path}")
    # And nothing is left half-done: no multipart upload, no temporary folder in a live worker
    uploads = stack.config.s3().list_multipart_uploads(Bucket=stack.config.bucket)
    leftovers = [w.name for w in stack.workers if w is not victim and w.work_dirs()]
    print(
        f"\nstress: {UPLOADS} uploads ({load.multipart} multipart), "
        f"{load.duplicates} injected duplicate deliveries, "
        f"{load.cancels_sent} cancels ({load.cancels_accepted} accepted), "
        f"{load.kills} worker killed mid-render (holding {len(load.killed_jobs)} jobs), "
        f"lost {len(lost)}, doubled {len(doubled)}; outcomes {outcomes}; "
        f"{history.polls / elapsed:.1f} table polls a second; {elapsed:.1f} s"
    )
    assert load.kills == 1, "the victim was never caught rendering"
    assert not lost, lost
    assert not doubled, doubled
    assert not problems, "\n".join(problems[:30])
    assert not uploads.get("Uploads"), uploads.get("Uploads")
    assert not leftovers, leftovers
    for killed in load.killed_jobs:
        assert history.seen[killed][-1].status in {"complete", "cancelled"}


def _seen(state: str, attempts: int = 1, progress: int = 0, updated: str = "t1") -> Seen:
    status, _, stage = state.partition("/")
    return Seen(status, stage or None, attempts, progress, updated)


@pytest.mark.parametrize(
    ("before", "after", "reason"),
    [
        (_seen("complete"), _seen("cancelled"), "terminal"),
        (_seen("cancelled"), _seen("cancelled", updated="t2"), "terminal"),
        (_seen("processing/rendering", 2), _seen("processing/rendering", 1), "attempts"),
        (_seen("processing/uploading"), _seen("processing/rendering"), "stage"),
        (_seen("processing/rendering", progress=50), _seen("processing/rendering"), "progress"),
        (_seen("pending/queued", 1), _seen("processing/probing", 1), "attempt"),
        (_seen("pending/queued"), _seen("pending/awaiting_upload"), "awaiting"),
    ],
)
def test_the_history_check_catches_what_goes_backwards(
    before: Seen, after: Seen, reason: str
) -> None:
    # The checker itself can fail: each of these breaks the state machine
    found = backwards(before, after)
    assert found is not None
    assert reason in found


@pytest.mark.parametrize(
    ("before", "after"),
    [
        (_seen("pending/awaiting_upload", 0), _seen("cancelled", 0)),
        (_seen("pending/queued", 0), _seen("processing/rendering", 1)),
        (_seen("processing/rendering", 1, 40), _seen("pending/queued", 1)),  # the watchdog
        (_seen("pending/queued", 1), _seen("processing/probing", 2)),
        (_seen("processing/rendering", 1, 40), _seen("processing/uploading", 1, 99)),
        (_seen("processing/uploading", 1, 99), _seen("complete", 1, 100)),
    ],
)
def test_the_history_check_accepts_the_state_machine(before: Seen, after: Seen) -> None:
    assert backwards(before, after) is None
