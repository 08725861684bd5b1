"""Roadie's pods against the Pod Security Standards, checked without a cluster.

A pod that misses its level is refused by the API server only once a cluster enforces that level,
which the local cluster does not by default: a security context that drifts would go unnoticed
until a real cluster refused it. The checks below are the Standards' controls that a pod
template can break (https://kubernetes.io/docs/concepts/security/pod-security-standards/); the
API server's own verdict is checked in tests/cluster/test_security_pod_admission.py.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from roadie import settings
from roadie.preview import children as preview_children
from roadie.preview import models as preview_models
from roadie.workshop import children as workshop_children
from roadie.workshop import models as workshop_models

BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip
RESTRICTED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
}  # fmt: skip
PARENT = {"apiVersion": "x/v1", "kind": "X", "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"}}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"], *pod.get("ephemeralContainers", [])]


def baseline_violations(pod: dict[str, Any]) -> list[str]:
    found = [f"host namespace {key}" for key in ("hostNetwork", "hostPID", "hostIPC") if pod.get(key)]
    found += [f"hostPath volume {v['name']}" for v in pod.get("volumes", []) if "hostPath" in v]
    pod_seccomp = (pod.get("securityContext") or {}).get("seccompProfile", {}).get("type")
    if pod_seccomp == "Unconfined":
        found.append("pod seccomp Unconfined")
    for c in _containers(pod):
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            found.append(f"{c['name']}: privileged")
        extra = set((sc.get("capabilities") or {}).get("add", [])) - BASELINE_CAPABILITIES
        if extra:
            found.append(f"{c['name']}: capabilities {sorted(extra)}")
        if any(port.get("hostPort") for port in c.get("ports", [])):
            found.append(f"{c['name']}: hostPort")
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            found.append(f"{c['name']}: seccomp Unconfined")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{c['name']}: procMount")
    return found


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    found = baseline_violations(pod)
    pod_sc = pod.get("securityContext") or {}
    for volume in pod.get("volumes", []):
        if not set(volume) - {"name"} <= RESTRICTED_VOLUMES:
            found.append(f"volume type of {volume['name']}")
    if pod_sc.get("runAsUser") == 0:
        found.append("pod runAsUser 0")
    for c in _containers(pod):
        sc = c.get("securityContext") or {}
        caps = sc.get("capabilities") or {}
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{c['name']}: allowPrivilegeEscalation not false")
        if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is not True:
            found.append(f"{c['name']}: runAsNonRoot not true")
        if sc.get("runAsUser") == 0:
            found.append(f"{c['name']}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{c['name']}: seccomp {seccomp}")
        if "ALL" not in caps.get("drop", []):
            found.append(f"{c['name']}: capabilities not dropped")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{c['name']}: capabilities added")
    return found


def workshop_pod(level: str) -> dict[str, Any]:
    spec = workshop_models.WorkshopSpec(name="intro-r")
    session = workshop_children.sessions(spec)[0]
    deployment = workshop_children.deployment(PARENT, spec, session, 8787, pod_security=level)
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


def test_the_default_workshop_pod_passes_baseline_and_not_restricted() -> None:
    pod = workshop_pod(settings.WorkshopSettings().pod_security)
    assert baseline_violations(pod) == []
    refused = restricted_violations(pod)
    assert any("runAsNonRoot" in v for v in refused)
    assert any("capabilities added" in v for v in refused)


def test_the_restricted_workshop_pod_passes_restricted() -> None:
    assert restricted_violations(workshop_pod(workshop_children.RESTRICTED)) == []


@pytest.mark.parametrize("level", workshop_children.POD_SECURITY_LEVELS)
def test_every_workshop_level_keeps_escalation_off_and_seccomp_on(level: str) -> None:
    pod = workshop_pod(level)
    (rstudio,) = pod["containers"]
    assert rstudio["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_the_preview_pod_passes_restricted_which_its_namespace_enforces() -> None:
    spec = preview_models.PreviewEnvironmentSpec(pr_number=7, branch_name="b", image="app", image_tag="v1")
    eff = preview_children.effective(spec, settings.PreviewSettings())
    pod = preview_children.deployment(PARENT, spec, eff)["spec"]["template"]["spec"]
    assert restricted_violations(pod) == []
    namespace = preview_children.namespace(PARENT, spec, eff)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda c, p: c["securityContext"]["capabilities"].setdefault("add", []).append("NET_RAW"), "NET_RAW"),
        (lambda c, p: c["securityContext"].update(privileged=True), "privileged"),
        (lambda c, p: p.update(hostNetwork=True), "hostNetwork"),
        (lambda c, p: p["securityContext"].update(seccompProfile={"type": "Unconfined"}), "Unconfined"),
    ],
)
def test_the_baseline_check_can_fail(change: Any, expected: str) -> None:
    pod = copy.deepcopy(workshop_pod(workshop_children.BASELINE))
    change(pod["containers"][0], pod)
    assert any(expected in v for v in baseline_violations(pod))
