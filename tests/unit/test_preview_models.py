"""The PreviewEnvironment API as the API server will enforce it: the seed's snake_case fields,
bounds and patterns, optional overrides, and the CRD's scope, status subresource and columns,
checked on the schema generated from the models."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from roadie import catalog
from roadie.core import crdgen
from roadie.preview import models

SEED = {"pr_number": 42, "branch_name": "feature/my-feature", "image": "youruser/my-app", "image_tag": "a3f9c2d"}


def _crd() -> dict[str, Any]:
    return crdgen.crd(models.API)


def _spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = _crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def test_the_seed_example_parses() -> None:
    spec = models.PreviewEnvironmentSpec.model_validate({**SEED, "ttl_seconds": 3600})
    assert spec.ttl_seconds == 3600 and spec.base_domain is None


@pytest.mark.parametrize(
    "bad",
    [
        {"pr_number": 0},
        {"pr_number": 1000000},
        {"branch_name": ""},
        {"branch_name": "b" * 256},
        {"image": "has space"},
        {"image": "a" * 257},
        {"image_tag": "with/slash"},
        {"image_tag": "t" * 129},
        {"ttl_seconds": 59},
        {"ttl_seconds": 86401},
        {"container_port": 0},
        {"liveness_path": "no-slash"},
        {"base_domain": "Upper.Case"},
    ],
)
def test_out_of_bounds_is_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        models.PreviewEnvironmentSpec.model_validate({**SEED, **bad})


def test_crd_keeps_the_seed_names_and_limits() -> None:
    crd = _crd()
    assert crd["metadata"]["name"] == "previewenvironments.devops.orima.com"
    assert crd["spec"]["scope"] == "Namespaced"
    schema = _spec_schema()
    assert schema["required"] == ["pr_number", "branch_name", "image", "image_tag"]
    props = schema["properties"]
    assert (props["pr_number"]["minimum"], props["pr_number"]["maximum"]) == (1, 999999)
    assert (props["branch_name"]["minLength"], props["branch_name"]["maxLength"]) == (1, 255)
    assert props["image"]["pattern"] == r"^[a-zA-Z0-9._/\-]+$" and props["image"]["maxLength"] == 256
    assert props["image_tag"]["pattern"] == r"^[a-zA-Z0-9._\-]+$" and props["image_tag"]["maxLength"] == 128
    assert (props["ttl_seconds"]["minimum"], props["ttl_seconds"]["maximum"]) == (60, 86400)


def test_overrides_are_optional_and_have_no_default_that_would_hide_the_settings() -> None:
    props = _spec_schema()["properties"]
    for name in ("base_domain", "ingress_class", "cluster_issuer", "container_port", "liveness_path"):
        assert "default" not in props[name], name
    assert "default" not in props["resources"]["properties"]["limits"]["properties"]["cpu"]


def test_status_subresource_columns_and_short_names() -> None:
    version = _crd()["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    status = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert {"phase", "url", "namespace", "expiresAt", "conditions"} <= set(status)
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase" and columns["URL"] == ".status.url"
    assert columns["Expires"] == ".status.expiresAt" and columns["PR"] == ".spec.pr_number"
    assert "pe" in _crd()["spec"]["names"]["shortNames"]


def test_the_kind_is_in_the_catalog() -> None:
    assert models.API in catalog.all_apis()
    assert "preview" in {kind.controller for kind in catalog.KINDS}
