"""The app at its handler boundary, as the chalice guide tests it: `chalice.test.Client` for the
HTTP routes (auth, status codes, the error mapping) and `lambda_.invoke` with generated SQS events
for the queue handlers — the real use cases on the in-memory fakes (tests/fakes.py), wired in
through `wiring`, the one seam. No sockets, milliseconds each."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from chalice.test import Client

from app import app
from chalicelib import wiring
from chalicelib.adapters.auth import HS256Verifier, make_local_token
from chalicelib.adapters.queue import process_message
from chalicelib.domain.limits import Limits
from chalicelib.domain.timelapse import Stage, Status, Timelapse
from chalicelib.services.processing import ProcessingService
from chalicelib.services.timelapses import TimelapseService
from chalicelib.services.watchdog import WatchdogService
from tests.factories import SOURCE, TIMELAPSE_ID, a_timelapse
from tests.fakes import FakeMedia, FakeQueue, FakeRecords, FakeStorage, RecordingNotifier

SECRET = "local-dev-secret"
KEY = f"videos/{TIMELAPSE_ID}.mp4"


def bearer(user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_local_token(user, SECRET)}"}


ALICE = {**bearer("user-1"), "Content-Type": "application/json"}  # the factory record's owner
MALLORY = {**bearer("mallory"), "Content-Type": "application/json"}


@dataclass
class Wired:
    records: FakeRecords
    storage: FakeStorage
    queue: FakeQueue
    notifier: RecordingNotifier

    def record(self) -> Timelapse:
        found = self.records.get(TIMELAPSE_ID)
        assert found is not None
        return found


@pytest.fixture
def wired(monkeypatch: pytest.MonkeyPatch) -> Wired:
    world = Wired(FakeRecords(), FakeStorage(), FakeQueue(), RecordingNotifier())
    limits = Limits()
    timelapses = TimelapseService(world.records, world.storage, world.queue, limits, world.notifier)
    media = FakeMedia(SOURCE)
    worker = ProcessingService(
        world.records, world.storage, limits, world.notifier, media, heartbeat_seconds=0.02
    )
    watchdog = WatchdogService(world.records, world.queue, world.notifier, max_attempts=3)
    # chalice.test.Client exports the dev stage's settings (OIDC); these tests sign HS256 tokens.
    monkeypatch.setattr(wiring, "token_verifier", lambda: HS256Verifier(SECRET))
    monkeypatch.setattr(wiring, "timelapse_service", lambda: timelapses)
    monkeypatch.setattr(wiring, "processing_service", lambda: worker)
    monkeypatch.setattr(wiring, "watchdog_service", lambda: watchdog)
    return world


def answer_of(response: Any, status: int) -> Any:
    assert response.status_code == status, response.body
    return json.loads(response.body) if response.body else None


def error_of(response: Any, status: int) -> dict[str, str]:
    error = answer_of(response, status)["error"]
    assert set(error) == {"code", "message"}
    return dict(error)


# --- auth -------------------------------------------------------------------------------------

ROUTES = [
    ("POST", "/timelapses"),
    ("GET", f"/timelapses/{TIMELAPSE_ID}"),
    ("DELETE", f"/timelapses/{TIMELAPSE_ID}"),
    ("POST", f"/timelapses/{TIMELAPSE_ID}/cancel"),
    ("POST", f"/timelapses/{TIMELAPSE_ID}/process"),
    ("GET", "/projects/p-42/timelapses"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-jwt"}, bearer("x") | {"Authorization": "Basic abc"}],
    ids=["no token", "garbage token", "not bearer"],
)
def test_every_route_but_the_public_ones_needs_a_valid_token(
    wired: Wired, method: str, path: str, headers: dict[str, str]
) -> None:
    wired.records.create(a_timelapse())
    with Client(app) as client:
        answer = client.http.request(method, path, headers=headers, body=b"{}")
    assert error_of(answer, 401)["code"] == "unauthorized"
    assert wired.record() == a_timelapse()  # nothing changed


def test_a_token_signed_with_another_secret_is_refused(wired: Wired) -> None:
    forged = {"Authorization": f"Bearer {make_local_token('user-1', 'guessed-secret')}"}
    with Client(app) as client:
        answer = client.http.get(f"/timelapses/{TIMELAPSE_ID}", headers=forged)
    error_of(answer, 401)


def test_health_needs_no_token(wired: Wired) -> None:
    with Client(app) as client:
        assert answer_of(client.http.get("/health"), 200) == {"status": "ok"}


# --- what each use case's answer and refusal maps to ------------------------------------------


def test_create_answers_201_with_the_record_and_its_upload(wired: Wired) -> None:
    body = {"projectId": "p-42", "contentType": "video/mp4", "sizeBytes": 1234}
    with Client(app) as client:
        created = answer_of(
            client.http.post("/timelapses", headers=ALICE, body=json.dumps(body)), 201
        )
    assert created["timelapse"]["status"] == "pending"
    assert created["upload"]["method"] == "PUT"
    assert wired.records.get(created["timelapse"]["id"]) is not None


# .mts as Debian's /etc/mime.types and Python's `mimetypes` name it: what a browser using them sends
OS_MTS = "model/vnd.mts"


def test_every_create_route_takes_an_mts_labelled_as_the_os_names_it(wired: Wired) -> None:
    sign = {"method": "PUT", "key": f"{TIMELAPSE_ID}-00001.MTS", "projectId": "p-42"}
    companion = {"filename": "00001.MTS", "type": OS_MTS, "metadata": {"projectId": "p-42"}}
    query = "filename=00001.MTS&type=model%2Fvnd.mts&metadata%5BprojectId%5D=p-42"
    with Client(app) as client:
        # POST /timelapses, as the web page sends file.type
        body = {"projectId": "p-42", "contentType": OS_MTS, "sizeBytes": 9, "filename": "a.mts"}
        created = answer_of(
            client.http.post("/timelapses", headers=ALICE, body=json.dumps(body)), 201
        )
        # Uppy 6 (signRequest), Uppy 4–5 (Companion multipart and single PUT)
        signed = client.http.post(
            "/uploads/sign", headers=ALICE, body=json.dumps({**sign, "contentType": OS_MTS})
        )
        opened = client.http.post("/s3/multipart", headers=ALICE, body=json.dumps(companion))
        params = client.http.get(f"/s3/params?{query}", headers=ALICE)
        # the same type on a file that is not .mts stays refused
        other = {**body, "filename": "scene.obj"}
        refused = client.http.post("/timelapses", headers=ALICE, body=json.dumps(other))
    timelapse = created["timelapse"]
    assert timelapse["originalVideoKey"].endswith(".mts")
    # kept as declared: the upload is signed for the type the browser gives the file (Uppy 6
    # sends that one, whatever the answer says)
    assert timelapse["contentType"] == OS_MTS
    assert created["upload"]["headers"] == {"Content-Type": OS_MTS}
    assert answer_of(signed, 200)["key"].endswith(".mts")
    assert answer_of(opened, 200)["key"].endswith(".mts")
    assert answer_of(params, 200)["headers"] == {"Content-Type": OS_MTS}
    assert error_of(refused, 415)["code"] == "unsupported_media_type"


def test_another_users_timelapse_is_as_unknown_as_a_missing_one(wired: Wired) -> None:
    wired.records.create(a_timelapse())
    with Client(app) as client:
        theirs = client.http.get(f"/timelapses/{TIMELAPSE_ID}", headers=MALLORY)
        unknown = client.http.get("/timelapses/0193f0c2-0000-4000-8000-00000000beef", headers=ALICE)
        deleted = client.http.delete(f"/timelapses/{TIMELAPSE_ID}", headers=MALLORY)
    assert error_of(theirs, 404)["code"] == error_of(unknown, 404)["code"] == "not_found"
    error_of(deleted, 404)
    assert wired.records.get(TIMELAPSE_ID) is not None


def test_owner_reads_cancels_and_deletes(wired: Wired) -> None:
    wired.records.create(a_timelapse())
    with Client(app) as client:
        read = answer_of(client.http.get(f"/timelapses/{TIMELAPSE_ID}", headers=ALICE), 200)
        assert read["urls"]["original"].startswith("https://")
        cancelled = client.http.post(f"/timelapses/{TIMELAPSE_ID}/cancel", headers=ALICE)
        assert answer_of(cancelled, 202)["timelapse"]["status"] == "cancelled"
        again = client.http.post(f"/timelapses/{TIMELAPSE_ID}/cancel", headers=ALICE)
        assert answer_of(again, 202)["timelapse"]["status"] == "cancelled"
        gone = client.http.delete(f"/timelapses/{TIMELAPSE_ID}", headers=ALICE)
    assert gone.status_code == 204
    assert gone.body == b""
    assert wired.records.get(TIMELAPSE_ID) is None


def test_a_state_conflict_is_a_409_with_the_reason(wired: Wired) -> None:
    wired.records.create(a_timelapse(status=Status.COMPLETE, stage=None))
    with Client(app) as client:
        answer = client.http.post(f"/timelapses/{TIMELAPSE_ID}/cancel", headers=ALICE)
    error = error_of(answer, 409)
    assert error == {"code": "conflict", "message": "a complete timelapse cannot be cancelled"}


def test_process_without_an_uploaded_original_is_a_409(wired: Wired) -> None:
    wired.records.create(a_timelapse(status=Status.FAILED, stage=None))
    with Client(app) as client:
        answer = client.http.post(f"/timelapses/{TIMELAPSE_ID}/process", headers=ALICE)
    assert "no original video" in error_of(answer, 409)["message"]
    assert wired.queue.sent == []


def test_an_unexpected_error_is_a_500_that_tells_nothing(
    wired: Wired, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> None:
        raise RuntimeError("the table is on fire")

    monkeypatch.setattr(wired.records, "get_owned", broken)
    with Client(app) as client:
        answer = client.http.get(f"/timelapses/{TIMELAPSE_ID}", headers=ALICE)
    assert error_of(answer, 500) == {"code": "internal_error", "message": "internal error"}


# --- the queue handlers -----------------------------------------------------------------------


def s3_event(key: str) -> str:
    return json.dumps(
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"key": key}}}]}
    )


def test_a_storage_event_through_the_queue_renders_the_timelapse(wired: Wired) -> None:
    wired.records.create(a_timelapse())
    wired.storage.put(KEY, b"x" * 1234)
    with Client(app) as client:
        client.lambda_.invoke(
            "process_uploads", client.events.generate_sqs_event([s3_event(KEY)], "lapse-process")
        )
    done = wired.record()
    assert done.status is Status.COMPLETE
    assert [t.status for t in wired.notifier.ended] == [Status.COMPLETE]


def test_lapse_s_own_process_message_runs_a_queued_record(wired: Wired) -> None:
    wired.records.create(a_timelapse(stage=Stage.QUEUED))
    wired.storage.put(KEY, b"x" * 1234)
    message = json.dumps(process_message(TIMELAPSE_ID))
    with Client(app) as client:
        client.lambda_.invoke(
            "process_uploads", client.events.generate_sqs_event([message], "lapse-process")
        )
    assert wired.record().status is Status.COMPLETE


def test_messages_of_unknown_shape_are_dropped_without_a_crash(wired: Wired) -> None:
    wired.records.create(a_timelapse(stage=Stage.QUEUED))
    junk = ["not json", "[]", json.dumps({"Records": "nope"}), s3_event("posters/x.jpg")]
    with Client(app) as client:
        client.lambda_.invoke("process_uploads", client.events.generate_sqs_event(junk, "q"))
    assert wired.record().stage is Stage.QUEUED


def test_a_dead_lettered_message_fails_its_record_with_a_message(wired: Wired) -> None:
    wired.records.create(a_timelapse(stage=Stage.QUEUED))
    message = json.dumps(process_message(TIMELAPSE_ID))
    with Client(app) as client:
        client.lambda_.invoke(
            "dead_letters", client.events.generate_sqs_event([message], "lapse-process-dlq")
        )
    failed = wired.record()
    assert failed.status is Status.FAILED
    assert failed.error is not None
    assert failed.error.code == "processing_failed"
