"""CustomResourceDefinitions generated from the pydantic models, so that a model is the one source
of truth for an API: what the operator parses and what the API server validates cannot drift.

Pydantic emits JSON Schema; Kubernetes wants a *structural* OpenAPI v3 subset. The translation
inlines `$ref`s, folds `Optional` (`anyOf` with null) into the plain type, drops titles and null
defaults, and gives an optional object without required fields `default: {}` so the API server
fills in its nested defaults and `kubectl get -o yaml` shows them.
"""

from __future__ import annotations

import copy
from typing import Any

from roadie.core import api as api_mod

_DROP = {"title", "$defs", "discriminator"}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
        extra = {k: v for k, v in node.items() if k != "$ref"}
        return _inline({**target, **extra}, defs)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP:
            continue
        if key == "properties":
            out[key] = {name: _inline(prop, defs) for name, prop in value.items()}
        else:
            out[key] = _inline(value, defs)
    return out


def _structural(node: Any) -> Any:
    if isinstance(node, list):
        return [_structural(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {k: _structural(v) for k, v in node.items()}
    if "properties" in node:  # the keys there are field names, not schema keywords
        node["properties"] = {name: _structural(prop) for name, prop in node["properties"].items()}
    for combinator in ("anyOf", "oneOf"):
        options = node.get(combinator)
        if options is not None:
            real = [o for o in options if o.get("type") != "null"]
            if len(real) == 1:
                node.pop(combinator)
                node = {**real[0], **node}
    if "const" in node:  # a one-value Literal; structural schemas know only enum
        node["enum"] = [node.pop("const")]
    if node.get("default", "unset") is None:
        node.pop("default")
    if node.get("type") == "object" and "properties" in node:
        for name, prop in node["properties"].items():
            is_required = name in node.get("required", [])
            if (
                not is_required
                and prop.get("type") == "object"
                and "properties" in prop
                and not prop.get("required")
                and "default" not in prop
            ):
                prop["default"] = {}
    if node.get("type") == "object" and "additionalProperties" in node and node["additionalProperties"] is False:
        node.pop("additionalProperties")
    return node


def schema_of(model: type) -> dict[str, Any]:
    raw = model.model_json_schema(mode="validation")  # type: ignore[attr-defined]
    return _structural(_inline(raw, raw.get("$defs", {})))


def crd(api: api_mod.Api) -> dict[str, Any]:
    spec_schema = schema_of(api.spec)
    if api.spec_rules:
        spec_schema["x-kubernetes-validations"] = [rule.manifest() for rule in api.spec_rules]
    properties: dict[str, Any] = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec_schema,
    }
    version: dict[str, Any] = {"name": api.version, "served": True, "storage": True}
    if api.status is not None:
        properties["status"] = schema_of(api.status)
        version["subresources"] = {"status": {}}
    root: dict[str, Any] = {"type": "object", "properties": properties}
    if api.spec_required:
        root["required"] = ["spec"]
    version["schema"] = {"openAPIV3Schema": root}
    version["additionalPrinterColumns"] = [c.manifest() for c in api.printer_columns]
    names: dict[str, Any] = {
        "kind": api.kind,
        "listKind": f"{api.kind}List",
        "plural": api.plural,
        "singular": api.singular,
    }
    if api.short_names:
        names["shortNames"] = list(api.short_names)
    if api.categories:
        names["categories"] = list(api.categories)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": api.crd_name,
            "labels": {"app.kubernetes.io/name": "roadie", "app.kubernetes.io/part-of": "roadie"},
        },
        "spec": {
            "group": api.group,
            "scope": "Namespaced" if api.namespaced else "Cluster",
            "names": names,
            "versions": [version],
        },
    }
