"""The order of `roadie uninstall`'s deletions, with kubectl replaced by a recorder: custom resources
first while the operator can still take its finalizers off (and nothing else when some stay), then
the operator, its rights, the CRDs only with --crds, and the namespace last. The cluster test
(tests/cluster/test_install.py) runs it for real, without --crds.
"""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import typer

from roadie import catalog
from roadie.cli import install as install_cli

SERVED = [
    *install_cli.NAMESPACED_KINDS.values(),
    *install_cli.CLUSTER_KINDS.values(),
    *(api.crd_name for api in catalog.all_apis()),
]


class Kubectl:
    """Records each command; `delete --all` of custom resources fails when `stuck`."""

    def __init__(self, served: list[str], stuck: bool = False) -> None:
        self.served = served
        self.stuck = stuck
        self.commands: list[list[str]] = []

    def __call__(self, command: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        args = command[1:]
        self.commands.append(args)
        if args[:1] == ["api-resources"]:
            return subprocess.CompletedProcess(command, 0, "\n".join(self.served), "")
        failed = self.stuck and args[:2] == ["delete", "--all"]
        return subprocess.CompletedProcess(command, 1 if failed else 0, "", "")

    def deleted(self) -> list[str]:
        return [" ".join(a for a in args if not a.startswith("--")) for args in self.commands if args[0] == "delete"]


def test_uninstall_deletes_the_operator_first_and_keeps_the_crds(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Kubectl([s for s in SERVED if "monitoring.coreos.com" not in s])
    monkeypatch.setattr(install_cli.subprocess, "run", recorder)
    install_cli.uninstall()
    deleted = recorder.deleted()
    assert deleted[0] == f"delete deployments.apps -l {install_cli.SELECTOR}"
    assert deleted[-1] == f"delete namespaces -l {install_cli.SELECTOR}"
    assert not [line for line in deleted if "monitoring.coreos.com" in line]  # not served: not asked
    assert not [line for line in deleted if "customresourcedefinitions" in line or "vm-template" in line]
    order = [line.split()[1] for line in deleted]
    assert order.index("serviceaccounts") > order.index("rolebindings.rbac.authorization.k8s.io")


def test_uninstall_with_crds_deletes_custom_resources_before_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Kubectl(SERVED)
    monkeypatch.setattr(install_cli.subprocess, "run", recorder)
    install_cli.uninstall(crds=True)
    deleted = recorder.deleted()
    crs = ",".join(api.crd_name for api in catalog.all_apis())
    assert deleted[0] == f"delete {crs}"
    assert deleted.index(f"delete deployments.apps -l {install_cli.SELECTOR}") == 1
    crds = deleted.index(f"delete customresourcedefinitions.apiextensions.k8s.io -l {install_cli.SELECTOR}")
    assert crds > deleted.index(f"delete clusterroles.rbac.authorization.k8s.io -l {install_cli.SELECTOR}")
    assert "delete -n cyberdesk-system configmap cyberdesk-vm-template" in deleted


def test_uninstall_with_crds_stops_when_resources_stay(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Kubectl(SERVED, stuck=True)
    monkeypatch.setattr(install_cli.subprocess, "run", recorder)
    with pytest.raises(typer.Exit):
        install_cli.uninstall(crds=True)
    assert len(recorder.deleted()) == 1, "nothing but the custom resources is touched while some stay"


def test_an_image_reference_splits_into_repository_and_tag(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def render(namespace: str, values: object, sets: list[str]) -> str:
        seen.append(list(sets))
        return ""

    monkeypatch.setattr(install_cli, "render", render)
    for image in ("registry.example.com:5000/roadie:1.2", "roadie", "ghcr.io/roadie/roadie"):
        install_cli.operator_documents("ns", image, [], policy=False)
    assert seen[0][-2:] == ["image.repository=registry.example.com:5000/roadie", "image.tag=1.2"]
    assert seen[1][-2:] == ["image.repository=roadie", "image.tag="]
    assert seen[2][-2:] == ["image.repository=ghcr.io/roadie/roadie", "image.tag="]
    assert "namespacePolicy.enabled=false" in seen[0]
