"""How the manager wires events to work, without a cluster: one informer per kind and one per
child resource, children selected on the server by Roadie's label, a child's event queues the
parent its pointer names (and nothing for a pointer to a kind not running), the echo of a status
write queues nothing, and `/healthz` reports a dead watch or dead workers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from roadie.core import api, cache, labels, manager, models, probes, schedule, sources
from roadie.core.controller import Controller


class Spec(models.ApiModel):
    size: int = 1


THING = api.Api(group="example.dev", version="v1", kind="Thing", plural="things", spec=Spec)


async def _noop(body: dict[str, Any]) -> float | None:
    return None


@pytest.fixture
def wired() -> Iterator[tuple[manager.Manager, Controller]]:
    schedule.reset()
    controller = Controller(api=THING, reconcile=_noop, children=(sources.DEPLOYMENTS, sources.PODS))
    mgr = manager.Manager(http=object(), controllers=[controller])
    yield mgr, controller
    cache.clear()
    schedule.reset()


def test_children_are_selected_on_the_server(wired: tuple[manager.Manager, Controller]) -> None:
    mgr, _ = wired
    by_source = {informer.source: informer for informer in mgr.informers}
    assert by_source[sources.of_api(THING)].selector is None
    assert by_source[sources.DEPLOYMENTS].selector == "app.kubernetes.io/managed-by=roadie"
    assert by_source[sources.PODS].selector == "app.kubernetes.io/managed-by=roadie"
    assert cache.watched(sources.DEPLOYMENTS) and not cache.watched(sources.SECRETS)


def test_a_childs_event_queues_its_parent_only(wired: tuple[manager.Manager, Controller]) -> None:
    mgr, controller = wired
    child = {"metadata": {"name": "c", "annotations": {labels.PARENT: labels.parent_ref("Thing", "ns", "t1")}}}
    other = {"metadata": {"name": "d", "annotations": {labels.PARENT: labels.parent_ref("Workshop", "ns", "w")}}}
    mgr._on_child(sources.DEPLOYMENTS, "MODIFIED", child, None)
    mgr._on_child(sources.DEPLOYMENTS, "MODIFIED", other, None)
    mgr._on_child(sources.DEPLOYMENTS, "MODIFIED", {"metadata": {"name": "e"}}, None)
    assert len(controller.queue) == 1


def test_the_echo_of_a_status_write_queues_nothing(wired: tuple[manager.Manager, Controller]) -> None:
    _, controller = wired
    old: dict[str, Any] = {"metadata": {"name": "t1", "namespace": "ns", "generation": 1}, "spec": {"size": 1}}
    controller.on_event("ADDED", old, None)
    assert len(controller.queue) == 1
    echo = {**old, "status": {"phase": "Ready"}}
    changed = {**old, "spec": {"size": 2}, "metadata": {**old["metadata"], "generation": 2}}
    controller2 = Controller(api=THING, reconcile=_noop)
    controller2.on_event("MODIFIED", echo, old)
    assert len(controller2.queue) == 0
    controller2.on_event("MODIFIED", changed, old)
    assert len(controller2.queue) == 1


def test_healthz_names_what_died(wired: tuple[manager.Manager, Controller]) -> None:
    mgr, _ = wired
    assert "Thing workers stopped" in mgr.problems(), "workers never started"
    probes._checks.clear()
    probes.add_check(mgr.problems)
    assert probes.problems()
    probes._checks.clear()
    assert probes.problems() == []


def test_a_status_no_reconcile_reads_wakes_no_parent(wired: tuple[manager.Manager, Controller]) -> None:
    mgr, controller = wired
    meta = {"name": "q", "annotations": {labels.PARENT: labels.parent_ref("Thing", "ns", "t1")}}
    quota = {"metadata": meta, "spec": {"hard": {"pods": "10"}}, "status": {"used": {"pods": "1"}}}
    recounted = {**quota, "status": {"used": {"pods": "2"}}}
    edited = {**quota, "spec": {"hard": {"pods": "99"}}}
    mgr._on_child(sources.RESOURCE_QUOTAS, "MODIFIED", recounted, quota)
    assert len(controller.queue) == 0, "a quota's usage is no reconcile's business"
    mgr._on_child(sources.DEPLOYMENTS, "MODIFIED", recounted, quota)
    assert len(controller.queue) == 1, "a Deployment's status is what its parent waits for"
    for event, new in (("MODIFIED", edited), ("DELETED", recounted), ("ADDED", recounted)):
        controller.queue = type(controller.queue)(THING.kind, controller._handle)
        mgr._on_child(sources.RESOURCE_QUOTAS, event, new, quota if event != "ADDED" else None)
        assert len(controller.queue) == 1, f"{event}: drift, loss or a new child wakes the parent"


def test_a_childs_event_does_not_wake_a_parent_past_helping(wired: tuple[manager.Manager, Controller]) -> None:
    mgr, controller = wired
    parent = labels.parent_ref("Thing", "ns", "t1")
    child = {"metadata": {"name": "c", "annotations": {labels.PARENT: parent}}}
    deleting = {"name": "t1", "namespace": "ns", "deletionTimestamp": "2024-05-01T12:00:00Z"}
    informer = next(i for i in mgr.informers if i.source == sources.of_api(THING))
    for meta, woken in (
        ({**deleting, "finalizers": ["foregroundDeletion"]}, False),  # the garbage collector's work only
        (deleting, False),
        ({**deleting, "finalizers": ["foregroundDeletion", "example.dev/cleanup"]}, True),  # its own clean-up
        ({"name": "t1", "namespace": "ns"}, True),
    ):
        informer._store.clear()
        informer.observe({"metadata": {**meta, "resourceVersion": "1"}})
        controller.queue = type(controller.queue)(THING.kind, controller._handle)  # the ADDED it queued
        mgr._on_child(sources.DEPLOYMENTS, "MODIFIED", child, None)
        assert (len(controller.queue) == 1) is woken, meta


def test_a_kind_may_cache_its_own_objects_as_dicts() -> None:
    controller = Controller(api=THING, reconcile=_noop, compact=False)
    mgr = manager.Manager(http=object(), controllers=[controller])
    try:
        informer = next(i for i in mgr.informers if i.source == sources.of_api(THING))
        assert informer.source.compact is False
        informer.observe(
            {
                "apiVersion": "example.dev/v1",
                "kind": "Thing",
                "metadata": {"name": "t", "namespace": "ns", "resourceVersion": "1"},
            }
        )
        assert controller.get("ns", "t") is controller.get("ns", "t"), "the same dict, not a copy decoded per read"
    finally:
        cache.clear()
