"""What may be rendered: only the upload a record was made for (services/uploads.py)."""

from __future__ import annotations

from typing import Any

import pytest

from chalicelib.domain.limits import Limits
from chalicelib.services.ports import ObjectInfo
from chalicelib.services.uploads import acceptance_refusal, original_refusal
from tests.factories import a_timelapse

LIMITS = Limits(max_upload_bytes=10_000)


def stored(size: int = 1234, etag: str | None = '"e1"') -> ObjectInfo:
    return ObjectInfo("videos/x.mp4", size, "video/mp4", {}, etag)


@pytest.mark.parametrize(
    ("record", "found", "code"),
    [
        ({}, None, "upload_missing"),
        ({}, stored(size=1233), "size_mismatch"),
        ({}, stored(size=1235), "size_mismatch"),
        ({"size_bytes": 20_000}, stored(size=20_000), "too_large"),
        ({"original_etag": '"e1"'}, stored(etag='"e2"'), "upload_replaced"),
        ({"original_etag": '"e1"'}, stored(etag=None), "upload_replaced"),
    ],
)
def test_what_is_refused(record: dict[str, Any], found: ObjectInfo | None, code: str) -> None:
    refusal = original_refusal(a_timelapse(**record), found, LIMITS)
    assert refusal is not None
    assert refusal.code == code
    assert refusal.message


@pytest.mark.parametrize("record", [{}, {"original_etag": '"e1"'}])
def test_the_declared_upload_is_accepted(record: dict[str, Any]) -> None:
    assert original_refusal(a_timelapse(**record), stored(), LIMITS) is None


class OpenUploads:
    def __init__(self, *open_ids: str) -> None:
        self.open_ids = set(open_ids)

    def upload_in_progress(self, key: str, upload_id: str) -> bool:
        return upload_id in self.open_ids


def test_an_object_landing_while_the_bound_upload_is_open_came_from_elsewhere() -> None:
    record = a_timelapse(client_upload_id="bound")
    refusal = acceptance_refusal(record, stored(), OpenUploads("bound"), LIMITS)  # type: ignore[arg-type]
    assert refusal is not None
    assert refusal.code == "upload_mismatch"
    # Once the bound upload is completed (no longer open), its object is accepted
    assert acceptance_refusal(record, stored(), OpenUploads("other"), LIMITS) is None  # type: ignore[arg-type]
