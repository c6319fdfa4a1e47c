"""What the local stack keeps across a restart (`make run` sets LAPSE_DATA_DIR=.run/data).

moto keeps everything in memory. Objects: every few seconds and when the storage stops (Ctrl-C),
each object not yet saved is copied to `<dir>/objects/<n>` beside a JSON line of its name, ETag,
type and date (`objects.jsonl`); objects deleted since are dropped. When the storage starts, each
saved object becomes a key again whose bytes are read from its file in place (no copy), so a
restart with GBs stored costs what listing them costs. Records: the table's items, scanned to
`<dir>/table.jsonl` once the API and the worker have stopped, and written back after
provisioning (local/stack.py). Queue messages are not kept: the watchdog requeues what a record
says is unfinished.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

from local.config import ACCOUNT_ID

OBJECTS = "objects"
INDEX = "objects.jsonl"
TABLE = "table.jsonl"
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
