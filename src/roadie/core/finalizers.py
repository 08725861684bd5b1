"""Finalizers written by the reconcile itself, for kinds whose cleanup no ownerReference can do
(a cluster-scoped child, something outside the cluster).

The whole list is sent in a merge patch guarded by `resourceVersion`, since other controllers may
edit the same list; on a conflict it is read again and retried at once rather than backed off.
"""

from __future__ import annotations

from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.types import PatchType

from roadie.core import api as api_mod
from roadie.core import children, client

ATTEMPTS = 5


def has(body: dict[str, Any], finalizer: str) -> bool:
    return finalizer in (body["metadata"].get("finalizers") or [])


async def add(api: api_mod.Api, body: dict[str, Any], finalizer: str) -> None:
    """Put the finalizer on before anything is created, so nothing is ever left behind."""
    await _edit(api, body, finalizer, add=True)


async def remove(api: api_mod.Api, body: dict[str, Any], finalizer: str) -> None:
    await _edit(api, body, finalizer, add=False)


async def _edit(api: api_mod.Api, body: dict[str, Any], finalizer: str, *, add: bool) -> None:
    meta = body["metadata"]
    resource = client.resource(api)
    current: Any = body
    for attempt in range(ATTEMPTS):
        cur_meta = current["metadata"]
        present = list(cur_meta.get("finalizers") or [])
        if (finalizer in present) == add:
            return
        wanted = [*present, finalizer] if add else [f for f in present if f != finalizer]
        patch = {"metadata": {"finalizers": wanted, "resourceVersion": cur_meta["resourceVersion"]}}
        try:
            await client.get().patch(
                resource, meta["name"], patch, namespace=meta.get("namespace"), patch_type=PatchType.MERGE
            )
            return
        except ApiError as error:
            if error.status.code == 404 and not add:
                return
            if error.status.code != 409 or attempt == ATTEMPTS - 1:
                raise
        fresh = await children.get_or_none(resource, meta["name"], meta.get("namespace"))
        if fresh is None:
            return
        current = fresh
