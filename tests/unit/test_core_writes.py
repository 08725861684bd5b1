"""Pure parts of the core's write path and pacing: when a child already is as built (so no
request is sent), which parent changes are news (the echo of a status write is not), resyncs
spread evenly over their period, and the client-side rate limit."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from roadie.core import children, controller, ratelimit


def test_a_child_with_every_field_the_manifest_sets_is_satisfied() -> None:
    desired = {"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"ports": [{"port": 80}], "replicas": 1}}
    live = {
        "metadata": {"name": "a", "labels": {"x": "1", "added": "by someone"}, "uid": "u"},
        "spec": {"ports": [{"port": 80, "protocol": "TCP"}], "replicas": 1, "defaulted": True},
        "status": {"whatever": 1},
    }
    assert children.satisfied(desired, live)


def test_a_changed_value_a_missing_key_or_another_list_length_is_not() -> None:
    desired = {"spec": {"ports": [{"port": 80}], "replicas": 1}}
    assert not children.satisfied(desired, {"spec": {"ports": [{"port": 81}], "replicas": 1}})
    assert not children.satisfied(desired, {"spec": {"ports": [{"port": 80}]}})
    assert not children.satisfied(desired, {"spec": {"ports": [{"port": 80}, {"port": 81}], "replicas": 1}})
    assert not children.satisfied({"a": True}, {"a": 1}), "a bool is not a number"
    assert children.satisfied({"cpu": 2}, {"cpu": "2"}), "a quantity written as a number reads back as text"


def test_only_changes_beyond_status_are_news() -> None:
    old = {"metadata": {"generation": 1, "labels": {"a": "b"}, "resourceVersion": "1"}, "spec": {"x": 1}}
    echo = {**old, "metadata": {**old["metadata"], "resourceVersion": "2"}, "status": {"phase": "Ready"}}
    assert not controller.significant(old, echo)
    assert controller.significant(old, {**old, "spec": {"x": 2}})
    assert controller.significant(old, {**old, "metadata": {**old["metadata"], "deletionTimestamp": "now"}})
    assert controller.significant(old, {**old, "metadata": {**old["metadata"], "finalizers": ["f"]}})


def test_resyncs_spread_evenly_over_the_period_whenever_objects_were_made() -> None:
    period, now = 600.0, 1_000_000.0
    moments = [now + controller.resync_delay({"metadata": {"uid": f"uid-{i}"}}, period, now) for i in range(6000)]
    assert all(now + period / 2 <= m <= now + 1.5 * period for m in moments)
    buckets = collections.Counter(int((m % period) // 60) for m in moments)  # ten one-minute slots
    assert len(buckets) == 10
    assert max(buckets.values()) < 1.2 * min(buckets.values()), buckets
    again = controller.resync_delay({"metadata": {"uid": "uid-1"}}, period, now + 7)
    assert abs((now + 7 + again) - moments[1]) < 1e-6, "an object keeps its slot"


async def test_the_token_bucket_spreads_a_burst_at_the_rate() -> None:
    clock = [0.0]
    bucket = ratelimit.TokenBucket(qps=100, burst=10, clock=lambda: clock[0])
    for _ in range(10):
        assert await bucket.acquire() == 0.0, "the burst passes at once"
    assert bucket.wait_time() > 0.0
    clock[0] += 0.05  # five tokens' worth
    for _ in range(5):
        assert await bucket.acquire() == 0.0
    assert abs(bucket.wait_time() - 0.01) < 1e-9


async def test_an_unlimited_bucket_never_waits() -> None:
    bucket = ratelimit.TokenBucket(qps=0, burst=1)
    waits = await asyncio.gather(*(bucket.acquire() for _ in range(1000)))
    assert set(waits) == {0.0}


def test_verbs_are_named_as_the_api_server_counts_them() -> None:
    assert ratelimit.verb_of("GET", {"watch": "true"}, "/api/v1/pods") == "WATCH"
    assert ratelimit.verb_of("GET", {}, "/api/v1/namespaces/ns/pods") == "LIST"
    assert ratelimit.verb_of("GET", {}, "/api/v1/namespaces/ns/pods/p") == "GET"
    assert ratelimit.verb_of("GET", {}, "/apis/apps/v1/deployments") == "LIST"
    assert ratelimit.verb_of("GET", {}, "/apis/apps/v1/namespaces/ns/deployments/d") == "GET"
    assert ratelimit.verb_of("PATCH", {}, "/apis/apps/v1/namespaces/ns/deployments/d") == "PATCH"


async def test_an_expiry_deletes_before_it_writes_the_status_and_the_event(monkeypatch: Any) -> None:
    from roadie.core import events, reconciler
    from roadie.core import status as status_writer
    from roadie.workshop import models

    calls: list[str] = []

    async def delete(*_: Any, **__: Any) -> bool:
        calls.append("delete")
        return True

    async def write(*_: Any) -> bool:
        calls.append("status")
        return True

    async def emit(*_: Any) -> None:
        calls.append("event")

    monkeypatch.setattr(reconciler.children, "delete", delete)
    monkeypatch.setattr(reconciler.client, "resource", lambda _: object())
    monkeypatch.setattr(status_writer, "write", write)
    monkeypatch.setattr(events, "emit", emit)
    body = {"metadata": {"name": "w", "namespace": "n"}, "apiVersion": "orchestra.io/v1", "kind": "Workshop"}
    assert await reconciler.expire(models.API, body, {"phase": "Ready"}, {"phase": "Expired"}, None, "the workshop")
    assert calls == ["delete"], "the status and the event follow in the background"
    for _ in range(5):
        await asyncio.sleep(0)
    assert calls == ["delete", "status", "event"]
    calls.clear()
    body["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not await reconciler.expire(
        models.API, body, {"phase": "Expired"}, {"phase": "Expired"}, None, "the workshop"
    )
    assert calls == [], "an object already being deleted with its status written costs nothing"


async def test_a_digest_gathers_events_and_names_them_in_batches(monkeypatch: Any) -> None:
    from roadie.core import events

    posted: list[str] = []

    async def emit(_body: Any, _type: str, reason: str, message: str) -> None:
        posted.append(f"{reason}: {message}")

    monkeypatch.setattr(events, "emit", emit)
    digest = events.Digest(events.NORMAL, "Started", every=0.01, batch=3, one=lambda x: f"{x} started", many=",".join)
    digest.add("a", {}, "one")
    for name in "pqrst":
        digest.add("b", {}, name)
    assert posted == [], "gathered, not posted yet"
    await asyncio.sleep(0.05)
    assert sorted(posted) == ["Started: one started", "Started: p,q,r", "Started: s,t"]


async def test_independent_writes_go_out_together_and_every_one_ends_before_a_failure_is_raised() -> None:
    started: list[str] = []
    finished: list[str] = []
    gate = asyncio.Event()

    async def write(name: str, fail: bool = False) -> str:
        started.append(name)
        if len(started) == 3:
            gate.set()
        await gate.wait()  # none ends before all three have started: they are in flight at once
        await asyncio.sleep(0.01 if name == "slow" else 0)
        finished.append(name)
        if fail:
            raise ValueError(name)
        return name

    assert await asyncio.wait_for(children.together(write("a"), write("b"), write("c")), 1) == ["a", "b", "c"]
    started.clear(), finished.clear(), gate.clear()
    try:
        await asyncio.wait_for(children.together(write("a", fail=True), write("slow"), write("c", fail=True)), 1)
    except ValueError as error:
        assert str(error) == "a", "the first failure in the order given"
    else:
        raise AssertionError("a failed write must raise")
    assert sorted(finished) == ["a", "c", "slow"], "the slow write was waited for, not left in flight"
