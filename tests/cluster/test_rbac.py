"""The generated RBAC is enough: the operator, run as its ServiceAccount with only
deploy/rbac/roadie.yaml granted, provisions a Workshop to Ready. A missing verb shows here as a
403 in the operator's log and a Workshop that never gets there."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import lightkube
import yaml
from tests.cluster import workshops
from tests.cluster.conftest import OperatorProcess, wait_for

from roadie import rbac

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _kubectl(kubeconfig: pathlib.Path, *args: str, check: bool = True) -> str:
    kubectl = str(pathlib.Path(sys.executable).with_name("kubectl"))
    return subprocess.run(
        [kubectl, f"--kubeconfig={kubeconfig}", *args], check=check, capture_output=True, text=True
    ).stdout


def test_operator_runs_with_only_its_generated_rbac(
    kube: lightkube.Client,
    kubeconfig: pathlib.Path,
    namespace: str,
    operator: OperatorProcess,
    tmp_path: pathlib.Path,
) -> None:
    _kubectl(kubeconfig, "apply", "--server-side", "-f", str(ROOT / "deploy" / "rbac" / "roadie.yaml"))
    token = _kubectl(kubeconfig, "create", "token", rbac.NAME, "-n", rbac.NAMESPACE, "--duration=1h").strip()
    config = yaml.safe_load(kubeconfig.read_text())
    config["users"] = [{"name": "roadie-sa", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "roadie-sa"
    limited_config = tmp_path / "roadie-sa.kubeconfig"
    limited_config.write_text(yaml.safe_dump(config))
    answer = _kubectl(limited_config, "auth", "can-i", "delete", "nodes", check=False)
    assert answer.strip() == "no", "the account must not be an admin"

    operator.stop()
    limited = OperatorProcess(limited_config, tmp_path / "limited.log", ["--controllers", "workshop"])
    try:
        limited.start()
        workshops.create(kube, workshops.manifest(namespace, "least", participants=2, ingress={"host": "least.test"}))
        wait_for("Ready under the generated RBAC", lambda: workshops.phase(kube, namespace, "least") == "Ready", 60)
        assert " 403 " not in limited.log.read_text() and "Forbidden" not in limited.log.read_text()
    finally:
        limited.stop()
        operator.start()
