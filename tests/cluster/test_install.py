"""`roadie install --operator` puts Roadie into a cluster and `roadie uninstall` takes it out again:
the objects of the chart rendered with the given image and values exist after install (the image
cannot run under kwok, so the objects are checked, not the process), none of Roadie's own objects
remains after uninstall but the CRDs (kept without --crds) and the Cyberdesk template with its
namespace, and a second uninstall finds nothing to do and succeeds.

`--crds` is not exercised here: it deletes every custom resource of the session's cluster, which
other test modules share; tests/unit/test_chart_install.py checks its order of deletions.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import yaml

from roadie import rbac
from roadie.cli import install as install_cli
from roadie.cli import operator as operator_cli

IMAGE = "registry.example.com/platform/roadie:1.2.3"


def roadie(kubeconfig: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roadie", *args, "--kubeconfig", str(kubeconfig)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip


def kubectl(kubeconfig: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [operator_cli.kubectl(), f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, check=False
    )


def remaining(kubeconfig: pathlib.Path) -> list[str]:
    """Every object still carrying Roadie's installation labels, CRDs aside."""
    kinds = [*install_cli.NAMESPACED_KINDS.values(), *install_cli.CLUSTER_KINDS.values(), "namespaces"]
    served = set(kubectl(kubeconfig, "api-resources", "-o", "name").stdout.split())
    found = kubectl(
        kubeconfig, "get", ",".join(k for k in kinds if k in served or k == "namespaces"), "-A", "-l",
        install_cli.SELECTOR, "-o", "json",
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    return [
        f"{item['kind']}/{item['metadata'].get('namespace', '')}/{item['metadata']['name']}"
        for item in json.loads(found.stdout)["items"]
        if not (item["kind"] == "Namespace" and item.get("status", {}).get("phase") == "Terminating")
    ]


def test_install_the_operator_then_uninstall_twice(kubeconfig: pathlib.Path, tmp_path: pathlib.Path) -> None:
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"replicas": 2, "controllers": ["workshop", "preview", "cyberdesk"]}))
    done = roadie(kubeconfig, "install", "--operator", "--image", IMAGE, "--values", str(values))
    assert done.returncode == 0, done.stdout + done.stderr

    deployment = json.loads(
        kubectl(kubeconfig, "-n", rbac.NAMESPACE, "get", "deployment", "roadie", "-o", "json").stdout
    )
    pod = deployment["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == IMAGE
    assert pod["serviceAccountName"] == rbac.NAME
    assert deployment["spec"]["replicas"] == 2
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["ROADIE_OPERATOR_CONTROLLERS"] == "workshop,preview,cyberdesk"
    assert env["ROADIE_WORKSPACE_ENGINE_IMAGE"] == IMAGE
    expected = [
        ("-n", rbac.NAMESPACE, "serviceaccount", rbac.NAME),
        ("-n", rbac.NAMESPACE, "service", "roadie-metrics"),
        ("-n", rbac.NAMESPACE, "poddisruptionbudget", "roadie"),
        ("-n", rbac.NAMESPACE, "networkpolicy", "roadie"),
        ("clusterrole", rbac.NAME),
        ("clusterrolebinding", rbac.NAME),
        ("validatingadmissionpolicy", rbac.POLICY),
        ("validatingadmissionpolicybinding", rbac.POLICY),
        ("-n", "cyberdesk-system", "role", "roadie-cyberdesk"),
        ("-n", "cyberdesk-system", "configmap", "cyberdesk-vm-template"),
        *(("crd", str(doc["metadata"]["name"])) for doc in operator_cli.crd_documents()),  # type: ignore[index]
    ]
    for args in expected:
        found = kubectl(kubeconfig, "get", *args)
        assert found.returncode == 0, (args, found.stderr)
    # the rendered Roles in the operator's namespace (the leader-election Lease's, if any) came too
    rendered = install_cli.operator_documents(rbac.NAMESPACE, IMAGE, [values], policy=True)
    for doc in rendered:
        if doc["kind"] == "Role" and doc["metadata"]["namespace"] == rbac.NAMESPACE:
            assert kubectl(kubeconfig, "-n", rbac.NAMESPACE, "get", "role", doc["metadata"]["name"]).returncode == 0

    done = roadie(kubeconfig, "uninstall")
    assert done.returncode == 0, done.stdout + done.stderr
    assert remaining(kubeconfig) == []
    gone = kubectl(kubeconfig, "get", "namespace", rbac.NAMESPACE)
    assert gone.returncode != 0 and "NotFound" in gone.stderr, "uninstall waits until the namespace is gone"
    for doc in operator_cli.crd_documents():  # kept without --crds
        assert kubectl(kubeconfig, "get", "crd", str(doc["metadata"]["name"])).returncode == 0  # type: ignore[index]
    template = kubectl(kubeconfig, "-n", "cyberdesk-system", "get", "configmap", "cyberdesk-vm-template")
    assert template.returncode == 0, "the Cyberdesk template is the users' to edit, kept without --crds"

    again = roadie(kubeconfig, "uninstall")
    assert again.returncode == 0, again.stdout + again.stderr


def test_install_without_the_operator_applies_crds_rbac_and_policy(kubeconfig: pathlib.Path) -> None:
    """What the other cluster tests start from (`roadie install`): no helm, no Deployment."""
    done = roadie(kubeconfig, "install")
    assert done.returncode == 0, done.stdout + done.stderr
    assert kubectl(kubeconfig, "get", "clusterrole", rbac.NAME).returncode == 0
    assert kubectl(kubeconfig, "get", "validatingadmissionpolicy", rbac.POLICY).returncode == 0
    assert kubectl(kubeconfig, "-n", rbac.NAMESPACE, "get", "deployment", "roadie").returncode != 0
    refused = roadie(kubeconfig, "install", "--image", IMAGE)
    assert refused.returncode != 0 and "go with --operator" in refused.stderr
