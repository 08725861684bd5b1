"""Where reconciles read the world: the informers' caches, by resource and namespace.

The operator's manager fills this registry at start-up; kinds read it through these functions
and never learn which informer (cluster-wide or per namespace) holds an object. A resource that
is not cached (no kind watches it) answers None, and writers then fall back to the API.
"""

from __future__ import annotations

from typing import Any

from roadie.core import labels
from roadie.core.informer import Body, Informer, Source

PARENT_INDEX = "parent"

_informers: dict[Source, dict[str, Informer]] = {}


def parent_index(obj: Body) -> list[str]:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(labels.PARENT)
    return [value] if value else []


def register(informer: Informer) -> None:
    _informers.setdefault(informer.source, {})[informer.namespace or ""] = informer


def clear() -> None:
    _informers.clear()


def informers() -> list[Informer]:
    return [inf for by_ns in _informers.values() for inf in by_ns.values()]


def watched(source: Source) -> bool:
    return source in _informers


def _for(source: Source, namespace: str | None) -> Informer | None:
    by_ns = _informers.get(source)
    if not by_ns:
        return None
    return by_ns.get("") or by_ns.get(namespace or "")


def get(source: Source, namespace: str | None, name: str) -> Body | None:
    informer = _for(source, namespace)
    return informer.get(namespace, name) if informer else None


def children(source: Source, parent: Any) -> list[Body]:
    """The cached objects of `source` whose parent pointer names `parent`."""
    meta = parent["metadata"]
    ref = labels.parent_ref(parent["kind"], meta.get("namespace"), meta["name"])
    found: list[Body] = []
    for informer in (_informers.get(source) or {}).values():
        found += informer.by_index(PARENT_INDEX, ref)
    return found


def by_index(source: Source, index: str, value: str) -> list[Body]:
    found: list[Body] = []
    for informer in (_informers.get(source) or {}).values():
        found += informer.by_index(index, value)
    return found


def all_of(source: Source) -> list[Body]:
    return [obj for informer in (_informers.get(source) or {}).values() for obj in informer.objects()]


def observe(source: Source, obj: Any) -> None:
    """Take the response of the operator's own write into the cache (see Informer.observe)."""
    body = obj.to_dict() if hasattr(obj, "to_dict") else obj
    if not isinstance(body, dict) or "metadata" not in body:
        return
    informer = _for(source, (body["metadata"] or {}).get("namespace"))
    if informer is not None:
        informer.observe(body)
