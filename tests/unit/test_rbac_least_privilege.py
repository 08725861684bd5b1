"""The operator's RBAC grants what its controllers use and nothing more, and the namespace policy
shipped beside it is the one generated from the same source.

A verb granted "just in case" is a verb an attacker who takes the operator's token gets; a verb
missing is a 403 on a real cluster. The generated role is read here as a cluster would read it;
that it is enough is proven by tests/cluster/test_rbac.py, which runs the operator under it.
"""

from __future__ import annotations

import pathlib

import yaml

from roadie import catalog, rbac, settings
from roadie.preview import children as preview_children
from roadie.preview import models as preview_models
from roadie.workshop import children as workshop_children

POLICY_FILE = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "policy" / rbac.POLICY_FILE


def granted() -> dict[tuple[str, str], set[str]]:
    role = next(d for d in rbac.manifests() if d["kind"] == "ClusterRole")
    return {(g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]}


def test_no_wildcards_and_no_update_but_on_finalizers() -> None:
    for (group, resource), verbs in granted().items():
        assert "*" not in verbs and "*" not in resource and group != "*"
        assert "update" not in verbs or resource.endswith("/finalizers"), f"{resource}: only patches are sent"
        assert "deletecollection" not in verbs and "escalate" not in verbs and "impersonate" not in verbs


def test_each_kind_patches_its_status_and_may_block_its_own_deletion() -> None:
    rules = granted()
    #: kinds whose controllers create objects of their own kind (a schedule's runs, a workspace's
    #: automatic snapshots) need `create` on it too; no other kind gets it
    creators = {"observatories", "snapshots"}
    for api in catalog.all_apis():
        base = {"get", "list", "watch", "patch", "delete"}
        assert rules[(api.group, api.plural)] == ({*base, "create"} if api.plural in creators else base)
        assert rules[(api.group, f"{api.plural}/status")] == {"patch"}
        assert rules[(api.group, f"{api.plural}/finalizers")] == {"update"}


def test_secrets_are_created_once_and_never_patched() -> None:
    assert granted()[("", "secrets")] == {"create", "get", "list", "watch", "delete"}


def test_namespaces_are_what_a_preview_needs() -> None:
    assert granted()[("", "namespaces")] == {"create", "patch", "get", "list", "watch", "delete"}


def test_what_lives_inside_a_preview_namespace_is_never_deleted_one_by_one() -> None:
    rules = granted()
    for resource in ("resourcequotas", "limitranges"):
        assert rules[("", resource)] == {"create", "patch", "list", "watch"}
    assert rules[("networking.k8s.io", "networkpolicies")] == {"create", "patch", "list", "watch"}


def test_every_declared_child_can_be_applied_listed_and_watched() -> None:
    rules = granted()
    for group, resource, verbs in (*workshop_children.ACCESS, *preview_children.ACCESS):
        assert {"list", "watch"} <= rules[(group, resource)]
        assert set(verbs) <= rules[(group, resource)]
        if "patch" in verbs:
            assert "create" in verbs, f"{resource}: server-side apply of a new object is a create"


def test_every_child_a_controller_watches_is_listed_and_watched() -> None:
    rules = granted()
    for kind in catalog.KINDS:
        for controller in kind.controllers():
            for child in controller.children:
                assert {"list", "watch"} <= rules[(child.group, child.plural)], child


def test_the_policy_file_matches_its_generator() -> None:
    assert POLICY_FILE.read_text() == rbac.policy_text(), (
        "deploy/policy/ is stale: run `python -m roadie.rbac --policy-output deploy/policy/roadie-namespaces.yaml`"
    )


def test_the_policy_binds_the_operators_service_account_and_denies() -> None:
    policy, binding = rbac.policy_manifests()
    account = next(d for d in rbac.manifests() if d["kind"] == "ServiceAccount")["metadata"]
    assert f"system:serviceaccount:{account['namespace']}:{account['name']}" == rbac.USERNAME
    (condition,) = policy["spec"]["matchConditions"]
    assert condition["expression"] == f"request.userInfo.username == '{rbac.USERNAME}'"
    assert policy["spec"]["failurePolicy"] == "Fail"
    assert binding["spec"] == {"policyName": policy["metadata"]["name"], "validationActions": ["Deny"]}
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["namespaces"] and set(rule["operations"]) == {"CREATE", "UPDATE", "DELETE"}


def test_the_policy_checks_the_labels_a_preview_namespace_carries() -> None:
    spec = preview_models.PreviewEnvironmentSpec(pr_number=3, branch_name="b", image="a", image_tag="t")
    meta = {"name": "p", "namespace": "n", "uid": "u-1"}
    parent = {"apiVersion": "devops.orima.com/v1", "kind": "PreviewEnvironment", "metadata": meta}
    eff = preview_children.effective(spec, settings.PreviewSettings())
    found = preview_children.namespace(parent, spec, eff)["metadata"]["labels"]
    variables = yaml.safe_dump(rbac.policy_manifests()[0]["spec"]["variables"])
    for key in rbac.OWNED_NAMESPACE_LABELS:
        assert found.get(key), key
        assert key in variables, key
