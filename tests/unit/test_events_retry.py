"""Posting an event: an error a retry can cure (a dropped connection, a 5xx) is tried again a few
times, as client-go's recorder does; one that no retry changes (a 403, a 422) is not; and a
failure never reaches the reconcile that wanted the event."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status

from roadie.core import client, events

BODY = {"apiVersion": "orchestra.io/v1", "kind": "Workshop", "metadata": {"name": "w", "namespace": "ns", "uid": "u"}}


class FlakyApi:
    """Fails the first `failures` creates with `error`, then accepts."""

    def __init__(self, error: Exception, failures: int) -> None:
        self.error, self.failures, self.tries = error, failures, 0
        self.posted: list[Any] = []

    async def create(self, obj: Any) -> Any:
        self.tries += 1
        if self.tries <= self.failures:
            raise self.error
        self.posted.append(obj)
        return obj


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(events.asyncio, "sleep", sleep)
    return slept


def _use(monkeypatch: pytest.MonkeyPatch, api: FlakyApi) -> None:
    monkeypatch.setattr(client, "get", lambda: api)


async def test_a_dropped_connection_is_tried_again_until_the_event_is_posted(
    monkeypatch: pytest.MonkeyPatch, pauses: list[float]
) -> None:
    api = FlakyApi(httpx2.RemoteProtocolError("Server disconnected"), failures=2)
    _use(monkeypatch, api)
    await events.emit(BODY, events.NORMAL, "Ready", "all sessions available")
    assert api.tries == 3 and len(api.posted) == 1
    assert api.posted[0].reason == "Ready"
    assert pauses == [events.RETRY_SECONDS, 2 * events.RETRY_SECONDS], "backing off between tries"


async def test_tries_are_bounded(monkeypatch: pytest.MonkeyPatch, pauses: list[float]) -> None:
    api = FlakyApi(ApiError(status=Status(code=503, message="unavailable")), failures=100)
    _use(monkeypatch, api)
    await events.emit(BODY, events.NORMAL, "Ready", "x")  # gives up without raising
    assert api.tries == events.TRIES and api.posted == []


async def test_a_refusal_is_not_tried_again(monkeypatch: pytest.MonkeyPatch, pauses: list[float]) -> None:
    api = FlakyApi(ApiError(status=Status(code=403, message="forbidden")), failures=100)
    _use(monkeypatch, api)
    await events.emit(BODY, events.WARNING, "Failed", "x")
    assert api.tries == 1 and pauses == []
