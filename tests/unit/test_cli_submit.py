"""`lapse submit` when the upload's last answer is lost: a complete that outlived the client's
connection (storage assembling gigabytes) must not cancel a timelapse whose upload arrived."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from lapse_cli import commands
from lapse_cli.client import ApiClient, ClientError


class Api(ApiClient):
    """The API as the CLI sees it, with the record in a given state after the upload."""

    def __init__(self, stage_after_upload: str) -> None:
        super().__init__("http://api.invalid", "token")
        self.stage_after_upload = stage_after_upload
        self.cancelled: list[str] = []

    def request(
        self, method: str, path: str, body: Any = None, *, timeout: float | None = None
    ) -> Any:
        assert (method, path) == ("POST", "/timelapses")
        return {"timelapse": {"id": "t1"}, "upload": {"method": "multipart"}}

    def get(self, timelapse_id: str) -> dict[str, Any]:
        status = "pending" if self.stage_after_upload != "rendering" else "processing"
        return {"id": timelapse_id, "status": status, "stage": self.stage_after_upload}

    def cancel(self, timelapse_id: str) -> dict[str, Any]:
        self.cancelled.append(timelapse_id)
        return {}


def submit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, api: Api) -> int:
    video = tmp_path / "long.mp4"
    video.write_bytes(b"\0" * 64)

    def lost_answer(*_: Any) -> None:
        raise ClientError("cannot reach the API at http://api.invalid: timed out")

    monkeypatch.setattr(commands, "_client", lambda _: api)
    monkeypatch.setattr(commands, "upload", lost_answer)
    monkeypatch.setattr(commands, "_finish", lambda *_: 0)
    args = argparse.Namespace(
        file=video,
        resume=None,
        project="p",
        content_type=None,
        target_seconds=None,
        callback_url=None,
        json=True,
    )
    monkeypatch.setattr(commands, "option_fields", lambda _: {})
    return commands.run_submit(args)


def test_a_lost_answer_after_the_upload_arrived_goes_on_waiting(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    api = Api(stage_after_upload="queued")
    assert submit(monkeypatch, tmp_path, api) == 0
    assert api.cancelled == []


def test_an_upload_that_never_arrived_is_cancelled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    api = Api(stage_after_upload="awaiting_upload")
    with pytest.raises(ClientError):
        submit(monkeypatch, tmp_path, api)
    assert api.cancelled == ["t1"]
