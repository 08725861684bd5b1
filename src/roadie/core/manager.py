"""The manager: the informers every enabled controller needs, wired to their work queues.

One informer per kind (per watched namespace when the operator is namespaced) and one per child
resource, shared by every kind that makes such children, each filtered on the server by
`app.kubernetes.io/managed-by=roadie`: the operator's memory and CPU then grow with what it made,
not with the cluster. A child event wakes the parent its `roadie.dev/parent` pointer names.
Children are watched cluster-wide even by a namespaced operator, because some live outside the
parent's namespace (a PreviewEnvironment's namespace and everything in it).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from typing import Any

from roadie.core import cache, labels, sources
from roadie.core.controller import Controller, significant
from roadie.core.informer import Body, Informer, Source

log = logging.getLogger(__name__)
SELECTOR = f"{labels.MANAGED_BY}={labels.MANAGER}"
#: watched without a selector (few objects, none of them Roadie's), for diagnoses
CONTEXT = (sources.STORAGE_CLASSES,)


class Manager:
    def __init__(
        self,
        http: Any,
        controllers: Iterable[Controller],
        *,
        namespaces: tuple[str, ...] = (),
        watch_timeout: int = 300,
    ) -> None:
        self.controllers = list(controllers)
        self.informers: list[Informer] = []
        self._by_kind = {c.api.kind: c for c in self.controllers}
        cache.clear()
        for controller in self.controllers:
            scopes: tuple[str | None, ...] = namespaces if (namespaces and controller.api.namespaced) else (None,)
            for namespace in scopes:
                informer = Informer(controller.source, http, namespace=namespace, watch_timeout=watch_timeout)
                informer.add_handler(controller.on_event)
                for name, indexer in controller.indexes.items():
                    informer.add_index(name, indexer)
                self._add(informer)
        child_sources: list[Source] = []
        for controller in self.controllers:
            child_sources += [s for s in controller.children if s not in child_sources]
        for source in child_sources:
            informer = Informer(source, http, selector=SELECTOR, watch_timeout=watch_timeout)
            informer.add_index(cache.PARENT_INDEX, cache.parent_index)
            informer.add_handler(functools.partial(self._on_child, source))
            self._add(informer)
        if self.controllers:
            for source in CONTEXT:
                self._add(Informer(source, http, watch_timeout=watch_timeout))

    def _add(self, informer: Informer) -> None:
        self.informers.append(informer)
        cache.register(informer)

    def _on_child(self, source: Source, kind: str, obj: Body, old: Body | None) -> None:
        ref = labels.parse_parent_ref(((obj.get("metadata") or {}).get("annotations") or {}).get(labels.PARENT))
        if ref is None:
            return
        if kind == "MODIFIED" and old is not None and not source.status_wakes and not significant(old, obj):
            return  # only a status no reconcile reads changed
        controller = self._by_kind.get(ref[0])
        if controller is not None:
            controller.on_child(ref[1], ref[2])

    async def start(self, sync_timeout: float | None = 60.0) -> None:
        """Start the informers, wait for their first listing, then the workers: a reconcile
        never runs against a cache that has not seen the world yet."""
        for informer in self.informers:
            informer.start()
        waits = [informer.synced.wait() for informer in self.informers]
        await asyncio.wait_for(asyncio.gather(*waits), timeout=sync_timeout)
        for controller in self.controllers:
            controller.queue.start()
        log.info("caches synced: %s", ", ".join(f"{i.source.name}={len(i)}" for i in self.informers))

    async def stop(self) -> None:
        for controller in self.controllers:
            await controller.queue.stop()
        for informer in self.informers:
            await informer.stop()

    def problems(self) -> list[str]:
        """What is wrong with the machinery, for /healthz (empty when healthy)."""
        found = [f"watch of {i.source.name} failing" for i in self.informers if not i.healthy]
        found += [f"{c.api.kind} workers stopped" for c in self.controllers if not c.queue.healthy]
        return found
