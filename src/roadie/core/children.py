"""Writing children: owner references, parent pointers, and writes that skip what is already so.

Builders in each kind are pure functions that return plain manifests; this module is the only
place that turns them into API calls. A child that the cache holds and that already carries every
field the manifest sets is left alone (no request at all); one that differs is server-side
applied under the field manager `roadie`; one the cache does not hold is created, never applied,
so an object of that name that someone else made is refused rather than taken over. Every write's
response goes back into the cache, so the next reconcile reads what was just written. Apply and
create are idempotent here, so a reconcile killed at any line and run again converges on the same
objects, never on duplicates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar, cast

from lightkube import codecs
from lightkube.core.exceptions import ApiError

from roadie.core import cache, client, labels, sources

Manifest = dict[str, Any]
Body = dict[str, Any]
T = TypeVar("T")


def owner_reference(body: Any, *, controller: bool = True) -> dict[str, Any]:
    """An ownerReference to `body` (a plain dict), blocking owner deletion."""
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def metadata(
    *,
    name: str,
    namespace: str | None,
    kind: str,
    instance: str,
    component: str,
    parent: Any,
    owned: bool = True,
    extra_labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Metadata every child carries: standard labels, the parent pointer, and (when it can be
    honoured, i.e. same namespace) an ownerReference for garbage collection."""
    meta: dict[str, Any] = {
        "name": name,
        "labels": {**labels.standard(kind, instance, component), **(extra_labels or {})},
        "annotations": {
            labels.PARENT: labels.parent_ref(
                parent["kind"], parent["metadata"].get("namespace"), parent["metadata"]["name"]
            ),
            **(annotations or {}),
        },
    }
    if namespace is not None:
        meta["namespace"] = namespace
    if owned:
        meta["ownerReferences"] = [owner_reference(parent)]
    return meta


class ForeignObjectError(Exception):
    """A child's name is taken by an object this parent does not own; nothing was changed."""


def _meta(obj: Any) -> dict[str, Any]:
    return obj.get("metadata") or {}


def holder_of(existing: Body) -> str:
    """Who holds an object, in words: its controller owner, Roadie's parent pointer, or nobody."""
    meta = _meta(existing)
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            return f"{ref.get('kind')} {ref.get('name')!r}"
    pointer = labels.parse_parent_ref((meta.get("annotations") or {}).get(labels.PARENT))
    if pointer:
        return f"{pointer[0]} {pointer[2]!r}"
    return "no Roadie object (it was made by someone else)"


def owned_by(existing: Body, parent: Any) -> bool:
    uid = parent["metadata"]["uid"]
    return any(ref.get("uid") == uid for ref in _meta(existing).get("ownerReferences") or [])


#: Status codes with which the API server refuses a child as built: no retry will change them.
REJECTED = (400, 403, 422)


def satisfied(desired: Any, live: Any) -> bool:
    """True if `live` already holds every value `desired` sets (what the API server added, such
    as defaults and status, is ignored): the test for skipping a write."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return False
        return all(satisfied(value, live.get(key)) for key, value in desired.items())
    if isinstance(desired, list):
        if not isinstance(live, list) or len(desired) != len(live):
            return False
        return all(satisfied(d, v) for d, v in zip(desired, live, strict=True))
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live
    if (
        isinstance(desired, int | float | str)
        and isinstance(live, int | float | str)
        and type(desired) is not type(live)
    ):
        return str(desired) == str(live)  # a quantity written as 2 and read back as "2"
    return bool(desired == live)


def _as_dict(obj: Any) -> Body:
    return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)


def _foreign(manifest: Manifest, existing: Body) -> ForeignObjectError:
    return ForeignObjectError(
        f"{manifest['kind']} {manifest['metadata']['name']!r} already exists and belongs to "
        f"{holder_of(existing)}; delete or rename one of them"
    )


def cached(manifest: Manifest) -> Body | None:
    source = sources.for_manifest(manifest)
    meta = manifest["metadata"]
    return cache.get(source, meta.get("namespace"), meta["name"]) if source else None


def _point_pods(manifest: Manifest) -> Manifest:
    """Give a workload's pod template the parent pointer too, so its pods' events (an image that
    will not pull, a crash) wake the parent at once, like any other child's."""
    template = (manifest.get("spec") or {}).get("template")
    pointer = ((manifest.get("metadata") or {}).get("annotations") or {}).get(labels.PARENT)
    if not isinstance(template, dict) or not pointer:
        return manifest
    meta = template.get("metadata") or {}
    if (meta.get("annotations") or {}).get(labels.PARENT) == pointer:
        return manifest
    meta = {**meta, "annotations": {**(meta.get("annotations") or {}), labels.PARENT: pointer}}
    return {**manifest, "spec": {**manifest["spec"], "template": {**template, "metadata": meta}}}


def _refuse_foreign(manifest: Manifest, existing: Body | None, parent: Any | None) -> None:
    if existing is not None and parent is not None and not owned_by(existing, parent):
        raise _foreign(manifest, existing)


async def apply(manifest: Manifest, parent: Any | None = None) -> Body:
    """Make the child as `manifest` says, with as few requests as that takes (often none).

    With `parent`, an object of that name that `parent` does not own is left untouched and
    ForeignObjectError says who holds it: Roadie never takes over what another user, or another
    parent, made.
    """
    manifest = _point_pods(manifest)
    source = sources.for_manifest(manifest)
    watched = source is not None and cache.watched(source)
    existing = cached(manifest) if watched else None
    _refuse_foreign(manifest, existing, parent)
    if existing is not None and satisfied(manifest, existing):
        return existing
    if existing is None and (parent is not None or watched):
        # a create where the cache says there is nothing: cheaper for the API server than an
        # apply that creates; a name taken meanwhile (409) is applied below, or refused with
        # `parent`
        created = await _create(manifest, parent)
        if created is not None:
            return created
    result = _as_dict(await client.get().apply(codecs.from_dict(manifest), force=True))
    if source is not None:
        cache.observe(source, result)
    return result


async def _create(manifest: Manifest, parent: Any | None) -> Body | None:
    """Create the child (taken into the cache); None if one of that name already exists and is
    `parent`'s, or with no `parent`, exists at all (the cache was behind, or it is not watched)."""
    obj = codecs.from_dict(manifest)
    try:
        created = _as_dict(await client.get().create(obj))
    except ApiError as error:
        if error.status.code != 409:
            raise
        if parent is not None:
            meta = manifest["metadata"]
            existing = await get_or_none(type(obj), meta["name"], meta.get("namespace"))
            _refuse_foreign(manifest, existing, parent)
        return None
    source = sources.for_manifest(manifest)
    if source is not None:
        cache.observe(source, created)
    return created


async def create_if_absent(manifest: Manifest, parent: Any | None = None) -> bool:
    """Create once and never overwrite (for generated secrets); True if this call created it.

    With `parent`, the same refusal as `apply`: an existing object `parent` does not own raises
    ForeignObjectError.
    """
    manifest = _point_pods(manifest)
    existing = cached(manifest)
    _refuse_foreign(manifest, existing, parent)
    if existing is not None:
        return False
    return await _create(manifest, parent) is not None


async def together(*writes: Awaitable[T]) -> list[T]:
    """Send writes that do not depend on one another at once, and return their results in order.

    A new object's children are independent (each is created whole, none reads another), and on
    a busy API server a round trip is most of what a reconcile costs: four children sent one after
    another take four. Every write is waited for before the first failure (in the order given)
    is raised, so no request is left in flight behind the reconcile, and the caller's handling of
    a refused child (ForeignObjectError, ApiError) is the same as for one write.
    """
    results = await asyncio.gather(*writes, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(list[T], results)


async def delete(resource: Any, name: str, namespace: str | None = None, **options: Any) -> bool:
    """Delete, treating 'already gone' as success; True if this call deleted it."""
    try:
        await client.get().delete(resource, name, namespace=namespace, **options)
    except ApiError as error:
        if error.status.code == 404:
            return False
        raise
    return True


async def get_or_none(resource: Any, name: str, namespace: str | None = None) -> Body | None:
    """A GET, for what no informer holds (an object someone else made); None if absent."""
    try:
        return _as_dict(await client.get().get(resource, name, namespace=namespace))
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise


async def prune(kinds: dict[Any, Any], keep: set[tuple[str, str]], parent: Any) -> list[str]:
    """Delete cached children of `parent` (only those it owns) that are no longer wanted.

    `kinds` maps each child Source to its lightkube resource; `keep` holds (kind, name) pairs.
    This is how shrinking a spec removes what it no longer asks for, reading the cache, never
    listing, and never touching anything another object owns.
    """
    deleted: list[str] = []
    for source, resource in kinds.items():
        for obj in cache.children(source, parent):
            meta = obj["metadata"]
            if (source.kind, meta["name"]) in keep or not owned_by(obj, parent) or meta.get("deletionTimestamp"):
                continue
            if await delete(resource, meta["name"], meta.get("namespace")):
                deleted.append(f"{source.kind}/{meta['name']}")
    return deleted
