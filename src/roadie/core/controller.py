"""The reconcile loop every kind shares, wired into kopf.

Each kind supplies one level-based `reconcile(body)`; this module calls it for every watch event
of the kind (the initial listing at startup included, which is how a restarted operator resumes),
for every change of a child it made (so a deleted Deployment is put back at once), on a resync
deadline after each reconcile, and when a deadline the reconcile asked for comes due. The resync
is a deadline in the core scheduler rather than a kopf timer, because kopf guards its timers with
a finalizer, which would leave objects undeletable while the operator is away. Reconciles of one object never
overlap; a failing one is retried with capped exponential backoff. Nothing is stored in
annotations: kopf's `on.event` and timers keep no progress state.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import kopf
from lightkube.core.exceptions import ApiError

from roadie.core import api as api_mod
from roadie.core import client, labels, metrics, schedule

Body = dict[str, Any]
#: A reconcile returns seconds until it wants to run again (None: only on the next change).
Reconcile = Callable[[Body], Awaitable[float | None]]
Cleanup = Callable[[Body], Awaitable[None]]

log = logging.getLogger(__name__)
MAX_BACKOFF = 60.0


@dataclasses.dataclass(frozen=True)
class ChildKind:
    group: str
    version: str
    plural: str


@dataclasses.dataclass
class Controller:
    api: api_mod.Api
    reconcile: Reconcile
    children: tuple[ChildKind, ...] = ()
    deleted: Cleanup | None = None
    resync_seconds: float = 60.0
    _locks: dict[tuple[str, str], asyncio.Lock] = dataclasses.field(default_factory=dict)
    _failures: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)

    def key(self, namespace: str | None, name: str) -> tuple[str, str, str]:
        return (self.api.kind, namespace or "", name)

    async def run(self, body: Body) -> None:
        """Reconcile one object now, serialised per object, with retry on failure.

        The object is read afresh under the lock: watch events queue up, and a reconcile that
        acted on a stale copy would announce again what the previous one already announced.
        """
        meta = body["metadata"]
        namespace, name = meta.get("namespace") or "", meta["name"]
        lock = self._locks.setdefault((namespace, name), asyncio.Lock())
        async with lock:
            started = time.monotonic()
            try:
                fresh = await self.fetch(namespace, name)
                if fresh is None:
                    return
                again = await self.reconcile(fresh)
            except Exception as error:
                failures = self._failures.get((namespace, name), 0) + 1
                self._failures[(namespace, name)] = failures
                delay = min(MAX_BACKOFF, 0.5 * 2 ** min(failures, 10))
                level = logging.INFO if _is_conflict(error) else logging.ERROR
                log.log(
                    level,
                    "reconcile of %s %s/%s failed (retry in %.1fs): %s",
                    *(self.api.kind, namespace, name, delay, error),
                    exc_info=level == logging.ERROR,
                )
                metrics.RECONCILES.labels(self.api.kind, "error").inc()
                self.requeue(namespace, name, delay)
                return
            finally:
                metrics.RECONCILE_SECONDS.labels(self.api.kind).observe(time.monotonic() - started)
            self._failures.pop((namespace, name), None)
            metrics.RECONCILES.labels(self.api.kind, "ok").inc()
            # the resync: the shortest wait wins; jitter keeps thousands of objects from waking at once
            resync = self.resync_seconds * random.uniform(0.9, 1.1)
            self.requeue(namespace, name, resync if again is None else min(again, resync))

    def requeue(self, namespace: str | None, name: str, delay: float) -> None:
        """Reconcile the latest version of the object after `delay` seconds."""
        sched = schedule.get()
        sched.at(
            (*self.key(namespace, name), "requeue"), time.time() + delay, lambda: self.fetch_and_run(namespace, name)
        )
        metrics.DEADLINES.set(len(sched))

    def at(
        self, namespace: str | None, name: str, purpose: str, when: Any, action: Callable[[], Awaitable[None]]
    ) -> None:
        """Schedule a kind-specific action (an expiry, a warning) for this object."""
        sched = schedule.get()
        sched.at((*self.key(namespace, name), purpose), when, action)
        metrics.DEADLINES.set(len(sched))

    async def fetch(self, namespace: str | None, name: str) -> Body | None:
        try:
            obj = await client.get().get(client.resource(self.api), name, namespace=namespace or None)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise
        return obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)

    async def fetch_and_run(self, namespace: str | None, name: str) -> None:
        await self.run({"metadata": {"namespace": namespace, "name": name}})

    async def forget(self, body: Body) -> None:
        meta = body["metadata"]
        namespace, name = meta.get("namespace") or "", meta["name"]
        schedule.get().cancel_prefix(self.key(namespace, name))
        self._locks.pop((namespace, name), None)
        self._failures.pop((namespace, name), None)
        if self.deleted is not None:
            await self.deleted(body)


def _is_conflict(error: Exception) -> bool:
    return isinstance(error, ApiError) and error.status.code == 409


def _plain(body: Any) -> Body:
    return copy.deepcopy(dict(body))


def register(controller: Controller, registry: kopf.OperatorRegistry | None = None) -> Controller:
    """Register the kopf handlers of one kind (explicit ids, so logs name them)."""
    api = controller.api
    kind = api.kind.lower()

    @kopf.on.event(group=api.group, version=api.version, plural=api.plural, id=f"{kind}-watch", registry=registry)
    async def on_event(event: Any, **_: Any) -> None:
        body = _plain(event["object"])
        if event.get("type") == "DELETED":
            await controller.forget(body)
        else:
            await controller.run(body)

    for child in controller.children:

        @kopf.on.event(
            group=child.group,
            version=child.version,
            plural=child.plural,
            registry=registry,
            id=f"{kind}-child-{child.plural}",
            labels={labels.NAME: kind, labels.MANAGED_BY: labels.MANAGER},
        )
        async def on_child(body: Any, **_: Any) -> None:
            ref = labels.parse_parent_ref((body.get("metadata", {}).get("annotations") or {}).get(labels.PARENT))
            if ref is None or ref[0] != api.kind:
                return
            _kind, namespace, name = ref
            await controller.fetch_and_run(namespace, name)

    return controller
