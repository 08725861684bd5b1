"""The PreviewEnvironment builders, without a cluster: the seed's names and values, the operator
settings and their per-object overrides, a pod that passes Pod Security `restricted`, label-safe
branches, and no ownerReference that the garbage collector could misread across namespaces."""

from __future__ import annotations

import re
from typing import Any

import pytest

from roadie import settings as settings_mod
from roadie.core import labels
from roadie.preview import children, models

LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?)?$")
BODY = {
    "apiVersion": "devops.orima.com/v1",
    "kind": "PreviewEnvironment",
    "metadata": {"name": "pr-42-env", "namespace": "preview-environments", "uid": "uid-1"},
}


def _spec(**extra: Any) -> models.PreviewEnvironmentSpec:
    fields = {"pr_number": 42, "branch_name": "feature/my-feature", "image": "youruser/my-app", "image_tag": "a3f9c2d"}
    return models.PreviewEnvironmentSpec.model_validate({**fields, **extra})


def _eff(spec: models.PreviewEnvironmentSpec) -> children.Effective:
    return children.effective(spec, settings_mod.PreviewSettings())


def _all(spec: models.PreviewEnvironmentSpec) -> list[dict[str, Any]]:
    eff = _eff(spec)
    return [children.namespace(BODY, spec, eff)] + [m for _, m in children.inside(BODY, spec, eff)]


def test_the_seed_names_everything_after_the_pr_number() -> None:
    spec = _spec()
    found = {(m["kind"], m["metadata"]["name"], m["metadata"].get("namespace")) for m in _all(spec)}
    assert found == {
        ("Namespace", "preview-pr-42", None),
        ("ResourceQuota", "pr-42-quota", "preview-pr-42"),
        ("LimitRange", "pr-42-limits", "preview-pr-42"),
        ("NetworkPolicy", "pr-42-app-netpol", "preview-pr-42"),
        ("Deployment", "pr-42-app", "preview-pr-42"),
        ("Service", "pr-42-svc", "preview-pr-42"),
        ("Ingress", "pr-42-ingress", "preview-pr-42"),
    }


def test_quota_limits_and_network_policy_come_in_a_round_before_the_workload() -> None:
    steps = children.inside(BODY, _spec(), _eff(_spec()))
    names = [step for step, _ in steps]
    assert names.index("resourcequota") < names.index("deployment")
    assert names.index("limitrange") < names.index("deployment")
    assert names[-1] == "ingress"
    guards, workload = ([step for step, _ in round_] for round_ in children.rounds(steps))
    assert sorted(guards) == ["limitrange", "networkpolicy", "resourcequota"]
    assert workload == ["deployment", "service", "ingress"]


def test_namespace_records_its_owner_and_enforces_restricted() -> None:
    ns = children.namespace(BODY, _spec(), _eff(_spec()))
    found = ns["metadata"]["labels"]
    assert found["managed-by"] == "preview-operator" and found["pr-number"] == "42"
    assert found[children.OWNER_UID] == "uid-1"
    for mode in ("enforce", "audit", "warn"):
        assert found[f"pod-security.kubernetes.io/{mode}"] == "restricted"
    assert ns["metadata"]["annotations"][labels.PARENT] == "PreviewEnvironment/preview-environments/pr-42-env"


def test_no_child_has_an_owner_reference_and_each_is_found_by_the_child_watch() -> None:
    for manifest in _all(_spec()):
        meta = manifest["metadata"]
        assert "ownerReferences" not in meta, manifest["kind"]
        assert meta["labels"][labels.NAME] == "previewenvironment"
        assert meta["labels"][labels.MANAGED_BY] == "roadie"
        assert labels.parse_parent_ref(meta["annotations"][labels.PARENT]) == (
            "PreviewEnvironment",
            "preview-environments",
            "pr-42-env",
        )


@pytest.mark.parametrize(
    "branch", ["feature/my-feature", "Ünïcode/wörk", "-leading", "x" * 255, "release/v1.2.3+build", "a b c"]
)
def test_any_branch_becomes_a_valid_label_value(branch: str) -> None:
    for manifest in _all(_spec(branch_name=branch)):
        for value in manifest["metadata"]["labels"].values():
            assert len(value) <= 63 and LABEL_VALUE.match(value), (manifest["kind"], value)


def test_distinct_branches_stay_distinct_in_labels() -> None:
    a = children.seed_labels(_spec(branch_name="feature/a_b"))[children.BRANCH]
    b = children.seed_labels(_spec(branch_name="feature/a-b"))[children.BRANCH]
    assert a != b


def _deployment(spec: models.PreviewEnvironmentSpec) -> dict[str, Any]:
    return children.deployment(BODY, spec, _eff(spec))


def test_deployment_has_the_seed_container_probes_and_resources() -> None:
    container = _deployment(_spec())["spec"]["template"]["spec"]["containers"][0]
    assert container["name"] == "app" and container["image"] == "youruser/my-app:a3f9c2d"
    assert container["ports"][0]["containerPort"] == 8000
    assert container["livenessProbe"]["httpGet"]["path"] == "/"
    assert container["readinessProbe"]["httpGet"]["path"] == "/"
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "250m", "memory": "256Mi"},
    }


def test_pod_satisfies_pod_security_restricted() -> None:
    pod = _deployment(_spec())["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc.get("privileged") is not True
    assert not pod.get("hostNetwork") and not pod.get("hostPID") and not pod.get("volumes")


def test_selector_is_in_the_pod_labels_and_the_service_selects_it() -> None:
    spec = _spec()
    deployment = _deployment(spec)
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
    assert children.service(BODY, spec, _eff(spec))["spec"]["selector"] == selector


def test_service_maps_port_80_to_the_container_port() -> None:
    service = children.service(BODY, _spec(), _eff(_spec()))
    assert service["spec"]["type"] == "ClusterIP"
    port = service["spec"]["ports"][0]
    assert (port["port"], port["targetPort"]) == (80, 8000)


def test_ingress_asks_cert_manager_for_the_seed_secret() -> None:
    ingress = children.ingress(BODY, _spec(), _eff(_spec()))
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["pr-42.preview.orimatest.com"], "secretName": "pr-42.preview.orimatest.com-tls"}
    ]
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "pr-42.preview.orimatest.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "pr-42-svc", "port": {"number": 80}}


def test_network_policy_admits_only_the_ingress_controller_and_the_namespace_itself() -> None:
    policy = children.network_policy(BODY, _spec(), _eff(_spec()))["spec"]
    assert policy["podSelector"] == {} and policy["policyTypes"] == ["Ingress"]
    assert policy["ingress"] == [
        {
            "from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
                {"podSelector": {}},
            ]
        }
    ]


def test_quota_and_limit_range_come_from_the_settings() -> None:
    cfg = settings_mod.PreviewSettings(quota_cpu="4", quota_memory="8Gi", quota_pods="20", cpu_limit="1")
    spec = _spec()
    eff = children.effective(spec, cfg)
    assert children.resource_quota(BODY, spec, eff)["spec"]["hard"] == {
        "requests.cpu": "4",
        "requests.memory": "8Gi",
        "limits.cpu": "4",
        "limits.memory": "8Gi",
        "pods": "20",
    }
    limit = children.limit_range(BODY, spec, eff)["spec"]["limits"][0]
    assert limit["type"] == "Container" and limit["default"]["cpu"] == "1"


def test_per_object_fields_override_the_operator_settings() -> None:
    spec = _spec(
        base_domain="pr.example.org",
        ingress_class="traefik",
        cluster_issuer="staging",
        container_port=3000,
        liveness_path="/healthz",
        readiness_path="/ready",
        resources={"limits": {"memory": "1Gi"}},
    )
    eff = _eff(spec)
    assert children.url(spec, eff) == "https://pr-42.pr.example.org"
    ingress = children.ingress(BODY, spec, eff)
    assert ingress["spec"]["ingressClassName"] == "traefik"
    assert ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"] == "staging"
    assert ingress["spec"]["tls"][0]["secretName"] == "pr-42.pr.example.org-tls"
    container = _deployment(spec)["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == 3000
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"},
        "limits": {"cpu": "250m", "memory": "1Gi"},
    }
    assert children.service(BODY, spec, eff)["spec"]["ports"][0]["targetPort"] == 3000


def test_operator_settings_change_the_defaults() -> None:
    cfg = settings_mod.PreviewSettings(base_domain="previews.corp", namespace_prefix="pv-")
    spec = _spec()
    eff = children.effective(spec, cfg)
    assert children.names(spec, eff).namespace == "pv-42"
    assert children.host(spec, eff) == "pr-42.previews.corp"
