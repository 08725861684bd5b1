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
