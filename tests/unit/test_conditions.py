"""The one condition setter every kind uses, and its readers `get` and `is_true`.

Tools such as `kubectl wait --for=condition=Ready` and dashboards read these conditions, and a
`lastTransitionTime` that moved on every reconcile would make each status write a change (and
each condition look new). These tests pin the Kubernetes semantics: the time moves only when the
status does, the rest of the condition is always refreshed, `observedGeneration` is recorded, and
the other conditions, and the caller's list, are left as they were.
"""

from __future__ import annotations

import copy
import datetime
from typing import Any

from roadie.core import conditions, models

T1 = datetime.datetime(2024, 5, 1, 10, 0, 0, tzinfo=datetime.UTC)
T2 = datetime.datetime(2024, 5, 1, 11, 30, 0, tzinfo=datetime.UTC)
T1_TEXT = "2024-05-01T10:00:00Z"
T2_TEXT = "2024-05-01T11:30:00Z"


def ready(status: str) -> list[dict[str, Any]]:
    """A Ready condition set at T1."""
    return conditions.set_condition(None, "Ready", status, "Initial", "first message", now=T1)


def test_adds_a_condition_to_no_conditions() -> None:
    result = conditions.set_condition(None, "Ready", conditions.TRUE, "AllGood", "it works", now=T1)
    assert result == [
        {"type": "Ready", "status": "True", "reason": "AllGood", "message": "it works", "lastTransitionTime": T1_TEXT}
    ]


def test_adds_a_condition_next_to_others() -> None:
    existing = ready("True")
    result = conditions.set_condition(existing, "Provisioned", "False", "Waiting", now=T2)
    assert {c["type"] for c in result} == {"Ready", "Provisioned"}
    added = conditions.get(result, "Provisioned")
    assert added is not None
    assert added["message"] == ""
    assert added["lastTransitionTime"] == T2_TEXT


def test_timestamp_is_utc_with_z_whatever_the_zone_of_now() -> None:
    elsewhere = T1.astimezone(datetime.timezone(datetime.timedelta(hours=2)))
    result = conditions.set_condition(None, "Ready", "True", "AllGood", now=elsewhere)
    assert result[0]["lastTransitionTime"] == T1_TEXT


def test_without_now_uses_the_current_time() -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    result = conditions.set_condition(None, "Ready", "True", "AllGood")
    after = datetime.datetime.now(datetime.UTC)
    moment = datetime.datetime.strptime(result[0]["lastTransitionTime"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC
    )
    assert before <= moment <= after


def test_replaces_the_condition_of_the_same_type() -> None:
    result = conditions.set_condition(ready("False"), "Ready", "True", "AllGood", "now it works", now=T2)
    assert len(result) == 1
    assert result[0]["status"] == "True"
    assert result[0]["reason"] == "AllGood"
    assert result[0]["message"] == "now it works"


def test_keeps_the_transition_time_when_the_status_is_unchanged() -> None:
    result = conditions.set_condition(ready("False"), "Ready", "False", "StillWaiting", "second message", now=T2)
    assert result[0]["lastTransitionTime"] == T1_TEXT
    # everything but the time is refreshed
    assert result[0]["reason"] == "StillWaiting"
    assert result[0]["message"] == "second message"


def test_moves_the_transition_time_when_the_status_changes() -> None:
    result = conditions.set_condition(ready("False"), "Ready", "True", "AllGood", now=T2)
    assert result[0]["lastTransitionTime"] == T2_TEXT


def test_moves_the_transition_time_on_every_status_change() -> None:
    t3 = T2 + datetime.timedelta(hours=1)
    first = ready("True")
    second = conditions.set_condition(first, "Ready", "Unknown", "Lost", now=T2)
    third = conditions.set_condition(second, "Ready", "True", "Back", now=t3)
    assert [c[0]["lastTransitionTime"] for c in (first, second, third)] == [
        T1_TEXT,
        T2_TEXT,
        models.timestamp(t3),
    ]


def test_a_previous_condition_without_a_time_gets_one() -> None:
    previous: list[dict[str, Any]] = [{"type": "Ready", "status": "True", "reason": "Hand", "message": ""}]
    result = conditions.set_condition(previous, "Ready", "True", "AllGood", now=T2)
    assert result[0]["lastTransitionTime"] == T2_TEXT


def test_sets_observed_generation_when_given() -> None:
    result = conditions.set_condition(None, "Ready", "True", "AllGood", generation=7, now=T1)
    assert result[0]["observedGeneration"] == 7
    newer = conditions.set_condition(result, "Ready", "True", "AllGood", generation=8, now=T2)
    assert newer[0]["observedGeneration"] == 8
    assert newer[0]["lastTransitionTime"] == T1_TEXT


def test_leaves_out_observed_generation_when_not_given() -> None:
    result = conditions.set_condition(None, "Ready", "True", "AllGood", now=T1)
    assert "observedGeneration" not in result[0]


def test_leaves_other_conditions_and_the_input_alone() -> None:
    original: list[dict[str, Any]] = [
        {"type": "Alpha", "status": "True", "reason": "A", "message": "a", "lastTransitionTime": T1_TEXT},
        {"type": "Ready", "status": "False", "reason": "R", "message": "r", "lastTransitionTime": T1_TEXT},
        {
            "type": "Zulu",
            "status": "Unknown",
            "reason": "Z",
            "message": "z",
            "lastTransitionTime": T1_TEXT,
            "observedGeneration": 3,
        },
    ]
    snapshot = copy.deepcopy(original)
    result = conditions.set_condition(original, "Ready", "True", "AllGood", now=T2, generation=4)
    assert original == snapshot
    assert result is not original
    assert conditions.get(result, "Alpha") == snapshot[0]
    assert conditions.get(result, "Zulu") == snapshot[2]
    assert len(result) == 3


def test_result_is_ordered_by_type_so_writes_are_stable() -> None:
    result: list[dict[str, Any]] = []
    for type_ in ("Zulu", "Alpha", "Ready"):
        result = conditions.set_condition(result, type_, "True", "Set", now=T1)
    assert [c["type"] for c in result] == ["Alpha", "Ready", "Zulu"]


def test_get_finds_a_condition_by_type() -> None:
    found = ready("True")
    assert conditions.get(found, "Ready") == found[0]
    assert conditions.get(found, "Missing") is None
    assert conditions.get(None, "Ready") is None
    assert conditions.get([], "Ready") is None


def test_is_true_only_for_status_true() -> None:
    assert conditions.is_true(ready(conditions.TRUE), "Ready") is True
    assert conditions.is_true(ready(conditions.FALSE), "Ready") is False
    assert conditions.is_true(ready(conditions.UNKNOWN), "Ready") is False
    assert conditions.is_true(ready("True"), "Other") is False
    assert conditions.is_true(None, "Ready") is False
    assert conditions.is_true([{"type": "Ready", "status": "true"}], "Ready") is False
