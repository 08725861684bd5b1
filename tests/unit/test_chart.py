"""The Helm chart (deploy/helm/roadie) renders what the operator and the cluster expect: the flags
and environment of the runtime contract, the restricted pod, the monitoring objects from the files
the monitoring part owns, the namespace policy bound to the release's account, and objects that
`roadie uninstall` can find again. Renders with the pinned helm (`roadie.devcluster.tools`), which
is built once on a cold machine.

FULL_VALUES is the non-trivial set of values the cluster test applies too.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
from typing import Any

import pytest
import typer
import yaml

from roadie import rbac
from roadie.cli import install as install_cli
from roadie.cli import operator as operator_cli
from roadie.cyberdesk import default_template as cyberdesk_template
from roadie.devcluster import tools

FILES = install_cli.CHART / "files"
FULL_NAMESPACE = "roadie-ops"
FULL_VALUES: dict[str, Any] = {
    "image": {
        "repository": "registry.example.com/platform/roadie",
        "tag": "9.9.9",
        "pullPolicy": "Always",
        "pullSecrets": ["regcred"],
    },
    "replicas": 2,
    "leaderElection": {"enabled": True},
    "controllers": ["workshop", "preview", "observatory"],
    "watchNamespaces": ["team-a", "team-b"],
    "metrics": {"readerSubjects": [{"kind": "ServiceAccount", "name": "prometheus", "namespace": "monitoring"}]},
    "settings": {
        "operator": {"log_level": "DEBUG", "workers": 4, "api_qps": 50.5, "resync_seconds": 300},
        "workshop": {"provisioning_deadline": "5m", "ingress_annotations_allowed": ["cert-manager.io/*", "x/y"]},
        "preview": {"base_domain": "preview.example.com", "allowed_base_domains": ["*.preview.example.com"]},
        "cyberdesk": {"pool_namespaces": [], "create_table": True},
        "workspace": {"engine_image": "registry.example.com/platform/roadie-engine:9.9.9"},
    },
    "settingsFromSecrets": {"cyberdesk": {"postgres_url": {"name": "roadie-sink", "key": "url"}}},
    "extraEnv": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.monitoring:4318"}],
    "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "platform", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "roadie"}},
                    },
                }
            ]
        }
    },
    "podAnnotations": {"example.com/team": "platform"},
    "networkPolicy": {
        "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
    "prometheusRule": {"enabled": True},
    "grafanaDashboard": {"enabled": True},
}


def render(tmp_path: pathlib.Path, values: dict[str, Any] | None = None, namespace: str = "roadie-system") -> str:
    files = []
    if values is not None:
        files.append(tmp_path / "values.yaml")
        files[0].write_text(yaml.safe_dump(values))
    return install_cli.render(namespace, files)


def objects(text: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in install_cli.documents(text)}


def container(docs: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    pod = docs[("Deployment", "roadie")]["spec"]["template"]["spec"]
    return pod["containers"][0]


def env_of(docs: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container(docs)["env"]}


def test_helm_is_built_to_assume_a_kubernetes_the_chart_supports() -> None:
    """`go install` alone leaves helm assuming Kubernetes 1.20, which the chart's kubeVersion refuses;
    the link flags that set it are part of the cache key, so a binary built without them is not reused."""
    helm = tools.TOOLS["helm"]
    assert f"chartutil.k8sVersionMinor={tools.HELM_K8S[1]}" in helm.ldflags
    assert helm.key != f"helm-{helm.version}"
    assert tools.TOOLS["promtool"].key == f"promtool-{tools.TOOLS['promtool'].version}"
    done = subprocess.run(
        [str(tools.resolve("helm")), "version", "--short"], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith(f"v{helm.version}")


def test_helm_lint_is_clean_in_strict_mode(tmp_path: pathlib.Path) -> None:
    helm = str(tools.resolve("helm"))
    (tmp_path / "full.yaml").write_text(yaml.safe_dump(FULL_VALUES))
    for extra in ([], [f"--values={tmp_path / 'full.yaml'}"]):
        done = subprocess.run(
            [helm, "lint", "--strict", str(install_cli.CHART), *extra], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


def test_default_render_runs_the_operator_as_the_contract_says(tmp_path: pathlib.Path) -> None:
    docs = objects(render(tmp_path))
    deployment = docs[("Deployment", "roadie")]
    pod = deployment["spec"]["template"]["spec"]
    main = container(docs)
    assert deployment["spec"]["replicas"] == 1
    assert main["image"] == f"ghcr.io/roadie/roadie:{install_cli.package_version()}"
    assert main["args"] == [
        "run",
        "--metrics-bind-address=:8443",
        "--metrics-secure",
        "--health-probe-bind-address=:8081",
        "--leader-elect",
    ]
    env = env_of(docs)
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["ROADIE_OPERATOR_CONTROLLERS"] == "workshop,preview,cyberdesk,observatory,workspace"
    assert {p["name"]: p["containerPort"] for p in main["ports"]} == {"metrics": 8443, "probes": 8081}
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "probes"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "probes"}
    assert pod["serviceAccountName"] == rbac.NAME
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert main["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}} in pod["volumes"]
    service = docs[("Service", "roadie-metrics")]
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 8443, "targetPort": "metrics", "protocol": "TCP"}]
    template = docs[("ConfigMap", cyberdesk_template.NAME)]
    assert template["data"] == {cyberdesk_template.KEY: cyberdesk_template.TEMPLATE}
    assert ("PodDisruptionBudget", "roadie") not in docs  # one replica: no budget (values.yaml says why)
    assert not {kind for kind, _ in docs} & {"ServiceMonitor", "PrometheusRule"}
    ingress = docs[("NetworkPolicy", "roadie")]["spec"]["ingress"]
    assert [rule["ports"] for rule in ingress] == [[{"port": "metrics", "protocol": "TCP"}], [
        {"port": "probes", "protocol": "TCP"}
    ]]  # fmt: skip


def test_plain_metrics_serve_8080_without_the_secure_flag(tmp_path: pathlib.Path) -> None:
    docs = objects(render(tmp_path, {"metrics": {"secure": False}, "serviceMonitor": {"enabled": True}}))
    assert container(docs)["args"][1:3] == ["--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"]
    endpoint = docs[("ServiceMonitor", "roadie")]["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "http" and "bearerTokenFile" not in endpoint


def test_leader_election_off_recreates_instead_of_rolling(tmp_path: pathlib.Path) -> None:
    docs = objects(render(tmp_path, {"leaderElection": {"enabled": False}}))
    assert "--leader-elect" not in container(docs)["args"]
    assert docs[("Deployment", "roadie")]["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"replicas": 2, "leaderElection": {"enabled": False}}, "replicas > 1 needs leaderElection.enabled=true"),
        ({"controllers": ["workshop", "workshops"]}, "/controllers/1': value must be one of"),
        (
            {"settings": {"workshop": {"provisioning_deadlin": "5m"}}},
            "settings.workshop.provisioning_deadlin is not an",
        ),
        ({"replica": 2}, "additional properties 'replica' not allowed"),
        ({"controllers": []}, "name at least one controller"),
    ],
)
def test_values_that_cannot_work_fail_the_render(tmp_path: pathlib.Path, values: dict[str, Any], message: str) -> None:
    with pytest.raises(typer.BadParameter, match=message):
        render(tmp_path, values)


def test_full_values_reach_the_objects(tmp_path: pathlib.Path) -> None:
    docs = objects(render(tmp_path, FULL_VALUES, FULL_NAMESPACE))
    deployment = docs[("Deployment", "roadie")]
    pod = deployment["spec"]["template"]["spec"]
    main = container(docs)
    assert deployment["spec"]["replicas"] == 2 and "strategy" not in deployment["spec"]
    assert main["image"] == "registry.example.com/platform/roadie:9.9.9"
    assert main["imagePullPolicy"] == "Always" and pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert main["resources"] == FULL_VALUES["resources"]
    for key in ("nodeSelector", "tolerations", "affinity"):
        assert pod[key] == FULL_VALUES[key]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["example.com/team"] == "platform"
    env = env_of(docs)
    assert env["ROADIE_OPERATOR_CONTROLLERS"] == "workshop,preview,observatory"
    assert env["ROADIE_OPERATOR_NAMESPACES"] == "team-a,team-b"
    assert env["ROADIE_CYBERDESK_POSTGRES_URL"] == {"secretKeyRef": {"name": "roadie-sink", "key": "url"}}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.monitoring:4318"
    assert docs[("PodDisruptionBudget", "roadie")]["spec"]["maxUnavailable"] == 1
    assert (
        docs[("NetworkPolicy", "roadie")]["spec"]["ingress"][0]["from"] == FULL_VALUES["networkPolicy"]["metricsFrom"]
    )
    binding = docs[("ClusterRoleBinding", "roadie-metrics-reader")]
    assert binding["subjects"] == FULL_VALUES["metrics"]["readerSubjects"]
    # the cyberdesk controller is off: neither its Role, its template nor their namespace
    assert not [key for key in docs if "cyberdesk" in key[1] and key[0] != "CustomResourceDefinition"]


def test_monitoring_objects_carry_the_monitoring_files(tmp_path: pathlib.Path) -> None:
    docs = objects(render(tmp_path, FULL_VALUES, FULL_NAMESPACE))
    monitor = docs[("ServiceMonitor", "roadie")]
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == "metrics" and endpoint["scheme"] == "https"
    assert endpoint["bearerTokenFile"] == "/var/run/secrets/kubernetes.io/serviceaccount/token"
    service = docs[("Service", "roadie-metrics")]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "roadie-metrics"
    rules = docs[("PrometheusRule", "roadie")]
    assert rules["spec"] == yaml.safe_load((FILES / "prometheus-rules.yaml").read_text())
    dashboard = docs[("ConfigMap", "roadie-dashboard")]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["roadie.json"]) == json.loads((FILES / "grafana-dashboard.json").read_text())


def test_policy_binds_the_releases_account(tmp_path: pathlib.Path) -> None:
    docs = objects(render(tmp_path, {"serviceAccount": {"name": "op"}}, "platform"))
    policy = docs[("ValidatingAdmissionPolicy", "roadie-namespaces")]
    expected = next(doc for doc in rbac.policy_manifests() if doc["kind"] == "ValidatingAdmissionPolicy")
    assert policy["spec"]["matchConditions"] == [
        {"name": "is-roadie", "expression": "request.userInfo.username == 'system:serviceaccount:platform:op'"}
    ]
    assert {k: v for k, v in policy["spec"].items() if k != "matchConditions"} == {
        k: v for k, v in expected["spec"].items() if k != "matchConditions"
    }
    assert docs[("ValidatingAdmissionPolicyBinding", "roadie-namespaces")]["spec"]["policyName"] == "roadie-namespaces"
    off = objects(render(tmp_path, {"namespacePolicy": {"enabled": False}}))
    assert not [key for key in off if key[0].startswith("ValidatingAdmissionPolicy")]


def test_rbac_is_what_rbac_py_grants_with_the_releases_names(tmp_path: pathlib.Path) -> None:
    docs = objects(render(tmp_path))
    for expected in rbac.manifests():
        key = (expected["kind"], expected["metadata"]["name"])
        if expected["kind"] == "Namespace" and expected["metadata"]["name"] == rbac.NAMESPACE:
            continue  # the release namespace: Helm's --create-namespace, or createNamespace
        assert key in docs, key
        found = docs[key]
        for field in ("rules", "roleRef", "subjects"):
            assert found.get(field) == expected.get(field), (key, field)
        assert found["metadata"].get("namespace") == expected["metadata"].get("namespace")


def test_crds_render_as_the_models_make_them(tmp_path: pathlib.Path) -> None:
    docs = objects(render(tmp_path))
    for expected in operator_cli.crd_documents():
        found = docs[("CustomResourceDefinition", expected["metadata"]["name"])]  # type: ignore[index]
        assert found["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}
        assert found == expected
    assert not [key for key in objects(render(tmp_path, {"crds": {"install": False}})) if key[0].endswith("Definition")]


def test_uninstall_finds_everything_the_chart_makes(tmp_path: pathlib.Path) -> None:
    """Every kind the chart renders is one uninstall sweeps, and every object it sweeps for carries
    its labels; what it leaves (CRDs without --crds, the Cyberdesk template and its namespace) is kept
    by `helm uninstall` too."""
    swept = {*install_cli.NAMESPACED_KINDS, *install_cli.CLUSTER_KINDS, "Namespace"}
    for text in (render(tmp_path), render(tmp_path, FULL_VALUES, FULL_NAMESPACE)):
        for doc in install_cli.documents(text):
            meta = doc["metadata"]
            if meta.get("annotations", {}).get("helm.sh/resource-policy") == "keep":
                continue
            assert meta["labels"].items() >= rbac.LABELS.items(), (doc["kind"], meta["name"])
            assert doc["kind"] in swept, doc["kind"]
