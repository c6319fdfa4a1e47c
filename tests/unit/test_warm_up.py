"""The local worker opens its connections before the first job (`wiring.warm_up`), as a Lambda
function's init phase would; a failed warm-up read only leaves that to the first job."""

from __future__ import annotations

import pytest

from chalicelib import wiring
from chalicelib.domain.limits import Limits
from chalicelib.services.processing import ProcessingService
from tests.factories import SOURCE
from tests.fakes import FakeMedia, FakeRecords, FakeStorage, RecordingNotifier


class CountingRecords(FakeRecords):
    reads = 0

    def get(self, timelapse_id: str):
        self.reads += 1
        return super().get(timelapse_id)


class CountingStorage(FakeStorage):
    heads = 0

    def head(self, key: str):
        self.heads += 1
        return super().head(key)


class FailingStorage(FakeStorage):
    def head(self, key: str):
        raise ConnectionError("storage is not up yet")


def service(records: FakeRecords, storage: FakeStorage) -> ProcessingService:
    return ProcessingService(records, storage, Limits(), RecordingNotifier(), FakeMedia(SOURCE))


def test_warm_up_reads_the_table_and_the_bucket_once(monkeypatch: pytest.MonkeyPatch) -> None:
    records, storage = CountingRecords(), CountingStorage()
    monkeypatch.setattr(wiring, "processing_service", lambda: service(records, storage))
    wiring.warm_up()
    assert (records.reads, storage.heads) == (1, 1)


def test_a_failed_warm_up_read_does_not_stop_the_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        wiring, "processing_service", lambda: service(FakeRecords(), FailingStorage())
    )
    wiring.warm_up()  # logged, not raised
