"""The CRDs under deploy/crds/ are generated from the Python models: this test fails when the two
drift apart (run `make crds` to regenerate), so the models stay the one source of truth."""

from __future__ import annotations

import pathlib

import yaml

from roadie import catalog
from roadie.cli import operator as operator_cli

CRD_DIR = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "crds"


def test_every_crd_file_matches_its_model() -> None:
    expected = operator_cli.crd_files()
    found = {path.name: path.read_text() for path in CRD_DIR.glob("*.yaml")}
    assert sorted(found) == sorted(expected), "deploy/crds/ lists other CRDs than the models: run `make crds`"
    for name, text in expected.items():
        assert found[name] == text, f"deploy/crds/{name} differs from its model: run `make crds`"


def test_every_kind_in_the_catalog_has_a_crd_with_status_subresource() -> None:
    for api in catalog.all_apis():
        doc = yaml.safe_load((CRD_DIR / f"{api.crd_name}.yaml").read_text())
        assert doc["spec"]["group"] == api.group
        version = doc["spec"]["versions"][0]
        assert version["name"] == api.version
        assert "status" in version.get("subresources", {})


def test_rbac_file_matches_what_the_kinds_declare() -> None:
    path = CRD_DIR.parent / "rbac" / "roadie.yaml"
    assert path.read_text() == operator_cli.rbac_text(), "deploy/rbac/roadie.yaml is stale: run `make crds`"


def test_rbac_lets_each_kind_write_its_status_and_children() -> None:
    role = next(d for d in yaml.safe_load_all(operator_cli.rbac_text()) if d["kind"] == "ClusterRole")
    granted = {
        (g, r): set(rule["verbs"]) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
    }
    for api in catalog.all_apis():
        assert {"get", "list", "watch", "patch"} <= granted[(api.group, api.plural)]
        assert "patch" in granted[(api.group, f"{api.plural}/status")]
    assert {"create", "patch", "delete"} <= granted[("apps", "deployments")]
    assert "create" in granted[("", "events")]
