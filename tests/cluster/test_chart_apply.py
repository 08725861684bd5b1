"""The chart's output is accepted by a real API server: `helm template` with the default values and
with FULL_VALUES (two replicas, three controllers, two watched namespaces, settings overridden,
settings from a Secret, monitoring on, custom resources and scheduling), and the committed
deploy/operator/roadie.yaml, each applied with a server-side dry run (`kubectl apply --server-side
--dry-run=server`): schemas, field validation (strict), CEL in the policy and the CRDs, and Pod
Security `restricted` (the release namespace warns on it, and a warning fails the test).

The local cluster does not serve Prometheus Operator's kinds, so the ServiceMonitor and the
PrometheusRule are checked against monitoring.coreos.com CRDs installed here with a minimal schema
holding the fields the chart and files/prometheus-rules.yaml use (no unknown fields preserved where
the real CRDs have none, so a typo in a field name is refused). The namespaces a dry run cannot
make are created for real first, and removed after.
"""

from __future__ import annotations

import contextlib
import pathlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from tests.unit.test_chart import FULL_VALUES

from roadie.cli import install as install_cli

STRING = {"type": "string"}
MAP = {"type": "object", "additionalProperties": {"type": "string"}}
FREE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
RULE = {
    "type": "object",
    "required": ["expr"],
    "properties": {
        "alert": STRING,
        "record": STRING,
        "expr": {"x-kubernetes-int-or-string": True},
        "for": STRING,
        "keep_firing_for": STRING,
        "labels": MAP,
        "annotations": MAP,
    },
}
SPECS: dict[str, tuple[str, dict[str, Any]]] = {
    "ServiceMonitor": (
        "servicemonitors",
        {
            "type": "object",
            "properties": {
                "jobLabel": STRING,
                "selector": FREE,
                "namespaceSelector": FREE,
                "endpoints": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": STRING,
                            "path": STRING,
                            "scheme": {"type": "string", "enum": ["http", "https"]},
                            "interval": STRING,
                            "scrapeTimeout": STRING,
                            "bearerTokenFile": STRING,
                            "tlsConfig": FREE,
                        },
                    },
                },
            },
        },
    ),
    "PrometheusRule": (
        "prometheusrules",
        {
            "type": "object",
            "properties": {
                "groups": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": STRING,
                            "interval": STRING,
                            "limit": {"type": "integer"},
                            "labels": MAP,
                            "rules": {"type": "array", "items": RULE},
                        },
                    },
                }
            },
        },
    ),
}


def kubectl(kubeconfig: pathlib.Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    binary = str(pathlib.Path(sys.executable).with_name("kubectl"))
    return subprocess.run(
        [binary, f"--kubeconfig={kubeconfig}", *args], input=stdin, capture_output=True, text=True, check=False
    )


def monitoring_crd(kind: str) -> dict[str, Any]:
    plural, spec = SPECS[kind]
    schema = {"type": "object", "properties": {"spec": spec}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com", "labels": {"roadie.dev/test": "true"}},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}],
        },
    }


@pytest.fixture(scope="module")
def monitoring_crds(kubeconfig: pathlib.Path) -> Iterator[None]:
    """The two Prometheus Operator kinds, unless the cluster serves them already (then left alone)."""
    made = []
    for kind, (plural, _) in SPECS.items():
        name = f"{plural}.monitoring.coreos.com"
        if kubectl(kubeconfig, "get", "crd", name).returncode != 0:
            done = kubectl(kubeconfig, "create", "-f", "-", stdin=yaml.safe_dump(monitoring_crd(kind)))
            assert done.returncode == 0, done.stderr
            made.append(name)
    if made:
        done = kubectl(kubeconfig, "wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in made))
        assert done.returncode == 0, done.stderr
    yield
    for name in made:
        kubectl(kubeconfig, "delete", "crd", name, "--ignore-not-found")


@contextlib.contextmanager
def namespaces_for(kubeconfig: pathlib.Path, text: str, release: str) -> Iterator[None]:
    """The release namespace (warning on Pod Security `restricted`) and the others the render
    names, made for real where absent: a dry run cannot put objects into a namespace it only pretends
    to create."""
    docs = install_cli.documents(text)
    wanted = {release} | {doc["metadata"]["namespace"] for doc in docs if "namespace" in doc["metadata"]}
    wanted |= {doc["metadata"]["name"] for doc in docs if doc["kind"] == "Namespace"}
    made = []
    for name in sorted(wanted):
        if kubectl(kubeconfig, "get", "namespace", name).returncode != 0:
            assert kubectl(kubeconfig, "create", "namespace", name).returncode == 0
            made.append(name)
    warn = "pod-security.kubernetes.io/warn"
    done = kubectl(kubeconfig, "label", "--overwrite", "namespace", release, f"{warn}=restricted")
    assert done.returncode == 0, done.stderr
    try:
        yield
    finally:
        if release not in made:
            kubectl(kubeconfig, "label", "namespace", release, f"{warn}-")
        for name in made:  # waited for: the next render may need a namespace of the same name
            kubectl(kubeconfig, "delete", "namespace", name, "--timeout=120s")


def dry_run(kubeconfig: pathlib.Path, text: str, release: str) -> None:
    """Over what the session's other tests installed (the CRDs, the RBAC), which other field
    managers own: forced, as an upgrade would be; nothing is written either way."""
    with namespaces_for(kubeconfig, text, release):
        done = kubectl(
            kubeconfig, "apply", "--server-side", "--force-conflicts", "--dry-run=server",
            "--field-manager=roadie-chart-test", "-f", "-", stdin=text,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr  # Pod Security, deprecated APIs, unknown fields
    applied = [line for line in done.stdout.splitlines() if line.endswith("(server dry run)")]
    assert len(applied) == len(install_cli.documents(text)), done.stdout


def test_default_values_apply(kubeconfig: pathlib.Path, tmp_path: pathlib.Path) -> None:
    release = f"t-chart-default-{uuid.uuid4().hex[:6]}"
    text = install_cli.render(release)
    assert {doc["kind"] for doc in install_cli.documents(text)} >= {"Deployment", "CustomResourceDefinition"}
    dry_run(kubeconfig, text, release)


def test_full_values_apply(kubeconfig: pathlib.Path, tmp_path: pathlib.Path, monitoring_crds: None) -> None:
    release = f"t-chart-full-{uuid.uuid4().hex[:6]}"
    (tmp_path / "values.yaml").write_text(yaml.safe_dump(FULL_VALUES))
    text = install_cli.render(release, [tmp_path / "values.yaml"])
    kinds = {doc["kind"] for doc in install_cli.documents(text)}
    assert {"ServiceMonitor", "PrometheusRule", "PodDisruptionBudget", "ConfigMap"} <= kinds
    dry_run(kubeconfig, text, release)


def test_committed_plain_manifests_apply(kubeconfig: pathlib.Path) -> None:
    text = install_cli.MANIFESTS.read_text()
    dry_run(kubeconfig, text, "roadie-system")
