"""The warm pool's manifests and claim without a cluster: a pool VM is rendered from the template
but owned by nobody and pointed at its pool, and the claim patch hands it over entirely (owner,
labels, parent pointer on the VM and on its instance's template) and only if the VM did not change
since it was read."""

from __future__ import annotations

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
