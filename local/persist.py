"""What the local stack keeps across a restart (`make run` sets LAPSE_DATA_DIR=.run/data).

moto keeps everything in memory. Objects: every few seconds and when the storage stops (Ctrl-C),
each object not yet saved is copied to `<dir>/objects/<n>` beside a JSON line of its name, ETag,
type and date (`objects.jsonl`); objects deleted since are dropped. When the storage starts, each
saved object becomes a key again whose bytes are read from its file in place (no copy), so a
restart with GBs stored costs what listing them costs. Records: the table's items, scanned to
`<dir>/table.jsonl` once the API and the worker have stopped, and written back after
provisioning (local/stack.py). Queue messages: when the storage stops (after the API and the
worker), every message still in a queue is written to `<dir>/queues.jsonl` with how long it had
still to stay hidden (a delayed webhook retry, a message a stopped worker had received); the next
start sends them again once the queues exist, hidden as long, and forgets the file (so a stack
killed later does not send them twice). As SQS at least once: a message may come twice (a
duplicate claim is refused), and its receive count starts again at 0.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

from local.config import ACCOUNT_ID

OBJECTS = "objects"
INDEX = "objects.jsonl"
TABLE = "table.jsonl"
QUEUES = "queues.jsonl"
# SQS delays a message at most 15 minutes.
MAX_DELAY_SECONDS = 900
COPY_BYTES = 16 * 1024 * 1024


def _s3_backend() -> Any:
    from moto.s3.models import s3_backends  # noqa: PLC0415 - only the storage process has moto

    return s3_backends[ACCOUNT_ID]["aws"]


def _saved(directory: Path) -> dict[tuple[str, str], dict[str, Any]]:
    index = directory / INDEX
    if not index.exists():
        return {}
    entries = (json.loads(line) for line in index.read_text().splitlines() if line.strip())
    return {(entry["bucket"], entry["key"]): entry for entry in entries}


def _keys(backend: Any) -> Iterator[tuple[str, Any]]:
    for bucket in list(backend.buckets.values()):
        for key in list(bucket.keys.values()):
            yield bucket.name, key


def save_objects(directory: Path) -> int:
    """Writes the objects not saved yet and forgets the deleted ones; returns bytes copied."""
    files = directory / OBJECTS
    files.mkdir(parents=True, exist_ok=True)
    saved = _saved(directory)
    entries, copied, kept = [], 0, set()
    for bucket, key in _keys(_s3_backend()):
        entry = saved.get((bucket, key.name))
        if entry is None or entry["etag"] != key.etag:
            try:
                entry = _save_object(files, bucket, key)
            except ValueError:  # deleted or replaced while being copied: its buffer is closed
                continue
            copied += key.size
        entries.append(entry)
        kept.add(entry["file"])
    temporary = directory / f"{INDEX}.partial"
    temporary.write_text("".join(json.dumps(entry) + "\n" for entry in entries))
    temporary.replace(directory / INDEX)
    for stale in files.iterdir():
        if stale.name not in kept:
            stale.unlink(missing_ok=True)
    return copied


class Saver:
    """Saves new objects every `interval` seconds in a thread, and once more at the end, so that
    Ctrl-C copies only the last few seconds' objects (and a killed storage loses only those)."""

    def __init__(self, directory: Path, interval: float = 5.0) -> None:
        self.directory = directory
        self.interval = interval
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def save(self) -> int:
        with self._lock:
            return save_objects(self.directory)

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            try:
                self.save()
            except OSError as exc:
                print(f"objects not saved: {exc}", flush=True)

    def start(self) -> None:
        threading.Thread(target=self._run, name="saver", daemon=True).start()

    def stop(self) -> int:
        self._stopped.set()
        return self.save()


def _save_object(files: Path, bucket: str, key: Any) -> dict[str, Any]:
    name = f"{os.urandom(12).hex()}"
    partial = files / f"{name}.partial"
    with partial.open("wb") as out:
        position = 0
        while True:
            with key.lock:  # a chunk at a time: readers of the object wait for one chunk only
                key._value_buffer.seek(position)
                chunk = key._value_buffer.read(COPY_BYTES)
            if not chunk:
                break
            out.write(chunk)
            position += len(chunk)
    partial.replace(files / name)
    return {
        "bucket": bucket,
        "key": key.name,
        "file": name,
        "etag": key.etag,
        "size": key.size,
        "contentType": key.metadata.get("Content-Type", "binary/octet-stream"),
        "lastModified": key.last_modified.isoformat(),
    }


def restore_objects(directory: Path, region: str) -> int:
    """Makes every saved object a key again, read from its file in place; returns how many."""
    backend = _s3_backend()
    restored = 0
    for entry in _saved(directory).values():
        path = directory / OBJECTS / entry["file"]
        if not path.exists():
            continue
        if entry["bucket"] not in backend.buckets:
            backend.create_bucket(entry["bucket"], region)
        key = backend.put_object(entry["bucket"], entry["key"], b"", etag=entry["etag"].strip('"'))
        key._value_buffer.close()
        key._value_buffer = path.open("rb")  # the key's bytes, read in place
        key.contentsize = entry["size"]
        key.set_metadata({"Content-Type": entry["contentType"]})
        key.last_modified = datetime.fromisoformat(entry["lastModified"])
        restored += 1
    return restored


def save_table(directory: Path, dynamodb: DynamoDBClient, table: str) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f"{TABLE}.partial"
    count = 0
    with temporary.open("w") as out:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                out.write(json.dumps(item) + "\n")
                count += 1
    temporary.replace(directory / TABLE)
    return count


def restore_table(directory: Path, dynamodb: DynamoDBClient, table: str) -> int:
    path = directory / TABLE
    if not path.exists():
        return 0
    items = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for start in range(0, len(items), 25):
        batch = [{"PutRequest": {"Item": item}} for item in items[start : start + 25]]
        pending: Any = {table: batch}
        while pending:
            answer = dynamodb.batch_write_item(RequestItems=pending)
            pending = answer.get("UnprocessedItems") or None
    return len(items)


def _sqs_backend(region: str) -> Any:
    from moto.sqs.models import sqs_backends  # noqa: PLC0415 - only the storage process has moto

    return sqs_backends[ACCOUNT_ID][region]


def save_queues(directory: Path, region: str) -> int:
    """Writes every message still in a queue (visible, delayed or received but not deleted);
    returns how many. Run by the storage process as it stops, after the API and the worker."""
    directory.mkdir(parents=True, exist_ok=True)
    now_ms = time.time() * 1000
    lines = []
    for name, queue in list(_sqs_backend(region).queues.items()):
        with queue._messages_lock:
            messages = list(queue._messages)
        for message in messages:
            hidden_ms = max(message.delayed_until, message.visible_at) - now_ms
            entry = {
                "queue": name,
                "body": message.body,
                "hiddenSeconds": max(0.0, hidden_ms / 1000),
            }
            lines.append(json.dumps(entry) + "\n")
    temporary = directory / f"{QUEUES}.partial"
    temporary.write_text("".join(lines))
    temporary.replace(directory / QUEUES)
    return len(lines)


def restore_queues(directory: Path, sqs: SQSClient, queue_url: dict[str, str]) -> int:
    """Sends the saved messages again (each hidden as long as it still was, at most SQS's 15
    minutes), then forgets them; `queue_url` maps a queue's name to its URL. Returns how many."""
    path = directory / QUEUES
    if not path.exists():
        return 0
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for entry in entries:
        delay = min(MAX_DELAY_SECONDS, math.ceil(entry["hiddenSeconds"]))
        url = queue_url.get(entry["queue"])
        if url is None:
            print(f"a message of unknown queue {entry['queue']!r} not restored", flush=True)
            continue
        sqs.send_message(QueueUrl=url, MessageBody=entry["body"], DelaySeconds=delay)
    path.unlink()
    return len(entries)
