"""The labels and annotations that mark what Roadie made, and point each child to its parent.

The `app.kubernetes.io/*` labels are the standard ones every dashboard groups by. The parent
pointer is an annotation, not an ownerReference alone, because some children live where an owner
reference cannot reach (a PreviewEnvironment's namespace is cluster-scoped).
"""

from __future__ import annotations

from roadie.core import naming

MANAGED_BY = "app.kubernetes.io/managed-by"
NAME = "app.kubernetes.io/name"
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
PART_OF = "app.kubernetes.io/part-of"
MANAGER = "roadie"
PARENT = "roadie.dev/parent"


def standard(kind: str, instance: str, component: str) -> dict[str, str]:
    return {
        NAME: kind.lower(),
        INSTANCE: naming.label_value(instance),
        COMPONENT: component,
        PART_OF: "roadie",
        MANAGED_BY: MANAGER,
    }


def parent_ref(kind: str, namespace: str | None, name: str) -> str:
    return f"{kind}/{namespace or ''}/{name}"


def parse_parent_ref(value: str | None) -> tuple[str, str | None, str] | None:
    if not value or value.count("/") != 2:
        return None
    kind, namespace, name = value.split("/")
    return kind, namespace or None, name
