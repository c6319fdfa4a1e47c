"""The local API server runs each connection in a thread while Chalice keeps the request in one
attribute of the app: requests at the same time must still each see their own body and token."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.conftest import Api, RunningStack

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def test_simultaneous_requests_each_see_their_own_body_and_caller(stack: RunningStack) -> None:
    users = [stack.api(f"crowd-{n}") for n in range(4)]

    def create(n: int) -> tuple[str, str]:
        api: Api = users[n % len(users)]
        answer = api.request(
            "POST",
            "/timelapses",
            json={"projectId": f"p-{n}", "contentType": "video/mp4", "sizeBytes": 1000 + n},
        )
        assert answer.status_code == 201, answer.text
        made = answer.json()["timelapse"]
        # the owner sees it: it was made for the caller who sent this body
        assert api.get(made["id"])["projectId"] == f"p-{n}"
        return made["projectId"], str(made["sizeBytes"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(create, range(32)))
    assert answers == [(f"p-{n}", str(1000 + n)) for n in range(32)]
