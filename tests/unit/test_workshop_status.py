"""A Workshop's phase and conditions, computed once per reconcile from what it observed.

The phase is the seed's contract with its users (`kubectl get ws` shows it, scripts wait on it),
and the conditions say why. These tests walk `compute()` through a workshop's life: Pending
before anything is applied, Creating while sessions come up (with the reasons in the Ready
condition), Ready, Running when a provisioned workshop loses a session for a while, Failed for a
lasting failure or a missed provisioning deadline (but not once it has been provisioned),
Terminating above all, and the expiry warning, timestamps and generation that go with them.
"""

from __future__ import annotations

import datetime
from typing import Any

from roadie.core import conditions
from roadie.workshop import status

NOW = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)
EARLIER = NOW - datetime.timedelta(hours=1)
CREATED = datetime.datetime(2024, 5, 1, 11, 30, 15, 123456, tzinfo=datetime.UTC)
EXPIRES = CREATED + datetime.timedelta(hours=4)


def session(index: int, ready: bool) -> dict[str, Any]:
    return {"index": index, "name": f"ws-p{index}", "url": f"http://p{index}/", "ready": ready}


def observed(**fields: Any) -> status.Observed:
    base: dict[str, Any] = {"generation": 3, "created_at": CREATED, "expires_at": EXPIRES}
    return status.Observed(**{**base, **fields})


def applied(*ready: bool, **fields: Any) -> status.Observed:
    sessions = [session(i, r) for i, r in enumerate(ready, start=1)]
    return observed(applied=True, sessions=sessions, **fields)


def provisioned_before() -> dict[str, Any]:
    """The status of a workshop that was once all available."""
    return status.compute({}, applied(True, True), EARLIER)


def condition(result: dict[str, Any], type_: str) -> dict[str, Any]:
    found = conditions.get(result["conditions"], type_)
    assert found is not None, f"no {type_} condition in {result['conditions']}"
    return found


def test_pending_before_anything_is_applied() -> None:
    result = status.compute({}, observed(), NOW)
    assert result["phase"] == "Pending"
    assert condition(result, status.READY)["status"] == "False"
    assert condition(result, status.PROVISIONED)["reason"] == "Provisioning"
    assert result["readySessions"] == 0
    assert result["sessions"] == []


def test_creating_while_sessions_are_unavailable_with_the_problems_in_ready() -> None:
    problems = ["pod intro-r-deployment-x: ImagePullBackOff", "claim intro-r-pvc: no StorageClass"]
    result = status.compute({}, applied(False, True, problems=problems), NOW)
    assert result["phase"] == "Creating"
    ready = condition(result, status.READY)
    assert ready["status"] == "False"
    assert ready["reason"] == "SessionsUnavailable"
    assert ready["message"].startswith("1/2 session(s) available")
    for problem in problems:
        assert problem in ready["message"]
        assert problem in condition(result, status.PROVISIONED)["message"]
    assert result["message"] == ready["message"]
    assert result["readySessions"] == 1


def test_creating_without_problems_says_how_many_are_available() -> None:
    result = status.compute({}, applied(False), NOW)
    assert result["phase"] == "Creating"
    assert condition(result, status.READY)["message"] == "0/1 session(s) available"


def test_applied_without_sessions_is_not_ready() -> None:
    result = status.compute({}, observed(applied=True), NOW)
    assert result["phase"] == "Creating"
    assert condition(result, status.READY)["status"] == "False"


def test_ready_when_every_session_is_ready() -> None:
    result = status.compute({}, applied(True, True, True), NOW)
    assert result["phase"] == "Ready"
    ready = condition(result, status.READY)
    assert ready["status"] == "True"
    assert ready["message"] == "3/3 session(s) available"
    assert condition(result, status.PROVISIONED)["status"] == "True"
    assert result["readySessions"] == 3
    assert result["message"] == ""


def test_ready_sessions_are_not_ready_until_applied() -> None:
    result = status.compute({}, observed(applied=False, sessions=[session(1, True)]), NOW)
    assert result["phase"] == "Pending"
    assert condition(result, status.READY)["status"] == "False"


def test_running_when_provisioned_and_some_sessions_not_ready() -> None:
    result = status.compute(provisioned_before(), applied(True, False, problems=["pod p2 restarting"]), NOW)
    assert result["phase"] == "Running"
    ready = condition(result, status.READY)
    assert ready["status"] == "False"
    assert "pod p2 restarting" in ready["message"]
    provisioned = condition(result, status.PROVISIONED)
    assert provisioned["status"] == "True"
    assert provisioned["lastTransitionTime"] == "2024-05-01T11:00:00Z"  # EARLIER: it stayed provisioned


def test_a_provisioned_workshop_with_no_session_available_is_neither_running_nor_failed() -> None:
    """Running means serving; with nothing available it is not, but it is no failure either."""
    result = status.compute(provisioned_before(), applied(False, False, deadline_passed=True), NOW)
    assert result["phase"] not in ("Running", "Ready", "Failed")
    assert condition(result, status.PROVISIONED)["status"] == "True"
    assert condition(result, status.READY)["message"].startswith("0/2 session(s) available")


def test_running_returns_to_ready_by_itself() -> None:
    running = status.compute(provisioned_before(), applied(True, False), NOW)
    later = NOW + datetime.timedelta(minutes=1)
    result = status.compute(running, applied(True, True), later)
    assert result["phase"] == "Ready"
    assert condition(result, status.READY)["lastTransitionTime"] == "2024-05-01T12:01:00Z"


def test_failed_on_a_lasting_failure() -> None:
    failure = ("NameConflict", "Deployment 'intro-r-deployment' already exists and belongs to no Roadie object")
    result = status.compute({}, applied(False, failure=failure), NOW)
    assert result["phase"] == "Failed"
    ready = condition(result, status.READY)
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", *failure)
    provisioned = condition(result, status.PROVISIONED)
    assert (provisioned["status"], provisioned["reason"]) == ("False", "NameConflict")
    assert result["message"] == failure[1]


def test_failed_on_an_invalid_spec_before_anything_is_applied() -> None:
    failure = ("InvalidSpec", "fix the spec: invalid duration")
    result = status.compute({}, observed(expires_at=None, failure=failure), NOW)
    assert result["phase"] == "Failed"
    assert "expiresAt" not in result
    assert conditions.get(result["conditions"], status.EXPIRING) is None


def test_failed_when_the_deadline_passes_without_ever_being_provisioned() -> None:
    result = status.compute({}, applied(False, deadline_passed=True, problems=["image not found"]), NOW)
    assert result["phase"] == "Failed"
    provisioned = condition(result, status.PROVISIONED)
    assert provisioned["reason"] == "ProvisioningDeadlineExceeded"
    assert "image not found" in provisioned["message"]


def test_deadline_without_a_known_cause_says_so() -> None:
    result = status.compute({}, observed(deadline_passed=True), NOW)
    assert result["phase"] == "Failed"
    assert condition(result, status.PROVISIONED)["message"].endswith("no cause seen")


def test_not_failed_when_the_deadline_passes_after_being_provisioned() -> None:
    result = status.compute(provisioned_before(), applied(True, False, deadline_passed=True), NOW)
    assert result["phase"] == "Running"
    assert condition(result, status.PROVISIONED)["status"] == "True"


def test_not_failed_when_everything_is_ready_at_the_deadline() -> None:
    result = status.compute({}, applied(True, deadline_passed=True), NOW)
    assert result["phase"] == "Ready"


def test_terminating_wins_over_everything() -> None:
    for seen in (
        observed(terminating=True),
        applied(True, terminating=True),
        applied(False, terminating=True, failure=("ChildRejected", "refused")),
        applied(False, terminating=True, deadline_passed=True),
    ):
        assert status.compute({}, seen, NOW)["phase"] == "Terminating"


def test_expiring_soon_inside_the_warning_window() -> None:
    result = status.compute({}, applied(True, in_warning_window=True), NOW)
    expiring = condition(result, status.EXPIRING)
    assert expiring["status"] == "True"
    assert expiring["reason"] == "ExpiryNear"
    assert "2024-05-01T15:30:15Z" in expiring["message"]


def test_not_expiring_soon_outside_the_warning_window() -> None:
    result = status.compute({}, applied(True, in_warning_window=False), NOW)
    expiring = condition(result, status.EXPIRING)
    assert expiring["status"] == "False"
    assert expiring["reason"] == "ExpiryNotNear"


def test_entering_the_warning_window_moves_its_transition_time() -> None:
    before = status.compute({}, applied(True), EARLIER)
    result = status.compute(before, applied(True, in_warning_window=True), NOW)
    assert condition(before, status.EXPIRING)["lastTransitionTime"] == "2024-05-01T11:00:00Z"
    assert condition(result, status.EXPIRING)["lastTransitionTime"] == "2024-05-01T12:00:00Z"


def test_timestamps_are_rfc3339_utc_with_z_and_no_fraction() -> None:
    elsewhere = datetime.timezone(datetime.timedelta(hours=-5))
    seen = applied(True, created_at=CREATED.astimezone(elsewhere), expires_at=EXPIRES.astimezone(elsewhere))
    result = status.compute({}, seen, NOW)
    assert result["createdAt"] == "2024-05-01T11:30:15Z"
    assert result["expiresAt"] == "2024-05-01T15:30:15Z"


def test_observed_generation_on_status_and_conditions() -> None:
    result = status.compute({}, applied(True, generation=9), NOW)
    assert result["observedGeneration"] == 9
    assert {c["observedGeneration"] for c in result["conditions"]} == {9}


def test_url_and_credentials_are_reported_when_known() -> None:
    result = status.compute({}, applied(True, url="http://r.example.com/", credentials_secret="ws-credentials"), NOW)
    assert result["url"] == "http://r.example.com/"
    assert result["credentialsSecret"] == "ws-credentials"
    bare = status.compute({}, applied(True), NOW)
    assert "url" not in bare
    assert "credentialsSecret" not in bare


def test_sessions_are_reported_as_observed() -> None:
    seen = applied(True, False)
    assert status.compute({}, seen, NOW)["sessions"] == seen.sessions


def test_other_conditions_in_the_old_status_are_kept() -> None:
    old = {"conditions": conditions.set_condition(None, "Custom", "True", "Mine", now=EARLIER)}
    result = status.compute(old, applied(True), NOW)
    assert condition(result, "Custom") == old["conditions"][0]


def test_an_unchanged_workshop_computes_an_unchanged_status() -> None:
    """A reconcile that finds nothing new must write nothing new (no status churn)."""
    first = status.compute({}, applied(True, False, problems=["p"]), NOW)
    again = status.compute(first, applied(True, False, problems=["p"]), NOW + datetime.timedelta(minutes=5))
    assert again == first


def test_terminating_keeps_the_expiry_and_leaves_the_warning_as_it_was() -> None:
    warned = status.compute({}, applied(True, in_warning_window=True), NOW)
    result = status.compute(warned, applied(True, terminating=True), NOW)
    assert result["expiresAt"] == warned["expiresAt"], "a foreground deletion still shows when it expired"
    assert condition(result, status.EXPIRING) == condition(warned, status.EXPIRING)
