"""The KubeVirt objects a Cyberdesk makes and watches, addressed once: their informer sources (the
core routes their events to the Cyberdesk their parent pointer names), their lightkube resources,
and the access the controller needs, from which `roadie.rbac` generates the ClusterRole.

VirtualMachineInstances are never written but for a claimed warm VM's labels: KubeVirt makes them
from the VM's template, so the labels the operator selects on are put on that template.
"""

from __future__ import annotations

from typing import Any

from lightkube import generic_resource

from roadie.core import cache, sources
from roadie.core.informer import Source
from roadie.cyberdesk import default_template

VMS = sources.register(Source("kubevirt.io", "v1", "VirtualMachine", "virtualmachines"))
VMIS = sources.register(Source("kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances"))

VirtualMachine = generic_resource.create_namespaced_resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines")
VirtualMachineInstance = generic_resource.create_namespaced_resource(
    "kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances"
)

WATCH = ("list", "watch")
ACCESS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # made once per desktop (never re-applied), halted by a merge patch, deleted after the halt;
    # a warm VM is adopted by a merge patch
    ("kubevirt.io", "virtualmachines", (*WATCH, "get", "create", "patch", "delete")),
    # watched for their phase; a claimed warm VM's instance is relabelled (merge patch)
    ("kubevirt.io", "virtualmachineinstances", (*WATCH, "patch")),
    # the cloud-init user data of spec.userDataSecretRef, read with a GET when a VM is made
    ("", "secrets", ("get",)),
)

#: Rights in one namespace only: the templates, read with a GET when a VM is made (not Roadie's, so
#: not cached), in the default template namespace (a Role there; another namespace needs the same).
NAMESPACED_ACCESS: dict[str, tuple[tuple[str, str, tuple[str, ...]], ...]] = {
    default_template.NAMESPACE: (("", "configmaps", ("get",)),),
}


def vmi_of(vm: dict[str, Any]) -> dict[str, Any] | None:
    """The VM's instance from the cache (KubeVirt names it after its VM), if it is this VM's."""
    meta = vm["metadata"]
    vmi = cache.get(VMIS, meta.get("namespace"), meta["name"])
    if vmi is None:
        return None
    owners = (vmi.get("metadata") or {}).get("ownerReferences") or []
    if owners and not any(ref.get("uid") == meta.get("uid") for ref in owners):
        return None  # an instance of an earlier VM of that name, on its way out
    return vmi


def vmi_phase(vmi: dict[str, Any] | None) -> str | None:
    return ((vmi or {}).get("status") or {}).get("phase") or None


def vmi_address(vmi: dict[str, Any] | None) -> str | None:
    for interface in ((vmi or {}).get("status") or {}).get("interfaces") or []:
        if interface.get("ipAddress"):
            return str(interface["ipAddress"])
    return None


def vmi_node(vmi: dict[str, Any] | None) -> str | None:
    node = ((vmi or {}).get("status") or {}).get("nodeName")
    return str(node) if node else None


def running_since(vmi: dict[str, Any] | None) -> str | None:
    """When the instance last entered Running, as KubeVirt recorded it."""
    for stamp in reversed(((vmi or {}).get("status") or {}).get("phaseTransitionTimestamps") or []):
        if stamp.get("phase") == "Running":
            return str(stamp.get("phaseTransitionTimestamp") or "") or None
    return None
