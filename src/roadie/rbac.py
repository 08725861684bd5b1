"""The operator's RBAC, generated from what each kind declares it writes, never edited by hand.

A kind's API (its resources and their `/status`) and its handler module's `CHILDREN` say exactly
which objects its controller touches; to that are added what every controller needs (events,
reading pods and StorageClasses to explain a stuck child, and what kopf reads to discover
resources and namespaces). `make crds` writes the result to `deploy/rbac/`.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from typing import Any

from roadie import catalog

NAMESPACE = "roadie-system"
NAME = "roadie"
LABELS = {"app.kubernetes.io/name": "roadie", "app.kubernetes.io/part-of": "roadie"}
WRITE = ["get", "list", "watch", "create", "update", "patch", "delete"]
READ = ["get", "list", "watch"]

COMMON: list[tuple[str, str, list[str]]] = [
    ("", "events", ["create", "patch"]),
    ("events.k8s.io", "events", ["create", "patch"]),
    ("", "pods", READ),
    ("storage.k8s.io", "storageclasses", READ),
    ("", "namespaces", READ),
    ("apiextensions.k8s.io", "customresourcedefinitions", READ),
]


def _rules() -> list[dict[str, Any]]:
    verbs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for group, resource, allowed in COMMON:
        verbs[(group, resource)] |= set(allowed)
    for kind in catalog.KINDS:
        for api in kind.apis():
            verbs[(api.group, api.plural)] |= {"get", "list", "watch", "patch", "update", "delete"}
            verbs[(api.group, f"{api.plural}/status")] |= {"get", "patch", "update"}
        for child in getattr(importlib.import_module(kind.handlers_module), "CHILDREN", ()):
            verbs[(child.group, child.plural)] |= set(WRITE)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(allowed)}
        for (group, resource), allowed in sorted(verbs.items())
    ]


def manifests() -> list[dict[str, Any]]:
    meta = {"name": NAME, "labels": LABELS}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE, "labels": LABELS}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {**meta, "namespace": NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": meta, "rules": _rules()},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": NAME},
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}],
        },
    ]
