"""The Workshop reconcile's judgement when its children cannot be written yet: a new Workshop
says `Pending` (with the expiry it was given) while the write is retried; one that already has a
phase keeps it, and a failing status write does not hide the error being retried."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status

from roadie.workshop import reconcile, status

NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
BODY: dict[str, Any] = {"metadata": {"name": "w", "namespace": "ns", "generation": 1}}


def _seen() -> status.Observed:
    seen = status.Observed(generation=1, created_at=NOW, expires_at=NOW + datetime.timedelta(hours=4))
    seen.sessions = [{"index": 0, "ready": False}]  # written before the failure: not reported
    return seen


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def write(_api: Any, _body: Any, new: dict[str, Any]) -> bool:
        sent.append(new)
        return True

    monkeypatch.setattr(reconcile.status_writer, "write", write)
    return sent


async def test_a_new_workshop_whose_children_wait_for_a_retry_says_pending(writes: list[dict[str, Any]]) -> None:
    await reconcile._admitted(BODY, {}, _seen(), NOW)
    assert [w["phase"] for w in writes] == ["Pending"]
    assert writes[0]["expiresAt"] == "2026-01-01T16:00:00Z" and writes[0]["sessions"] == []


async def test_a_workshop_with_a_phase_keeps_it(writes: list[dict[str, Any]]) -> None:
    await reconcile._admitted(BODY, {"phase": "Creating"}, _seen(), NOW)
    assert writes == []


async def test_a_failing_status_write_leaves_the_original_error_to_be_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    tried: list[str] = []

    async def refuse(_api: Any, _body: Any, new: dict[str, Any]) -> bool:
        tried.append(new["phase"])
        raise ApiError(status=Status(code=503, message="unavailable"))

    monkeypatch.setattr(reconcile.status_writer, "write", refuse)
    await reconcile._admitted(BODY, {}, _seen(), NOW)  # raises nothing of its own
    assert tried == ["Pending"]
