"""The warm pool's manifests and claim without a cluster: a pool VM is rendered from the template
but owned by nobody and pointed at its pool, and the claim patch hands it over entirely (owner,
labels, parent pointer on the VM and on its instance's template) and only if the VM did not change
since it was read."""

from __future__ import annotations

import asyncio
from typing import Any

from roadie.core import labels
from roadie.cyberdesk import default_template, pool, template


def body(name: str = "desk-1", namespace: str = "ns") -> dict[str, Any]:
    return {
        "apiVersion": "cyberdesk.io/v1alpha1",
        "kind": "Cyberdesk",
        "metadata": {"name": name, "namespace": namespace, "uid": "uid-1"},
        "spec": {"timeoutMs": 1000},
    }


def warm() -> dict[str, Any]:
    return pool.pool_vm(
        default_template.TEMPLATE,
        namespace="ns",
        template_name=default_template.NAME,
        managed_by="roadie",
        name="cyberdesk-pool-ab12",
    )


def test_a_pool_vm_belongs_to_its_pool_and_to_no_desktop() -> None:
    vm = warm()
    meta = vm["metadata"]
    assert meta["name"] == "cyberdesk-pool-ab12" and meta["namespace"] == "ns"
    assert "ownerReferences" not in meta
    assert meta["annotations"][labels.PARENT] == f"CyberdeskPool/ns/{default_template.NAME}"
    assert meta["labels"][pool.POOL_LABEL] == default_template.NAME
    assert meta["labels"][labels.MANAGED_BY] == "roadie", "the VM informer selects on it"
    assert template.INSTANCE_LABEL not in meta["labels"]
    vmi_meta = vm["spec"]["template"]["metadata"]
    assert vmi_meta["labels"][labels.MANAGED_BY] == "roadie"
    assert template.INSTANCE_LABEL not in vmi_meta["labels"]
    assert vmi_meta["annotations"][labels.PARENT] == meta["annotations"][labels.PARENT]
    assert vm["spec"]["runStrategy"] == "Always"


def test_the_claim_adopts_the_vm_and_is_guarded_by_its_version() -> None:
    vm = {**warm(), "metadata": {**warm()["metadata"], "resourceVersion": "42", "uid": "vm-uid"}}
    patch = pool.claim_patch(vm, body(), "roadie", "2026-03-01T09:00:00Z")
    meta = patch["metadata"]
    assert meta["resourceVersion"] == "42"
    (owner,) = meta["ownerReferences"]
    assert owner["uid"] == "uid-1" and owner["controller"] is True and owner["kind"] == "Cyberdesk"
    assert meta["labels"][template.INSTANCE_LABEL] == "desk-1" and meta["labels"][pool.POOL_LABEL] is None
    assert meta["labels"]["app"] == "cyberdesk" and meta["labels"][labels.INSTANCE] == "desk-1"
    assert meta["annotations"] == {labels.PARENT: "Cyberdesk/ns/desk-1", pool.CLAIMED_AT: "2026-03-01T09:00:00Z"}
    vmi_template = patch["spec"]["template"]["metadata"]
    assert vmi_template["labels"] == meta["labels"]
    assert vmi_template["annotations"] == {labels.PARENT: "Cyberdesk/ns/desk-1"}


def test_the_running_instance_is_relabelled_as_its_vm() -> None:
    claimed = {
        "metadata": {
            "name": "cyberdesk-pool-ab12",
            "labels": {"app": "cyberdesk", template.INSTANCE_LABEL: "desk-1"},
            "annotations": {labels.PARENT: "Cyberdesk/ns/desk-1", pool.CLAIMED_AT: "x"},
        }
    }
    patch = pool.vmi_patch(claimed)
    assert patch["metadata"]["labels"][template.INSTANCE_LABEL] == "desk-1"
    assert patch["metadata"]["labels"][pool.POOL_LABEL] is None
    assert patch["metadata"]["annotations"] == {labels.PARENT: "Cyberdesk/ns/desk-1"}


def test_a_pool_serves_only_its_namespaces_and_templates() -> None:
    warm_pool = pool.Pool(size=2, namespaces=("a",), templates=("t",))
    assert warm_pool.serves("a", "t")
    assert not warm_pool.serves("b", "t") and not warm_pool.serves("a", "other")
    assert not pool.Pool(size=0, namespaces=("a",), templates=("t",)).serves("a", "t")


def test_a_pool_refills_when_it_loses_a_vm() -> None:
    asked: list[tuple[str, str]] = []
    warm_pool = pool.Pool(size=1, namespaces=("ns",), templates=("t",))
    warm_pool.refill = lambda namespace, template_name: asked.append((namespace, template_name))  # type: ignore[method-assign]
    member = {"metadata": {"name": "v", "annotations": {labels.PARENT: "CyberdeskPool/ns/t"}}}
    claimed = {"metadata": {"name": "v", "annotations": {labels.PARENT: "Cyberdesk/ns/desk"}}}
    warm_pool.on_vm_event("MODIFIED", member, member)
    assert asked == []
    warm_pool.on_vm_event("MODIFIED", claimed, member)
    warm_pool.on_vm_event("DELETED", member, member)
    assert asked == [("ns", "t"), ("ns", "t")]
    warm_pool.on_vm_event("DELETED", claimed, claimed)
    assert len(asked) == 2, "a desktop's VM is not the pool's business"


# -- shrinking -----------------------------------------------------------------------------------
def member(
    name: str,
    *,
    namespace: str = "ns",
    template_name: str = "t",
    created: str = "2026-03-01T09:00:00Z",
    managed_by: str = "roadie",
    version: str = "7",
) -> dict[str, Any]:
    vm = pool.pool_vm(
        default_template.TEMPLATE, namespace=namespace, template_name=template_name, managed_by=managed_by, name=name
    )
    vm["metadata"].update(uid=f"uid-{name}", resourceVersion=version, creationTimestamp=created)
    return vm


def names(vms: list[dict[str, Any]]) -> list[str]:
    return [vm["metadata"]["name"] for vm in vms]


def test_only_unclaimed_pool_vms_roadie_made_are_pool_members() -> None:
    assert pool.pool_of(member("a"), "roadie") == ("ns", "t")
    assert pool.pool_of(member("a", managed_by="other"), "roadie") is None, "another operator's pool"
    claimed = member("a")
    claimed["metadata"]["ownerReferences"] = [{"kind": "Cyberdesk", "name": "desk", "uid": "u"}]
    assert pool.pool_of(claimed, "roadie") is None
    adopted = member("a")
    adopted["metadata"]["annotations"][labels.PARENT] = "Cyberdesk/ns/desk"
    assert pool.pool_of(adopted, "roadie") is None
    relabelled = member("a")
    del relabelled["metadata"]["labels"][pool.POOL_LABEL]
    assert pool.pool_of(relabelled, "roadie") is None
    foreign = member("a")
    foreign["metadata"]["labels"][labels.MANAGED_BY] = "someone-else"
    assert pool.pool_of(foreign, "roadie") is None, "a VM Roadie did not make is never a pool VM"
    leaving = member("a")
    leaving["metadata"]["deletionTimestamp"] = "2026-03-01T10:00:00Z"
    assert pool.pool_of(leaving, "roadie") is None
    elsewhere = member("a")
    elsewhere["metadata"]["namespace"] = "other-ns"
    assert pool.pool_of(elsewhere, "roadie") is None, "a pointer to another namespace's pool"
    mine = {"metadata": {"name": "x", "namespace": "ns", "annotations": {labels.PARENT: "CyberdeskPool/ns/t"}}}
    assert pool.pool_of(mine, "roadie") is None, "a pointer alone (a hand-made VM) is not enough"


def test_the_surplus_is_the_least_advanced_and_never_a_kept_running_vm(monkeypatch: Any) -> None:
    phases = {"running-old": "Running", "running-new": "Running", "scheduled": "Scheduled", "pending": "Pending"}
    monkeypatch.setattr(
        pool.cd_children,
        "vmi_of",
        lambda vm: {"status": {"phase": phases[vm["metadata"]["name"]]}} if vm["metadata"]["name"] in phases else None,
    )
    vms = [
        member("pending", created="2026-03-01T09:00:00Z"),
        member("running-new", created="2026-03-01T09:05:00Z"),
        member("no-instance", created="2026-03-01T08:00:00Z"),
        member("running-old", created="2026-03-01T09:01:00Z"),
        member("scheduled", created="2026-03-01T09:00:00Z"),
    ]
    assert names(pool.surplus(vms, 2)) == ["no-instance", "pending", "scheduled"]
    assert names(pool.surplus(vms, 4)) == ["no-instance"]
    assert pool.surplus(vms, 5) == [] and pool.surplus(vms, 9) == []
    assert names(pool.surplus(vms, 0)) == ["no-instance", "pending", "scheduled", "running-new", "running-old"]
    assert len(pool.surplus(vms, -1)) == 5


def test_a_shrink_plan_trims_configured_pools_and_empties_the_others() -> None:
    warm_pool = pool.Pool(size=1, namespaces=("ns",), templates=("t",))
    desktop = member("desk-vm")
    desktop["metadata"]["ownerReferences"] = [{"kind": "Cyberdesk", "name": "d", "uid": "u"}]
    vms = [
        member("keep", created="2026-03-01T09:00:00Z"),
        member("extra", created="2026-03-01T09:10:00Z"),
        member("old-template", template_name="gone"),
        member("old-namespace", namespace="was-pooled"),
        member("theirs", namespace="was-pooled", managed_by="other"),
        desktop,
    ]
    plan = pool.shrink_plan(vms, warm_pool.wanted, "roadie", rank=lambda vm: vm["metadata"]["creationTimestamp"])
    assert {key: names(doomed) for key, doomed in plan.items()} == {
        ("ns", "t"): ["extra"],
        ("ns", "gone"): ["old-template"],
        ("was-pooled", "t"): ["old-namespace"],
    }
    empty = pool.Pool(size=0, namespaces=("ns",), templates=("t",))
    plan = pool.shrink_plan(vms, empty.wanted, "roadie", rank=lambda vm: vm["metadata"]["creationTimestamp"])
    assert sorted(names(plan[("ns", "t")])) == ["extra", "keep"], "size 0 empties every pool"
    grown = pool.Pool(size=3, namespaces=("ns", "was-pooled"), templates=("t", "gone"))
    assert pool.shrink_plan(vms, grown.wanted, "roadie") == {}


def test_a_deletion_is_guarded_by_the_version_read() -> None:
    options = pool.delete_options(member("a", version="42"))
    assert options["kind"] == "DeleteOptions"
    assert options["preconditions"] == {"uid": "uid-a", "resourceVersion": "42"}


class FakeResponse:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.text = ""


class FakeApi:
    """The API server's side of a DELETE with preconditions, over a dict of VMs by name."""

    def __init__(self, vms: dict[str, dict[str, Any]]) -> None:
        self.vms = vms
        self.deleted: list[str] = []
        self.bodies: list[dict[str, Any]] = []

    async def request(self, method: str, path: str, json: dict[str, Any]) -> FakeResponse:
        assert method == "DELETE"
        name = path.rsplit("/", 1)[1]
        self.bodies.append(json)
        vm = self.vms.get(name)
        if vm is None:
            return FakeResponse(404)
        if json["preconditions"] != {
            "uid": vm["metadata"]["uid"],
            "resourceVersion": vm["metadata"]["resourceVersion"],
        }:
            return FakeResponse(409)
        self.deleted.append(name)
        del self.vms[name]
        return FakeResponse(200)


def fake_cluster(monkeypatch: Any, cached: list[dict[str, Any]], live: dict[str, dict[str, Any]]) -> FakeApi:
    api = FakeApi(live)
    by_name = {vm["metadata"]["name"]: vm for vm in cached}
    monkeypatch.setattr(pool.cache, "by_index", lambda source, index, value: list(by_name.values()))
    monkeypatch.setattr(pool.cache, "get", lambda source, namespace, name: by_name.get(name))
    monkeypatch.setattr(pool.cache, "all_of", lambda source: list(by_name.values()))
    monkeypatch.setattr(pool.client, "http", lambda: api)

    async def get_or_none(resource: Any, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return live.get(name)

    monkeypatch.setattr(pool.children, "get_or_none", get_or_none)
    monkeypatch.setattr(pool.cd_children, "vmi_of", lambda vm: None)
    return api


async def test_a_shrink_deletes_the_surplus_and_spares_a_vm_claimed_meanwhile(monkeypatch: Any) -> None:
    cached = [member(f"vm-{i}", created=f"2026-03-01T09:0{i}:00Z") for i in range(4)]
    live = {vm["metadata"]["name"]: vm for vm in cached}
    # vm-3 was claimed after the cache read it (its version moved, it has an owner now); vm-2's
    # version moved only because KubeVirt wrote its status
    live["vm-3"] = {**cached[3], "metadata": {**cached[3]["metadata"], "resourceVersion": "8"}}
    live["vm-3"]["metadata"]["ownerReferences"] = [{"kind": "Cyberdesk", "name": "desk", "uid": "u"}]
    live["vm-2"] = {**cached[2], "metadata": {**cached[2]["metadata"], "resourceVersion": "9"}}
    api = fake_cluster(monkeypatch, cached, live)
    warm_pool = pool.Pool(size=1, namespaces=("ns",), templates=("t",))
    await warm_pool._refill(("ns", "t"))
    assert api.deleted == ["vm-2", "vm-1"], "the newest first; the claimed vm-3 kept, vm-0 kept as the pool"
    assert sorted(live) == ["vm-0", "vm-3"]
    assert all(body["preconditions"].get("resourceVersion") for body in api.bodies)
    assert names(warm_pool.members("ns", "t")) == ["vm-0", "vm-3"], "deleted VMs no longer count as members"


async def test_a_pool_no_longer_configured_is_emptied_at_start(monkeypatch: Any) -> None:
    cached = [member("a", namespace="old"), member("b", namespace="old"), member("c", namespace="old", managed_by="x")]
    api = fake_cluster(monkeypatch, cached, {vm["metadata"]["name"]: vm for vm in cached})
    warm_pool = pool.Pool(size=0, namespaces=("ns",), templates=("t",))
    warm_pool.refill_all()
    await asyncio.gather(*warm_pool._tasks.values())
    assert sorted(api.deleted) == ["a", "b"], "only this operator's pool VMs"
    await warm_pool.close()
