"""The one status writer: each reconcile computes the whole status and patches it once.

A merge patch of the status subresource, sent only when something changed, so that a steady
object costs no writes. The response goes into the cache at once, so the watch event that echoes
the operator's own write is no news and wakes no reconcile.
"""

from __future__ import annotations

from typing import Any

from lightkube.types import PatchType

from roadie.core import api as api_mod
from roadie.core import cache, client, sources


def changed(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    old = old or {}
    return any(old.get(k) != v for k, v in new.items())


async def write(api: api_mod.Api, body: Any, status: dict[str, Any]) -> bool:
    """Patch `status` onto the object if it differs from what `body` holds; True if written."""
    if not changed(body.get("status"), status):
        return False
    meta = body["metadata"]
    resource = client.resource(api)
    result = await client.get().patch(
        resource.Status,
        meta["name"],
        {"status": status},
        namespace=meta.get("namespace"),
        patch_type=PatchType.MERGE,
    )
    cache.observe(sources.of_api(api), result)
    return True
