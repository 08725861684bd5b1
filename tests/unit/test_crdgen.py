"""CRD generation from pydantic models: the translation into Kubernetes' structural schema.

The API server refuses a CRD whose schema is not structural (`$ref`, `anyOf` with null, a `type`
next to `x-kubernetes-int-or-string`), and it applies only the defaults it can reach (a nested
object needs `default: {}` for its fields' defaults to show). Small models defined here exercise
each rule of the translation one at a time; the real Workshop CRD is then checked against the
seed's API: its defaults, required name, short name and phases.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any, Literal

import pydantic
import pytest

from roadie.core import api, crdgen, durations, models
from roadie.workshop import models as ws_models


class Inner(models.ApiModel):
    size: models.Quantity = "1Gi"
    note: str | None = None


class Named(models.ApiModel):
    name: str
    port: int = 80


class GadgetSpec(models.ApiModel):
    title: str  # named like a JSON Schema keyword the generator drops; the field must survive
    mode: Literal["fast", "slow"] = "fast"
    count: int | None = None
    comment: str | None = pydantic.Field(default=None, description="Free text.")
    size: models.Quantity = "5Gi"
    limit: models.Quantity | None = None
    inner: Inner = pydantic.Field(default_factory=Inner)
    maybe: Inner | None = None
    owner: Named | None = None
    target: Named = pydantic.Field(default_factory=lambda: Named(name="default"))
    items: list[Named] = pydantic.Field(default_factory=list)
    labels: dict[str, str] = pydantic.Field(default_factory=dict)


class GadgetStatus(models.ApiModel):
    phase: Literal["Up", "Down"] | None = None
    conditions: list[models.Condition] = pydantic.Field(default_factory=list)


GADGET = api.Api(
    group="test.roadie.dev",
    version="v1alpha1",
    kind="Gadget",
    plural="gadgets",
    spec=GadgetSpec,
    status=GadgetStatus,
    short_names=("gd", "gdt"),
    printer_columns=(api.PrinterColumn("Mode", ".spec.mode", description="How fast."), api.AGE),
)


def schema_nodes(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema in a schema tree (property names are not schema keywords, so not visited)."""
    if not isinstance(node, dict):
        return
    yield node
    for prop in node.get("properties", {}).values():
        yield from schema_nodes(prop)
    for key in ("items", "additionalProperties", "not"):
        yield from schema_nodes(node.get(key))
    for key in ("anyOf", "oneOf", "allOf"):
        for option in node.get(key, []):
            yield from schema_nodes(option)


def open_api(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


@pytest.fixture(scope="module")
def gadget_crd() -> dict[str, Any]:
    return crdgen.crd(GADGET)


@pytest.fixture(scope="module")
def spec(gadget_crd: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = open_api(gadget_crd)["properties"]["spec"]
    return found


@pytest.fixture(scope="module")
def workshop_crd() -> dict[str, Any]:
    return crdgen.crd(ws_models.API)


def test_refs_and_defs_are_inlined(gadget_crd: dict[str, Any], spec: dict[str, Any]) -> None:
    text = json.dumps(gadget_crd)
    assert '"$ref"' not in text
    assert '"$defs"' not in text
    assert spec["properties"]["inner"]["properties"]["size"]["default"] == "1Gi"
    assert spec["properties"]["items"]["items"]["required"] == ["name"]
    assert set(spec["properties"]["items"]["items"]["properties"]) == {"name", "port"}


def test_no_schema_is_left_with_null_options_titles_or_null_defaults(gadget_crd: dict[str, Any]) -> None:
    for node in schema_nodes(open_api(gadget_crd)):
        assert "anyOf" not in node, node
        assert "oneOf" not in node, node
        assert "title" not in node, node
        assert node.get("type") != "null", node
        assert "default" not in node or node["default"] is not None, node


def test_a_field_named_like_a_dropped_keyword_is_kept(spec: dict[str, Any]) -> None:
    assert spec["properties"]["title"] == {"type": "string"}
    assert "title" in spec["required"]


def test_optional_fields_become_plain_types_without_null_default(spec: dict[str, Any]) -> None:
    props = spec["properties"]
    assert props["count"] == {"type": "integer"}
    assert props["comment"] == {"type": "string", "description": "Free text."}
    assert "count" not in spec["required"]


def test_an_optional_object_without_required_fields_defaults_to_empty(spec: dict[str, Any]) -> None:
    for name in ("inner", "maybe"):
        node = spec["properties"][name]
        assert node["type"] == "object", name
        assert node["default"] == {}, name
        assert node["properties"]["size"]["default"] == "1Gi", name
        assert node["properties"]["note"] == {"type": "string"}, name


def test_an_object_with_required_fields_gets_no_empty_default(spec: dict[str, Any]) -> None:
    # `default: {}` would make the API server fill in an object that fails its own `required`
    for name in ("owner", "target"):
        node = spec["properties"][name]
        assert node["type"] == "object", name
        assert node["required"] == ["name"], name
        assert "default" not in node, name


def test_quantities_are_int_or_string_with_the_quantity_pattern(spec: dict[str, Any]) -> None:
    for name in ("size", "limit"):
        node = spec["properties"][name]
        assert node["x-kubernetes-int-or-string"] is True, name
        assert node["pattern"] == models.QUANTITY_PATTERN, name
        assert "type" not in node, name
    assert spec["properties"]["size"]["default"] == "5Gi"
    assert "default" not in spec["properties"]["limit"]


def test_literal_gives_an_enum(spec: dict[str, Any], gadget_crd: dict[str, Any]) -> None:
    assert spec["properties"]["mode"] == {"type": "string", "enum": ["fast", "slow"], "default": "fast"}
    phase = open_api(gadget_crd)["properties"]["status"]["properties"]["phase"]
    assert phase == {"type": "string", "enum": ["Up", "Down"]}


def test_a_single_valued_literal_gives_an_enum_too() -> None:
    class Fixed(models.ApiModel):
        kind: Literal["only"] = "only"

    node = crdgen.schema_of(Fixed)["properties"]["kind"]
    assert "const" not in node
    assert node["enum"] == ["only"]


def test_maps_keep_their_value_type(spec: dict[str, Any]) -> None:
    assert spec["properties"]["labels"] == {"type": "object", "additionalProperties": {"type": "string"}}


def test_forbidding_extra_fields_does_not_leave_additional_properties_false() -> None:
    class Strict(models.ApiModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        name: str = "x"

    schema = crdgen.schema_of(Strict)
    assert "additionalProperties" not in schema
    assert schema["properties"]["name"] == {"type": "string", "default": "x"}


def test_names_scope_and_metadata(gadget_crd: dict[str, Any]) -> None:
    assert gadget_crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert gadget_crd["kind"] == "CustomResourceDefinition"
    assert gadget_crd["metadata"]["name"] == "gadgets.test.roadie.dev"
    assert gadget_crd["spec"]["group"] == "test.roadie.dev"
    assert gadget_crd["spec"]["scope"] == "Namespaced"
    assert gadget_crd["spec"]["names"] == {
        "kind": "Gadget",
        "listKind": "GadgetList",
        "plural": "gadgets",
        "singular": "gadget",
        "shortNames": ["gd", "gdt"],
        "categories": ["roadie"],
    }


def test_version_serves_and_stores_with_status_subresource(gadget_crd: dict[str, Any]) -> None:
    (version,) = gadget_crd["spec"]["versions"]
    assert version["name"] == "v1alpha1"
    assert version["served"] is True
    assert version["storage"] is True
    assert version["subresources"] == {"status": {}}
    root = open_api(gadget_crd)
    assert root["required"] == ["spec"]
    assert set(root["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}


def test_printer_columns(gadget_crd: dict[str, Any]) -> None:
    assert gadget_crd["spec"]["versions"][0]["additionalPrinterColumns"] == [
        {"name": "Mode", "type": "string", "jsonPath": ".spec.mode", "description": "How fast."},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]


def test_status_holds_only_the_models_fields(gadget_crd: dict[str, Any]) -> None:
    """No framework bookkeeping in status: what a user reads there is the kind's own."""
    status = open_api(gadget_crd)["properties"]["status"]
    assert "kopf" not in status["properties"]
    assert "x-kubernetes-preserve-unknown-fields" not in status


def test_a_kind_without_status_has_no_status_subresource() -> None:
    crd = crdgen.crd(api.Api(group="g.dev", version="v1", kind="Plain", plural="plains", spec=Named))
    (version,) = crd["spec"]["versions"]
    assert "subresources" not in version
    assert "status" not in open_api(crd)["properties"]
    assert "shortNames" not in crd["spec"]["names"]


def test_cluster_scope_optional_spec_and_cel_rules() -> None:
    rule = api.CelRule("self.port > 0", "port must be positive")
    wide = api.Api(
        group="g.dev",
        version="v1",
        kind="Wide",
        plural="wides",
        spec=Named,
        namespaced=False,
        spec_required=False,
        categories=(),
        spec_rules=(rule,),
    )
    crd = crdgen.crd(wide)
    hash(wide)  # the client caches a resource class per Api: it must stay hashable with rules
    assert crd["spec"]["scope"] == "Cluster"
    assert "required" not in open_api(crd)
    assert "categories" not in crd["spec"]["names"]
    assert open_api(crd)["properties"]["spec"]["x-kubernetes-validations"] == [
        {"rule": "self.port > 0", "message": "port must be positive"}
    ]


def test_generation_does_not_change_the_model_schema() -> None:
    before = json.dumps(GadgetSpec.model_json_schema(), sort_keys=True)
    crdgen.crd(GADGET)
    assert json.dumps(GadgetSpec.model_json_schema(), sort_keys=True) == before


# --- the real Workshop CRD -------------------------------------------------------------------


def workshop_spec(crd: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = open_api(crd)["properties"]["spec"]
    return found


def test_workshop_spec_defaults_match_the_seed(workshop_crd: dict[str, Any]) -> None:
    props = workshop_spec(workshop_crd)["properties"]
    assert props["duration"]["default"] == "4h"
    assert props["participants"]["default"] == 1
    assert props["image"]["default"] == "rocker/rstudio:latest"
    resources = props["resources"]
    assert resources["default"] == {}
    assert {name: node["default"] for name, node in resources["properties"].items()} == {
        "cpu": "1",
        "memory": "2Gi",
        "cpuRequest": "500m",
        "memoryRequest": "1Gi",
    }
    assert props["storage"]["default"] == {}
    assert props["storage"]["properties"]["size"]["default"] == "10Gi"
    assert props["ingress"]["default"] == {}


def test_workshop_crd_defaults_agree_with_the_model(workshop_crd: dict[str, Any]) -> None:
    """What the API server fills in is what the operator assumes when a field is absent."""
    parsed = ws_models.WorkshopSpec.model_validate({"name": "demo"}).model_dump()
    props = workshop_spec(workshop_crd)["properties"]
    for name in ("duration", "participants", "image"):
        assert props[name]["default"] == parsed[name], name
    for group in ("resources", "storage", "ingress"):
        for name, node in props[group]["properties"].items():
            if "default" in node:
                assert node["default"] == parsed[group][name], f"{group}.{name}"


def test_workshop_spec_requires_a_valid_name(workshop_crd: dict[str, Any]) -> None:
    spec = workshop_spec(workshop_crd)
    assert spec["required"] == ["name"]
    name = spec["properties"]["name"]
    assert name["type"] == "string"
    assert name["maxLength"] == 40
    assert re.fullmatch(name["pattern"], "my-workshop")
    assert not re.fullmatch(name["pattern"], "My_Workshop")


def test_workshop_duration_uses_the_duration_pattern(workshop_crd: dict[str, Any]) -> None:
    assert workshop_spec(workshop_crd)["properties"]["duration"]["pattern"] == durations.PATTERN


def test_workshop_quantities_are_int_or_string(workshop_crd: dict[str, Any]) -> None:
    props = workshop_spec(workshop_crd)["properties"]
    quantities = [*props["resources"]["properties"].values(), props["storage"]["properties"]["size"]]
    for node in quantities:
        assert node["x-kubernetes-int-or-string"] is True
        assert "type" not in node


def test_workshop_names(workshop_crd: dict[str, Any]) -> None:
    names = workshop_crd["spec"]["names"]
    assert workshop_crd["metadata"]["name"] == "workshops.orchestra.io"
    assert workshop_crd["spec"]["group"] == "orchestra.io"
    assert workshop_crd["spec"]["versions"][0]["name"] == "v1"
    assert names["kind"] == "Workshop"
    assert names["plural"] == "workshops"
    assert names["shortNames"] == ["ws"]


def test_workshop_status_phases_are_the_seeds(workshop_crd: dict[str, Any]) -> None:
    status = open_api(workshop_crd)["properties"]["status"]
    assert status["properties"]["phase"]["enum"] == ["Pending", "Creating", "Ready", "Running", "Terminating", "Failed"]
    assert workshop_crd["spec"]["versions"][0]["subresources"] == {"status": {}}


def test_workshop_printer_columns_show_phase_and_expiry(workshop_crd: dict[str, Any]) -> None:
    columns = {c["name"]: c["jsonPath"] for c in workshop_crd["spec"]["versions"][0]["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Expires"] == ".status.expiresAt"
    assert columns["Age"] == ".metadata.creationTimestamp"


def test_workshop_crd_is_structural(workshop_crd: dict[str, Any]) -> None:
    text = json.dumps(workshop_crd)
    assert '"$ref"' not in text
    assert '"$defs"' not in text
    assert '"const"' not in text
    for node in schema_nodes(open_api(workshop_crd)):
        assert "anyOf" not in node, node
        assert "title" not in node, node
        assert "default" not in node or node["default"] is not None, node
        if node.get("x-kubernetes-int-or-string"):
            assert "type" not in node, node
        elif "x-kubernetes-preserve-unknown-fields" not in node:
            assert "type" in node, node
