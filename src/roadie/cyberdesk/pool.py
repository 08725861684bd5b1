"""The warm pool: VMs started ahead of demand, so a new Cyberdesk runs at once instead of after a
boot.

A pool is kept per (namespace, template) for the templates and namespaces the settings name, with
`pool_size` VMs each. Pool VMs live in the namespace where they will serve, because a VM cannot
move between namespaces and an ownerReference must point within its own namespace: a claimed VM
is then adopted exactly like a VM made for the desktop (ownerReference, so deleting the Cyberdesk
deletes it; labels; parent pointer), with a single merge patch guarded by the VM's
resourceVersion, so two desktops can never claim the same VM. The claim also relabels the
running instance (KubeVirt copies the template's labels only when it creates one) and records
`cyberdesk.io/claimed-at` on the VM, from which the desktop's timeout counts.

Pool VMs carry a parent pointer to `CyberdeskPool/<namespace>/<template>`: no controller serves
that kind, but the VM informer's parent index then lists a pool's VMs without any scan, and a
handler on the same informer refills a pool when one of its VMs is claimed or deleted. A pooled VM
is rendered from the template like any other, with the pool VM's name as `${vm_name}` and
`${cyberdesk_name}` and the default user data: a Cyberdesk with its own user data never claims
one. Refilling runs in the background and never delays a reconcile.

A pool also shrinks: after a restart with a smaller size, or with a namespace or template no longer
pooled, the warm VMs beyond what is wanted would otherwise run forever with nothing owning them.
Every refill, and the pass once the caches have synced, deletes a pool's surplus, least advanced
first, and empties the pools no longer configured. Only VMs this operator made as pool VMs and no
desktop has claimed are candidates, and each deletion carries the VM's resourceVersion as a
precondition, the same version a claim's patch carries: of a claim and a deletion racing for one
VM, exactly one wins, so a desktop never loses the VM it claimed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from roadie.core import cache, children, client, labels, models, naming
from roadie.cyberdesk import children as cd_children
from roadie.cyberdesk import template

log = logging.getLogger(__name__)

POOL_KIND = "CyberdeskPool"
POOL_LABEL = "cyberdesk.io/pool"
CLAIMED_AT = "cyberdesk.io/claimed-at"
COMPONENT = "pool-vm"
#: After a refill fails (no template, the API refusing), it is tried again this much later.
RETRY_SECONDS = 30.0

Key = tuple[str, str]  # (namespace, template)
TemplateReader = Callable[[str], Any]


def pool_ref(namespace: str, template_name: str) -> str:
    return labels.parent_ref(POOL_KIND, namespace, template_name)


def pool_vm(text: str, *, namespace: str, template_name: str, managed_by: str, name: str) -> dict[str, Any]:
    """A warm VM of the pool (namespace, template): the template rendered for a desktop that does
    not exist yet, labelled as the pool's, owned by nobody until a Cyberdesk claims it."""
    values = template.variables(cyberdesk_name=name, namespace=namespace, managed_by=managed_by, user_data=None)
    vm = template.render(text, values)
    owned = {
        **labels.standard("Cyberdesk", name, COMPONENT),
        template.APP_LABEL: template.APP,
        template.MANAGED_BY_LABEL: naming.label_value(managed_by),
        POOL_LABEL: naming.label_value(template_name),
    }
    meta = vm["metadata"]
    vm["metadata"] = {
        "name": name,
        "namespace": namespace,
        "labels": {**_strings(meta.get("labels")), **owned},
        "annotations": {**_strings(meta.get("annotations")), labels.PARENT: pool_ref(namespace, template_name)},
    }
    vm["metadata"]["labels"].pop(template.INSTANCE_LABEL, None)
    vm.pop("status", None)
    spec = vm["spec"]
    if "running" in spec:
        spec.setdefault("runStrategy", "Always" if spec.pop("running") else "Halted")
    vmi_meta = spec["template"]["metadata"]
    vmi_labels = {**_strings(vmi_meta.get("labels")), **owned}
    vmi_labels.pop(template.INSTANCE_LABEL, None)
    vmi_meta["labels"] = vmi_labels
    vmi_meta["annotations"] = {
        **_strings(vmi_meta.get("annotations")),
        labels.PARENT: pool_ref(namespace, template_name),
    }
    return vm


def claim_patch(vm: dict[str, Any], body: dict[str, Any], managed_by: str, now: str) -> dict[str, Any]:
    """The merge patch that hands warm VM `vm` to the Cyberdesk `body`: fails (409) if the VM
    changed since it was read, so one claim wins."""
    name = body["metadata"]["name"]
    new_labels: dict[str, str | None] = {
        **labels.standard("Cyberdesk", name, template.COMPONENT),
        **template.own_labels(name, managed_by),
        POOL_LABEL: None,
    }
    pointer = labels.parent_ref("Cyberdesk", body["metadata"].get("namespace"), name)
    return {
        "metadata": {
            "resourceVersion": vm["metadata"]["resourceVersion"],
            "labels": new_labels,
            "annotations": {labels.PARENT: pointer, CLAIMED_AT: now},
            "ownerReferences": [children.owner_reference(body)],
        },
        "spec": {"template": {"metadata": {"labels": new_labels, "annotations": {labels.PARENT: pointer}}}},
    }


def vmi_patch(claimed: dict[str, Any]) -> dict[str, Any]:
    """The running instance's new labels and parent pointer: those the claim gave its VM."""
    meta = claimed["metadata"]
    new_labels: dict[str, str | None] = {**(meta.get("labels") or {}), POOL_LABEL: None}
    return {"metadata": {"labels": new_labels, "annotations": {labels.PARENT: meta["annotations"][labels.PARENT]}}}


def readiness(vm: dict[str, Any]) -> tuple[int, str]:
    """Sort key: a running VM first, then the further along its instance is, then the oldest."""
    order = {"Running": 0, "Scheduled": 1, "Scheduling": 2, "Pending": 3}
    phase = cd_children.vmi_phase(cd_children.vmi_of(vm)) or ""
    return order.get(phase, 4), str(vm["metadata"].get("creationTimestamp") or "")


def pool_of(vm: dict[str, Any], managed_by: str) -> Key | None:
    """The pool (namespace, template) of an unclaimed warm VM this operator made; None for any
    other VM (a desktop's, a claimed one, one being deleted, one another operator made), which a
    shrink must never touch."""
    meta = vm.get("metadata") or {}
    vm_labels = meta.get("labels") or {}
    parent = labels.parse_parent_ref((meta.get("annotations") or {}).get(labels.PARENT))
    if parent is None or parent[0] != POOL_KIND or meta.get("deletionTimestamp") or meta.get("ownerReferences"):
        return None
    if (
        POOL_LABEL not in vm_labels
        or vm_labels.get(labels.MANAGED_BY) != labels.MANAGER
        or vm_labels.get(labels.COMPONENT) != COMPONENT
        or vm_labels.get(template.MANAGED_BY_LABEL) != naming.label_value(managed_by)
        or (parent[1] or "") != meta.get("namespace")
    ):
        return None
    return parent[1] or "", parent[2]


def surplus(
    members: Iterable[dict[str, Any]], size: int, rank: Callable[[dict[str, Any]], Any] = readiness
) -> list[dict[str, Any]]:
    """The members beyond `size`, least advanced first: the `size` furthest along (by `rank`, as a
    claim would take them) are kept, so a shrink never stops a running VM while one still booting
    is spare."""
    ordered = sorted(members, key=rank)
    return list(reversed(ordered[max(size, 0) :]))


def shrink_plan(
    vms: Iterable[dict[str, Any]],
    wanted: Callable[[str, str], int],
    managed_by: str,
    rank: Callable[[dict[str, Any]], Any] = readiness,
) -> dict[Key, list[dict[str, Any]]]:
    """Per pool found among `vms`, the VMs to delete so that it keeps at most `wanted(namespace,
    template)`: every pool VM of a pool no longer configured (wanted 0), a configured pool's
    surplus; pools with nothing to delete are left out."""
    pools: dict[Key, list[dict[str, Any]]] = {}
    for vm in vms:
        key = pool_of(vm, managed_by)
        if key is not None:
            pools.setdefault(key, []).append(vm)
    plan = {key: surplus(members, wanted(*key), rank) for key, members in pools.items()}
    return {key: doomed for key, doomed in plan.items() if doomed}


def delete_options(vm: dict[str, Any]) -> dict[str, Any]:
    """The body of a DELETE that succeeds only on the very version read (409 otherwise), so it
    cannot remove a VM that a claim changed since."""
    meta = vm["metadata"]
    preconditions = {"uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}
    return {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "preconditions": {k: v for k, v in preconditions.items() if v},
    }


@dataclasses.dataclass
class Pool:
    size: int = 0
    namespaces: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    managed_by: str = "roadie"
    #: reads a template's text by name (a GET of its ConfigMap); raises TemplateError
    read_template: TemplateReader | None = None
    _lock: asyncio.Lock = dataclasses.field(default_factory=asyncio.Lock)
    _tasks: dict[Key, asyncio.Task[None]] = dataclasses.field(default_factory=dict)
    _again: set[Key] = dataclasses.field(default_factory=set)
    _retries: dict[Key, asyncio.TimerHandle] = dataclasses.field(default_factory=dict)
    #: uids of the VMs this pool deleted whose deletion the cache may not show yet
    _deleted: set[str] = dataclasses.field(default_factory=set)
    _closed: bool = False

    def serves(self, namespace: str, template_name: str) -> bool:
        return self.size > 0 and namespace in self.namespaces and template_name in self.templates

    def wanted(self, namespace: str, template_name: str) -> int:
        """How many warm VMs the pool (namespace, template) keeps: none if it is not configured."""
        return self.size if self.serves(namespace, template_name) else 0

    def members(self, namespace: str, template_name: str) -> list[dict[str, Any]]:
        """The pool's warm VMs (not deleting), from the cache's parent index."""
        found = cache.by_index(cd_children.VMS, cache.PARENT_INDEX, pool_ref(namespace, template_name))
        return [
            vm
            for vm in found
            if not vm["metadata"].get("deletionTimestamp") and vm["metadata"].get("uid") not in self._deleted
        ]

    async def claim(self, body: dict[str, Any], template_name: str) -> dict[str, Any] | None:
        """Adopt a warm VM for `body`; None if the pool has none. Refills in the background."""
        namespace = body["metadata"]["namespace"]
        if not self.serves(namespace, template_name):
            return None
        async with self._lock:
            claimed = None
            for vm in sorted(self.members(namespace, template_name), key=readiness):
                claimed = await self._adopt(vm, body)
                if claimed is not None:
                    break
        self.refill(namespace, template_name)
        return claimed

    async def _adopt(self, vm: dict[str, Any], body: dict[str, Any]) -> dict[str, Any] | None:
        meta = vm["metadata"]
        patch = claim_patch(vm, body, self.managed_by, models.timestamp(models.now()))
        try:
            result = await client.get().patch(
                cd_children.VirtualMachine, meta["name"], patch, namespace=meta["namespace"], patch_type=PatchType.MERGE
            )
        except ApiError as error:
            if error.status.code in (404, 409):
                return None  # gone, or changed under us: try the next one
            raise
        claimed: dict[str, Any] = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        cache.observe(cd_children.VMS, claimed)
        with contextlib.suppress(ApiError):  # no instance yet: KubeVirt makes it from the new template
            vmi = await client.get().patch(
                cd_children.VirtualMachineInstance,
                meta["name"],
                vmi_patch(claimed),
                namespace=meta["namespace"],
                patch_type=PatchType.MERGE,
            )
            cache.observe(cd_children.VMIS, vmi.to_dict() if hasattr(vmi, "to_dict") else vmi)
        log.info("claimed warm VM %s/%s for Cyberdesk %s", meta["namespace"], meta["name"], body["metadata"]["name"])
        return claimed

    # -- refilling ---------------------------------------------------------------------------
    def refill_all(self) -> None:
        """Every configured pool to its size, and every pool left from an earlier configuration
        (a namespace or template no longer pooled, or a size of 0) emptied: once the caches have
        synced, which is the one time the whole cache is read."""
        for namespace in self.namespaces:
            for template_name in self.templates:
                self.refill(namespace, template_name)
        for key in shrink_plan(cache.all_of(cd_children.VMS), self.wanted, self.managed_by, rank=_created):
            if not self.serves(*key):
                self.refill(*key)

    def refill(self, namespace: str, template_name: str) -> None:
        """Bring the pool back to its size (up or down), in the background; one refill per pool at
        a time, and one more after it if asked meanwhile."""
        key = (namespace, template_name)
        if self._closed:
            return
        if not self.serves(namespace, template_name) and not self._ours(key):
            return
        if key in self._tasks:
            self._again.add(key)
            return
        task = asyncio.get_running_loop().create_task(self._refill(key), name=f"cyberdesk-pool-{namespace}")
        self._tasks[key] = task
        task.add_done_callback(lambda _t: self._done(key))

    def _done(self, key: Key) -> None:
        self._tasks.pop(key, None)
        if key in self._again:
            self._again.discard(key)
            self.refill(*key)

    def _ours(self, key: Key) -> list[dict[str, Any]]:
        return [vm for vm in self.members(*key) if pool_of(vm, self.managed_by) == key]

    async def _refill(self, key: Key) -> None:
        namespace, template_name = key
        members = self.members(namespace, template_name)
        missing = self.wanted(namespace, template_name) - len(members)
        if missing < 0:
            try:
                await self._shrink(key, members)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("warm pool %s/%s not shrunk (%s); trying again in %.0fs", *key, error, RETRY_SECONDS)
                self._retries[key] = asyncio.get_running_loop().call_later(RETRY_SECONDS, self.refill, *key)
            return
        if missing == 0:
            return
        try:
            assert self.read_template is not None
            text = await self.read_template(template_name)
            for _ in range(missing):
                name = naming.dns_label(f"cyberdesk-pool-{secrets.token_hex(4)}")
                manifest = pool_vm(
                    text, namespace=namespace, template_name=template_name, managed_by=self.managed_by, name=name
                )
                await children.create_if_absent(manifest)
            log.info("warm pool %s/%s: started %d VM(s)", namespace, template_name, missing)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.warning("warm pool %s/%s not refilled (%s); trying again in %.0fs", *key, error, RETRY_SECONDS)
            loop = asyncio.get_running_loop()
            self._retries[key] = loop.call_later(RETRY_SECONDS, self.refill, *key)

    async def _shrink(self, key: Key, members: list[dict[str, Any]]) -> None:
        """Delete the pool's VMs beyond its size, least advanced first; one log line per shrink."""
        ours = [vm for vm in members if pool_of(vm, self.managed_by) == key]
        keep = max(self.wanted(*key) - (len(members) - len(ours)), 0)
        doomed = surplus(ours, keep)
        deleted = 0
        for vm in doomed:
            if await self._delete(key, vm):
                deleted += 1
        self._deleted &= {str(vm["metadata"].get("uid")) for vm in cache.all_of(cd_children.VMS)}
        if deleted:
            log.info("warm pool %s/%s: deleted %d VM(s) over its size of %d", *key, deleted, self.wanted(*key))
        else:
            log.debug("warm pool %s/%s: nothing deleted of %d surplus VM(s)", *key, len(doomed))

    async def _delete(self, key: Key, vm: dict[str, Any], attempts: int = 3) -> bool:
        """Delete one surplus VM unless a claim took it: re-checked in the cache just before, and
        guarded by its uid and resourceVersion; a conflict that was only a status update is read
        again (a GET) and tried again."""
        meta = vm["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta.get("uid")
        current = cache.get(cd_children.VMS, namespace, name) or vm
        path = f"{cd_children.VMS.path(namespace)}/{name}"
        for _ in range(attempts):
            if not current["metadata"].get("resourceVersion"):
                return False  # nothing to guard the deletion with
            if current["metadata"].get("uid") != uid or pool_of(current, self.managed_by) != key:
                return False  # claimed, deleted or replaced meanwhile
            response = await client.http().request("DELETE", path, json=delete_options(current))
            if response.status_code == 404:
                return False
            if response.status_code != 409:
                if response.status_code >= 400:
                    raise RuntimeError(f"DELETE {path}: {response.status_code} {response.text[:200]}")
                self._deleted.add(str(uid))
                return True
            fresh = await children.get_or_none(cd_children.VirtualMachine, name, namespace)
            if fresh is None:
                return False
            current = fresh
        return False

    def on_vm_event(self, kind: str, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """A handler on the VM informer: a pool that lost a VM (deleted, or claimed away) refills."""
        before = labels.parse_parent_ref(((old or obj).get("metadata", {}).get("annotations") or {}).get(labels.PARENT))
        now = labels.parse_parent_ref((obj.get("metadata", {}).get("annotations") or {}).get(labels.PARENT))
        if before is None or before[0] != POOL_KIND:
            return
        if kind == "DELETED" or now != before:
            self.refill(before[1] or "", before[2])

    async def close(self) -> None:
        self._closed = True
        for handle in self._retries.values():
            handle.cancel()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _created(vm: dict[str, Any]) -> str:
    """A rank that reads no instance: enough to find which pools have a surplus at all."""
    return str(vm["metadata"].get("creationTimestamp") or "")


def _strings(mapping: Any) -> dict[str, str]:
    if not isinstance(mapping, dict):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in mapping.items()}
