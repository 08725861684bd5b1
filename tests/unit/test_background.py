"""Background work (the events and statuses that follow a delete) waits while deadline
reconciles run, so that a second of expiries sends its deletes first; and it waits a bounded time,
so a deadline lane that never empties cannot starve it."""

from __future__ import annotations

import asyncio

import pytest

from roadie.core import background, events, reconciler


async def test_follow_up_work_waits_for_the_deadline_lane_to_empty() -> None:
    done: list[str] = []

    async def follow_up() -> None:
        done.append("event")

    with background.urgent():
        background.soon(follow_up, "an event")
        for _ in range(20):
            await asyncio.sleep(0)
        assert done == [], "nothing follows while a deadline reconcile runs"
    await asyncio.wait_for(background.calm(), 1)
    for _ in range(20):
        await asyncio.sleep(0)
    assert done == ["event"]


async def test_the_wait_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(background, "HOLD", 0.05)
    done = asyncio.Event()

    async def follow_up() -> None:
        done.set()

    with background.urgent():
        background.soon(follow_up, "an event")
        await asyncio.wait_for(done.wait(), 1)  # ran although the lane never emptied


async def test_a_phase_event_is_posted_after_the_reconcile_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    posted: list[tuple[str, str]] = []
    gate = asyncio.Event()

    async def emit(_body: object, type_: str, reason: str, _message: str) -> None:
        await gate.wait()  # a slow API server
        posted.append((type_, reason))

    monkeypatch.setattr(events, "emit", emit)
    body = {"metadata": {"name": "w"}}
    await asyncio.wait_for(reconciler.announce_phase(body, {"phase": "Creating"}, {"phase": "Failed"}), 1)
    assert posted == [], "the reconcile did not wait for the event's round trip"
    await reconciler.announce_phase(body, {"phase": "Ready"}, {"phase": "Ready"})  # no change: no event
    gate.set()
    for _ in range(50):
        await asyncio.sleep(0)
    assert posted == [("Warning", "Failed")]
