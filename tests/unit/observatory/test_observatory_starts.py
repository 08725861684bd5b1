"""Pods created beside the reconciles (`starts.Starter`): an attempt counts as started from the
moment it is handed over until the cache shows its pod; a refused create ends the attempt and is
reported once; a create that failed for a passing reason is sent again and keeps its attempt; and
a run's status waits (`settled`) until the creates sent before it have ended, so no stored status
records an attempt whose pod was never created."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lightkube.core.exceptions import ApiError

from roadie.core import events
from roadie.observatory import children, starts
from roadie.observatory import status as obs_status

UID = "u1"
BODY: dict[str, Any] = {
    "apiVersion": "workflow.seventh-horizon.io/v1alpha1",
    "kind": "Observatory",
    "metadata": {"name": "wf", "namespace": "ns", "uid": UID},
}


class FakeApi:
    """Creates that wait for the test to let them through, fail as told, and record what was sent."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.gate = asyncio.Event()
        self.failures: dict[str, Exception] = {}

    async def create(self, manifest: dict[str, Any], parent: Any) -> bool:
        name = manifest["metadata"]["name"]
        self.sent.append(name)
        await self.gate.wait()
        error = self.failures.pop(name, None)
        if error is not None:
            raise error
        return True


def api_error(code: int) -> ApiError:
    class Response:
        status_code = code

        def json(self) -> dict[str, Any]:
            return {"code": code, "message": f"status {code}", "reason": "Test"}

    return ApiError(response=Response())  # type: ignore[arg-type]


def manifest(task: str, attempt: int) -> dict[str, Any]:
    return {"metadata": {"name": children.pod_name("wf", task, attempt)}}


def seen(task: str, attempt: int) -> dict[str, Any]:
    return {"metadata": {"labels": children.task_labels("wf", task, attempt)}}


@pytest.fixture
def woken() -> list[float]:
    return []


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def starter(api: FakeApi, woken: list[float], monkeypatch: pytest.MonkeyPatch) -> starts.Starter:
    async def no_event(*args: Any) -> None:
        return None

    monkeypatch.setattr(events, "emit", no_event)
    return starts.Starter(lambda body, delay: woken.append(delay), slots=2, create=api.create)


async def test_an_attempt_counts_from_the_hand_over_until_the_cache_shows_its_pod(
    starter: starts.Starter, api: FakeApi
) -> None:
    starter.start(UID, BODY, "a", 1, manifest("a", 1))
    assert starter.unseen(UID, {}) == {"a": 1}  # in flight: Pending, in its slot
    assert obs_status.observe(None, None, unseen_attempt=starter.unseen(UID, {})["a"]).pod == "Pending"
    api.gate.set()
    assert await starter.settled(UID)
    assert api.sent == [children.pod_name("wf", "a", 1)]
    assert starter.unseen(UID, {}) == {"a": 1}  # created, not in the cache yet
    assert starter.unseen(UID, {"a": seen("a", 1)}) == {}
    assert starter.runs == {}  # nothing is kept of a run with nothing in flight


async def test_a_refused_create_ends_the_attempt_and_is_reported_once(
    starter: starts.Starter, api: FakeApi, woken: list[float]
) -> None:
    api.failures[children.pod_name("wf", "a", 1)] = api_error(422)
    starter.start(UID, BODY, "a", 1, manifest("a", 1))
    api.gate.set()
    assert await starter.settled(UID)
    assert starter.unseen(UID, {}) == {}  # the next decision finds the attempt's pod missing
    refused = starter.refused(UID)
    assert len(refused) == 1 and "refused pod" in refused[0] and "422" in refused[0]
    assert starter.refused(UID) == []
    assert woken == [0.0]


async def test_a_create_that_failed_for_a_passing_reason_keeps_its_attempt_and_is_sent_again(
    starter: starts.Starter, api: FakeApi, woken: list[float]
) -> None:
    name = children.pod_name("wf", "a", 1)
    api.failures[name] = api_error(503)
    starter.start(UID, BODY, "a", 1, manifest("a", 1))
    api.gate.set()
    assert not await starter.settled(UID)  # a status recording attempt 1 must not be written yet
    assert starter.unseen(UID, {}) == {"a": 1}
    assert woken == [starts.RETRY]
    starter.retry(UID, BODY)
    assert await starter.settled(UID)
    assert api.sent == [name, name]
    assert starter.refused(UID) == []


async def test_settled_waits_for_every_create_in_flight(starter: starts.Starter, api: FakeApi) -> None:
    for task in "abc":
        starter.start(UID, BODY, task, 1, manifest(task, 1))
    waiting = asyncio.get_running_loop().create_task(starter.settled(UID))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    assert len(api.sent) == 2  # two slots: the third waits for one of them
    api.gate.set()
    assert await asyncio.wait_for(waiting, 1)
    assert len(api.sent) == 3


async def test_a_forgotten_run_keeps_nothing(starter: starts.Starter, api: FakeApi) -> None:
    starter.start(UID, BODY, "a", 1, manifest("a", 1))
    starter.forget(UID)
    assert starter.unseen(UID, {}) == {} and starter.runs == {}
    api.gate.set()
    assert await starter.settled(UID)
