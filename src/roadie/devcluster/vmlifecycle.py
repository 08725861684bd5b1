"""What KubeVirt would do next with a VirtualMachine and its instance, as pure decisions.

`virtcontroller.py` stands in for KubeVirt's virt-controller and virt-handler on the local cluster;
this module holds its rules, so that each one is checked without a cluster: whether a VM should run
(its `runStrategy`, or the deprecated `running`), the VirtualMachineInstance it gets, the phases the
instance goes through (Pending, Scheduling, Scheduled, Running; Succeeded when halted, Failed when
an annotation asks), and the VM's status. Objects are plain dicts, as the API sends them.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

#: Annotations on a VirtualMachine, for tests: fail its instance, and time its phases.
FAIL_ANNOTATION = "devcluster.roadie.dev/vmi-fail"
DELAY_ANNOTATION = "devcluster.roadie.dev/vmi-phase-delay"
DEFAULT_DELAY = 0.2
NODE_LABEL = "kubevirt.io/nodeName"
STARTING = ("", "Pending", "Scheduling", "Scheduled")
NEXT_PHASE = {"": "Pending", "Pending": "Scheduling", "Scheduling": "Scheduled", "Scheduled": "Running"}
FINISHED = ("Succeeded", "Failed")
RESTARTED_AFTER_FAILURE = ("Always", "RerunOnFailure")

Obj = dict[str, Any]


@dataclasses.dataclass
class Plan:
    """One step: at most one write to the instance, the VM's status, and when to look again."""

    create: Obj | None = None
    vmi_status: Obj | None = None  # the instance's new status (its CRD has no status subresource)
    vmi_labels: dict[str, str] | None = None
    delete_vmi: bool = False
    vm_status: Obj | None = None
    requeue: float | None = None


def parse_duration(text: str | None) -> float | None:
    """`300ms`, `2s`, `1.5s`, `1m`: seconds, or None when absent or malformed."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)(ms|s|m)\s*", text or "")
    if not match:
        return None
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0}[match.group(2)]


def _annotations(obj: Obj) -> dict[str, str]:
    return obj.get("metadata", {}).get("annotations") or {}


def strategy(vm: Obj) -> str:
    spec = vm.get("spec", {})
    if spec.get("runStrategy"):
        return str(spec["runStrategy"])
    return "Always" if spec.get("running") else "Halted"


def _requests(vm: Obj) -> list[str]:
    return [str(r.get("action")) for r in (vm.get("status", {}).get("stateChangeRequests") or [])]


def halted(vm: Obj) -> bool:
    """Asked to stop: Halted (or `running: false`), or Manual with a Stop request."""
    run_strategy = strategy(vm)
    return run_strategy == "Halted" or (run_strategy == "Manual" and "Stop" in _requests(vm))


def should_start(vm: Obj) -> bool:
    """A VM without an instance gets one: always, except when halted, or Manual without a Start."""
    run_strategy = strategy(vm)
    if run_strategy == "Manual":
        return "Start" in _requests(vm) and "Stop" not in _requests(vm)
    return not halted(vm)


def phase(vmi: Obj | None) -> str:
    return str(((vmi or {}).get("status") or {}).get("phase") or "")


def since_transition(vmi: Obj, now: datetime.datetime) -> float:
    """Seconds since the instance entered its phase (its last phase transition timestamp)."""
    stamps = (vmi.get("status") or {}).get("phaseTransitionTimestamps") or []
    raw = stamps[-1].get("phaseTransitionTimestamp") if stamps else vmi.get("metadata", {}).get("creationTimestamp")
    if not raw:
        return 0.0
    moment = datetime.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    return (now - moment).total_seconds()


def timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ip_for(uid: str) -> str:
    """A stable address in the upper half of the pod network, which kwok's pod IPs seldom reach."""
    digest = hashlib.sha256(uid.encode()).digest()
    return f"10.244.{128 + digest[0] % 127}.{1 + digest[1] % 254}"


def mac_for(uid: str) -> str:
    digest = hashlib.sha256(uid.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[2:7])


def node_for(uid: str, nodes: Sequence[str]) -> str:
    """One of the fake nodes, the same one for the same instance."""
    ordered = sorted(nodes) or ["kwok-node-0"]
    return ordered[int(hashlib.sha256(uid.encode()).hexdigest(), 16) % len(ordered)]


def instance_for(vm: Obj, now: datetime.datetime) -> Obj:
    """The VirtualMachineInstance of a VM: its template, named and owned as virt-controller does."""
    meta = vm["metadata"]
    template = vm.get("spec", {}).get("template") or {}
    template_meta = template.get("metadata") or {}
    return {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": dict(template_meta.get("labels") or {}),
            "annotations": dict(template_meta.get("annotations") or {}),
            "ownerReferences": [
                {
                    "apiVersion": "kubevirt.io/v1",
                    "kind": "VirtualMachine",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template.get("spec") or {},
        "status": {"phase": "Pending", "phaseTransitionTimestamps": [_stamp("Pending", now)]},
    }


def _stamp(name: str, now: datetime.datetime) -> Obj:
    return {"phase": name, "phaseTransitionTimestamp": timestamp(now)}


def _moved(vmi: Obj, name: str, now: datetime.datetime, nodes: Sequence[str]) -> Obj:
    """The instance's status after entering phase `name`."""
    status = dict(vmi.get("status") or {})
    uid = str(vmi["metadata"]["uid"])
    status["phase"] = name
    status["phaseTransitionTimestamps"] = [*(status.get("phaseTransitionTimestamps") or []), _stamp(name, now)]
    if name == "Scheduled":
        status["nodeName"] = node_for(uid, nodes)
        status["qosClass"] = "Burstable"
    if name == "Running":
        ip = ip_for(uid)
        status["interfaces"] = [
            {
                "name": "default",
                "interfaceName": "eth0",
                "ipAddress": ip,
                "ipAddresses": [ip],
                "mac": mac_for(uid),
                "infoSource": "domain, guest-agent",
            }
        ]
    ready = name == "Running"
    reason = {"Failed": "GuestFailed", "Succeeded": "GuestShutdown"}.get(name, "" if ready else "GuestNotRunning")
    condition: Obj = {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": timestamp(now)}
    if reason:
        condition["reason"] = reason
    status["conditions"] = [condition]
    if name == "Failed":
        status["reason"] = "injected by the annotation " + FAIL_ANNOTATION
    return status


def printable(vm: Obj, vmi: Obj | None) -> str:
    """KubeVirt's `printableStatus` for the pair."""
    if vm.get("metadata", {}).get("deletionTimestamp"):
        return "Terminating"
    current = phase(vmi)
    if vmi is None:
        return "Stopped"
    if current in STARTING:
        return "Stopping" if halted(vm) else "Starting"
    if current == "Running":
        return "Stopping" if halted(vm) else "Running"
    if current == "Failed" and strategy(vm) in RESTARTED_AFTER_FAILURE and not halted(vm):
        return "CrashLoopBackOff"
    return "Stopped"


def vm_status(vm: Obj, vmi: Obj | None, now: datetime.datetime) -> Obj:
    """The VM's status as virt-controller reports it; conditions keep their transition time."""
    ready = phase(vmi) == "Running" and not halted(vm)
    old = {c.get("type"): c for c in (vm.get("status") or {}).get("conditions") or []}
    value = "True" if ready else "False"
    kept = old.get("Ready")
    since = (
        kept["lastTransitionTime"] if kept and kept.get("status") == value and kept.get("lastTransitionTime") else None
    )
    condition: Obj = {"type": "Ready", "status": value, "lastTransitionTime": since or timestamp(now)}
    if not ready:
        condition["reason"] = "VMINotExists" if vmi is None else "VMINotReady"
    status: Obj = {
        "created": vmi is not None and phase(vmi) not in FINISHED,
        "ready": ready,
        "printableStatus": printable(vm, vmi),
        "conditions": [condition],
    }
    generation = vm.get("metadata", {}).get("generation")
    if generation is not None:
        status["observedGeneration"] = generation
        status["desiredGeneration"] = generation
    return status


def _status_changed(vm: Obj, wanted: Obj) -> bool:
    current = vm.get("status") or {}
    return any(current.get(key) != value for key, value in wanted.items())


def plan(vm: Obj | None, vmi: Obj | None, now: datetime.datetime, nodes: Sequence[str]) -> Plan:
    """The next step for one VM and its instance (either may be missing)."""
    if vm is None or vm.get("metadata", {}).get("deletionTimestamp"):
        return Plan()  # the garbage collector removes an owned instance with its VM
    if vmi is not None and not _owned_by(vmi, vm):
        return Plan(requeue=1.0)  # an instance of an earlier VM of this name, on its way out
    result = _instance_step(vm, vmi, now, nodes)
    after = vmi
    if result.create is not None:
        after = result.create
    elif result.delete_vmi:
        after = None
    elif result.vmi_status is not None and vmi is not None:
        after = {**vmi, "status": result.vmi_status}
    wanted = vm_status(vm, after, now)
    if strategy(vm) == "Manual" and (result.create is not None or (after is None and halted(vm))):
        wanted["stateChangeRequests"] = []  # the Start or Stop request is served
    if _status_changed(vm, wanted):
        result.vm_status = wanted
    return result


def _owned_by(vmi: Obj, vm: Obj) -> bool:
    uid = vm["metadata"].get("uid")
    return any(ref.get("uid") == uid for ref in vmi.get("metadata", {}).get("ownerReferences") or [])


def _delay(vm: Obj) -> float:
    found = parse_duration(_annotations(vm).get(DELAY_ANNOTATION))
    return DEFAULT_DELAY if found is None else found


def _instance_step(vm: Obj, vmi: Obj | None, now: datetime.datetime, nodes: Sequence[str]) -> Plan:
    delay = _delay(vm)
    if vmi is None:
        return Plan(create=instance_for(vm, now), requeue=delay) if should_start(vm) else Plan()
    if vmi.get("metadata", {}).get("deletionTimestamp"):
        return Plan(requeue=delay)
    current = phase(vmi)
    waited = since_transition(vmi, now)
    if current in FINISHED:
        if halted(vm):
            return _after(delay, waited, Plan(delete_vmi=True))
        restart = (current == "Failed" and strategy(vm) in RESTARTED_AFTER_FAILURE) or (
            current == "Succeeded" and strategy(vm) == "Always"
        )
        if restart and _annotations(vm).get(FAIL_ANNOTATION) != "true":
            return _after(delay, waited, Plan(delete_vmi=True))  # recreated on the next step
        return Plan()
    if halted(vm):
        return Plan(vmi_status=_moved(vmi, "Succeeded", now, nodes), requeue=delay)
    if _annotations(vm).get(FAIL_ANNOTATION) == "true":
        return _after(delay, waited, Plan(vmi_status=_moved(vmi, "Failed", now, nodes)))
    if current in NEXT_PHASE:
        moved = _moved(vmi, NEXT_PHASE[current], now, nodes)
        labels = {NODE_LABEL: moved["nodeName"]} if moved["phase"] == "Scheduled" else None
        return _after(delay, waited, Plan(vmi_status=moved, vmi_labels=labels, requeue=delay))
    return Plan()


def _after(delay: float, waited: float, step: Plan) -> Plan:
    """`step` once the instance has spent `delay` in its phase; until then, look again at that moment."""
    if waited >= delay:
        return step
    return Plan(requeue=max(0.01, delay - waited))


def key_of(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace")), str(meta.get("name"))
