"""PreviewEnvironment status, computed without a cluster: each phase from what a reconcile saw,
conditions that say why (and who holds a taken name), transition times that do not move when
nothing changed (so a steady object is not written), and the one-time `readyAt` that the
creation metrics count."""

from __future__ import annotations

import datetime

import pytest

from roadie.core import status as status_writer
from roadie.preview import status

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.UTC)
LATER = NOW + datetime.timedelta(seconds=30)


def _seen(**fields: object) -> status.Observed:
    base: dict[str, object] = {"generation": 1}
    return status.Observed(**(base | fields))  # type: ignore[arg-type]


def _applied(available: bool, **fields: object) -> status.Observed:
    return _seen(
        applied=True,
        available=available,
        namespace="preview-pr-42",
        url="https://pr-42.example.com",
        image="app:v1",
        **fields,
    )


def _cond(new: dict[str, object], type_: str) -> dict[str, str]:
    return next(c for c in new["conditions"] if c["type"] == type_)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("seen", "served_before", "phase"),
    [
        (_seen(), False, "Pending"),
        (_seen(waiting=(status.NAMESPACE_TERMINATING, "wait")), False, "Pending"),
        (_applied(False), False, "Creating"),
        (_applied(False), True, "Updating"),
        (_applied(True), False, "Ready"),
        (_seen(failure=(status.NAME_TAKEN, "held")), False, "Failed"),
        (_applied(True, terminating=True), True, "Terminating"),
        (_seen(failure=(status.NAME_TAKEN, "held"), terminating=True), False, "Terminating"),
    ],
)
def test_phase(seen: status.Observed, served_before: bool, phase: str) -> None:
    assert status.phase_of(seen, served_before) == phase


def test_ready_says_what_serves_where() -> None:
    new = status.compute({}, _applied(True), NOW)
    assert new["phase"] == "Ready" and new["message"] == ""
    assert _cond(new, "Ready")["status"] == "True"
    assert "app:v1" in _cond(new, "Ready")["message"] and "https://pr-42.example.com" in _cond(new, "Ready")["message"]
    assert _cond(new, "Provisioned")["reason"] == status.APPLIED
    assert new["namespace"] == "preview-pr-42" and new["readyAt"] == "2026-01-01T12:00:00Z"


def test_failure_names_the_holder_in_both_conditions_and_the_message() -> None:
    held = "namespace preview-pr-42 is held by PreviewEnvironment default/first"
    new = status.compute({}, _seen(failure=(status.NAME_TAKEN, held)), NOW)
    assert new["phase"] == "Failed"
    for type_ in ("Provisioned", "Ready"):
        assert (_cond(new, type_)["status"], _cond(new, type_)["reason"]) == ("False", status.NAME_TAKEN)
        assert _cond(new, type_)["message"] == held
    assert new["message"] == held
    assert new["namespace"] is None and new["url"] is None, "nulls clear what an earlier status said"


def test_waiting_for_the_deployment_lists_the_problems_seen() -> None:
    new = status.compute({}, _applied(False, problems=["pod 'x' cannot be scheduled"]), NOW)
    assert new["phase"] == "Creating"
    assert _cond(new, "Ready")["reason"] == "DeploymentUnavailable"
    assert "cannot be scheduled" in new["message"]


def test_a_second_identical_compute_changes_nothing() -> None:
    first = status.compute({}, _applied(True), NOW)
    second = status.compute(first, _applied(True), LATER)
    assert second == first
    assert not status_writer.changed(first, second)


def test_transition_time_moves_only_with_the_status() -> None:
    creating = status.compute({}, _applied(False), NOW)
    ready = status.compute(creating, _applied(True), LATER)
    assert _cond(ready, "Provisioned")["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert _cond(ready, "Ready")["lastTransitionTime"] == "2026-01-01T12:00:30Z"


def test_ready_at_is_set_once_and_kept_through_updates() -> None:
    creating = status.compute({}, _applied(False), NOW)
    assert "readyAt" not in creating
    ready = status.compute(creating, _applied(True), LATER)
    assert status.first_ready(creating, ready)
    updating = status.compute(ready, _applied(False), LATER + datetime.timedelta(minutes=5))
    assert updating["phase"] == "Updating" and updating["readyAt"] == ready["readyAt"]
    again = status.compute(updating, _applied(True), LATER + datetime.timedelta(minutes=6))
    assert again["readyAt"] == ready["readyAt"]
    assert not status.first_ready(updating, again), "a later return to Ready is not a new creation"


def test_expiry_is_written_and_dropped_with_the_ttl() -> None:
    expires = NOW + datetime.timedelta(hours=1)
    with_ttl = status.compute({}, _applied(True, expires_at=expires), NOW)
    assert with_ttl["expiresAt"] == "2026-01-01T13:00:00Z"
    without = status.compute(with_ttl, _applied(True), NOW)
    assert without["expiresAt"] is None, "null removes the field in the merge patch"


@pytest.mark.parametrize(("phase", "live"), [("Creating", True), ("Updating", True), ("Ready", True)])
def test_live_phases(phase: str, live: bool) -> None:
    assert status.is_live({"phase": phase}) is live


@pytest.mark.parametrize("phase", ["Pending", "Failed", "Terminating", None])
def test_not_live(phase: str | None) -> None:
    assert not status.is_live({"phase": phase})
