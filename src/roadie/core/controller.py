"""One controller per kind: its reconcile, the children it watches, and its work queue.

A kind supplies one level-based `reconcile(body)`; the controller runs it from its work queue
whenever the object changes (beyond the operator's own status write), a child it made changes, a
deadline it asked for comes due, or its resync comes round. The object is read from the cache, so
a reconcile reads memory; the kind writes through `roadie.core.children` and `core.status`, whose
responses go back into the cache. The resync is spread evenly over its period by each object's
uid, so ten thousand objects do not wake together. Nothing is stored in annotations.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from roadie.core import api as api_mod
from roadie.core import cache, client, metrics, schedule, sources, workqueue
from roadie.core.informer import Indexer, Source

Body = dict[str, Any]
#: A reconcile returns seconds until it wants to run again, None (only on the next change), or WAIT.
Reconcile = Callable[[Body], Awaitable[float | None]]
Cleanup = Callable[[Body], Awaitable[None]]
WAIT = workqueue.WAIT

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Controller:
    api: api_mod.Api
    reconcile: Reconcile
    #: the resources this kind creates; their events wake the parent named by `roadie.dev/parent`
    children: tuple[Source, ...] = ()
    #: called once the object is gone from the API (after finalizers), for in-memory clean-up
    deleted: Cleanup | None = None
    #: extra indexes on this kind's own cache (name -> values of an object)
    indexes: dict[str, Indexer] = dataclasses.field(default_factory=dict)
    resync_seconds: float = 600.0
    workers: int = 16
    #: the kind's own objects cached as compact JSON (memory), or as dicts (reads cost nothing; for a
    #: kind whose objects are few, large and read on every event, and never changed by a reader)
    compact: bool = True
    queue: workqueue.WorkQueue = dataclasses.field(init=False)
    _cleanups: set[asyncio.Task[None]] = dataclasses.field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        self.queue = workqueue.WorkQueue(self.api.kind, self._handle, workers=self.workers)

    def configure(self, *, resync_seconds: float, workers: int) -> None:
        self.resync_seconds = resync_seconds
        self.workers = workers
        self.queue = workqueue.WorkQueue(self.api.kind, self._handle, workers=workers)

    @functools.cached_property
    def source(self) -> Source:
        """Built once: every cache read and every child's event goes through it."""
        return dataclasses.replace(sources.of_api(self.api), compact=self.compact)

    # -- what kinds call -----------------------------------------------------------------------
    def get(self, namespace: str | None, name: str) -> Body | None:
        return cache.get(self.source, namespace, name)

    def requeue(self, namespace: str | None, name: str, delay: float = 0.0) -> None:
        """Reconcile the object (as the cache holds it then) after `delay` seconds."""
        self.queue.add_after((namespace or "", name), delay)

    def at(self, namespace: str | None, name: str, purpose: str, when: Any) -> None:
        """At `when` (exactly: the core scheduler fires then), reconcile the object; one entry
        per purpose, replaced when scheduled again."""
        key = (namespace or "", name)
        schedule.get().at((self.api.kind, key, purpose), when, lambda: self.queue.add_now(key))

    def cancel(self, namespace: str | None, name: str, purpose: str) -> None:
        schedule.get().cancel((self.api.kind, (namespace or "", name), purpose))

    # -- what the manager calls ----------------------------------------------------------------
    def on_event(self, kind: str, obj: Body, old: Body | None) -> None:
        key = (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
        if kind == "DELETED":
            self.queue.forget(key)
            if self.deleted is not None:
                self.queue_cleanup(obj)
            return
        if old is not None and not significant(old, obj):
            return  # only status or bookkeeping changed: the echo of a status write
        self.queue.add(key)

    def on_child(self, namespace: str | None, name: str) -> None:
        body = self.get(namespace, name)
        if body is not None and past_helping(body):
            return  # its children going one by one (the garbage collector's work) change nothing
        self.queue.add((namespace or "", name))

    def queue_cleanup(self, obj: Body) -> None:
        assert self.deleted is not None
        task = asyncio.get_running_loop().create_task(self._cleanup(obj))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _cleanup(self, obj: Body) -> None:
        assert self.deleted is not None
        try:
            await self.deleted(obj)
        except Exception:
            log.exception("clean-up after %s %s failed", self.api.kind, obj["metadata"].get("name"))

    async def _handle(self, key: Hashable) -> float | None:
        assert isinstance(key, tuple)
        namespace: str = key[0]
        name: str = key[1]
        body = self.get(namespace, name)
        if body is None:
            self.queue.forget(key)
            return None
        started = time.monotonic()
        try:
            again = await self.reconcile(body)
        except Exception as error:
            level = logging.INFO if client.transient(error) else logging.ERROR
            log.log(
                level,
                "reconcile of %s %s/%s failed (will retry): %s",
                *(self.api.kind, namespace, name, error),
                exc_info=level == logging.ERROR,
            )
            metrics.RECONCILES.labels(self.api.kind, "error").inc()
            raise
        finally:
            metrics.RECONCILE_SECONDS.labels(self.api.kind).observe(time.monotonic() - started)
        metrics.RECONCILES.labels(self.api.kind, "ok").inc()
        if self.resync_seconds > 0:
            self.queue.add_after(key, resync_delay(body, self.resync_seconds, time.time()), purpose="resync")
        return again


def significant(old: Body, new: Body) -> bool:
    """Did anything but status and bookkeeping change? (spec, labels, annotations, finalizers,
    deletion, owners)"""
    if old.get("spec") != new.get("spec"):
        return True
    a, b = old.get("metadata") or {}, new.get("metadata") or {}
    return any(
        a.get(field) != b.get(field)
        for field in ("generation", "labels", "annotations", "finalizers", "deletionTimestamp", "ownerReferences")
    )


#: Finalizers the API server's garbage collector holds an object by while its children go.
GC_FINALIZERS = frozenset({"foregroundDeletion", "orphan"})


def past_helping(body: Body) -> bool:
    """Being deleted with no finalizer of its own kind left: what remains is the garbage
    collector's, so a child's event cannot give its reconcile anything to do (the deletion itself
    arrived as the object's own event). A kind that cleans up holds a finalizer and is still woken:
    a PreviewEnvironment waits on its namespace, a Workspace on its Jobs. Without this, a burst of
    expiries reconciled each terminating Workshop once per child deleted, beside the deletes that
    were due."""
    meta = body.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) and set(meta.get("finalizers") or ()) <= GC_FINALIZERS


def resync_delay(body: Body, period: float, now: float) -> float:
    """Seconds to this object's next resync: at a fixed phase of the period given by its uid, so
    resyncs are spread evenly however the objects were created, and at least half a period on."""
    uid = (body.get("metadata") or {}).get("uid") or body["metadata"]["name"]
    phase = (zlib.crc32(uid.encode()) / 2**32) * period
    moment = (now // period) * period + phase
    while moment < now + period / 2:
        moment += period
    return moment - now
