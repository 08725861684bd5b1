"""Retention over Snapshot objects: each rule keeps what it should, and the next wake-up is when a
kept snapshot ages past keepMinAge."""

from __future__ import annotations

import datetime
from typing import Any

from roadie.workspace import models, retention

NOW = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)


def snap(name: str, hours_ago: float, *, tags: tuple[str, ...] = (), phase: str = "Ready") -> dict[str, Any]:
    made = NOW - datetime.timedelta(hours=hours_ago)
    return {
        "metadata": {"name": name},
        "spec": {"workspace": "w", "tags": list(tags)},
        "status": {"phase": phase, "snapshotID": f"id-{name}", "createdAt": made.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }


def names(found: list[dict[str, Any]]) -> list[str]:
    return [s["metadata"]["name"] for s in found]


def policy(**fields: Any) -> models.RetentionPolicy:
    return models.RetentionPolicy.model_validate(fields)


def test_each_rule_keeps_what_it_should() -> None:
    snaps = [snap("a", 50), snap("b", 49, tags=("release",)), snap("c", 48.5), snap("d", 30), snap("e", 1)]
    doomed, wake = retention.decide(snaps, policy(keepMinSnapshots=1, keepMinAge="24h"), NOW)
    assert names(doomed) == ["a", "b", "c", "d"]
    assert wake == NOW + datetime.timedelta(hours=23)
    doomed, _ = retention.decide(snaps, policy(keepMinSnapshots=1, keepMinAge="24h", keepTags=["release"]), NOW)
    assert names(doomed) == ["a", "c", "d"]
    doomed, _ = retention.decide(snaps, policy(keepMinSnapshots=3, keepMinAge="24h"), NOW)
    assert names(doomed) == ["a", "b"]
    doomed, _ = retention.decide(snaps, policy(keepMinSnapshots=0, keepMinAge="24h"), NOW, current="id-a")
    assert "a" not in names(doomed) and "e" not in names(doomed)
    doomed, _ = retention.decide(snaps, policy(keepMinSnapshots=0, keepMinAge="1h", keepDaily=2), NOW)
    assert "d" not in names(doomed)  # the newest of yesterday
    pending = [snap("x", 90, phase="InProgress"), *snaps]
    assert "x" not in names(retention.decide(pending, policy(keepMinSnapshots=0, keepMinAge="1h"), NOW)[0])


def test_two_snapshots_of_one_second_are_told_apart_by_their_ids() -> None:
    second = NOW - datetime.timedelta(hours=2)
    stamp = second.strftime("%Y-%m-%dT%H:%M:%SZ")
    millis = int(second.timestamp() * 1000)
    first = {"metadata": {"name": "z-earlier"}, "spec": {}, "status": {"phase": "Ready", "createdAt": stamp,
             "snapshotID": f"{millis + 100:013d}-aaaaaaaa"}}  # fmt: skip
    later = {"metadata": {"name": "a-later"}, "spec": {}, "status": {"phase": "Ready", "createdAt": stamp,
             "snapshotID": f"{millis + 900:013d}-bbbbbbbb"}}  # fmt: skip
    for order in ([first, later], [later, first]):
        doomed, _ = retention.decide(order, policy(keepMinSnapshots=1, keepMinAge="1h"), NOW)
        assert names(doomed) == ["z-earlier"], "the newest (by its ID's milliseconds) is the one kept"
