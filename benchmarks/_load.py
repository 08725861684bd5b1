"""The load `bench_core.py` puts on a cluster, and the watch it measures the answer with.

Objects are created from one asyncio client at a bounded concurrency; what they become is
followed with the operator's own informer (list, then watch, reconnecting on its own), so the
benchmark's polling adds nothing to the API server's count and a watch survives an API server
restart. The baseline builds the same children with the kinds' own pure builders and creates them
with a bare lightkube AsyncClient: what the control plane costs without any operator.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import functools
import pathlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import lightkube
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import ConfigMap

from roadie import settings as settings_mod
from roadie.core import labels
from roadie.core.informer import Informer, Source
from roadie.preview import children as pe_children
from roadie.preview import models as pe_models
from roadie.workshop import children as ws_children
from roadie.workshop import models as ws_models

Body = dict[str, Any]
WORKSHOPS = Source("orchestra.io", "v1", "Workshop", "workshops")
PREVIEWS = Source("devops.orima.com", "v1", "PreviewEnvironment", "previewenvironments")
DEPLOYMENTS = Source("apps", "v1", "Deployment", "deployments")
#: Small requests, so that nodes run out of pod slots, not of CPU, whatever the count.
WORKSHOP_RESOURCES = {"cpu": "100m", "memory": "128Mi", "cpuRequest": "5m", "memoryRequest": "16Mi"}
OPERATOR_ENV = {"ROADIE_PREVIEW_CPU_REQUEST": "5m", "ROADIE_PREVIEW_MEMORY_REQUEST": "16Mi"}
PREVIEW_SETTINGS = settings_mod.PreviewSettings(cpu_request="5m", memory_request="16Mi")
BASELINE_LABEL = "roadie.dev/bench-baseline"
#: registered with lightkube, so that `codecs.from_dict` knows the two kinds
WORKSHOP_RESOURCE = create_namespaced_resource("orchestra.io", "v1", "Workshop", "workshops")
PREVIEW_RESOURCE = create_namespaced_resource("devops.orima.com", "v1", "PreviewEnvironment", "previewenvironments")
KINDS = (WORKSHOP_RESOURCE, PREVIEW_RESOURCE)


class Counted:
    """An AsyncClient whose own requests are counted, to subtract them from the API server's."""

    def __init__(self, kubeconfig: pathlib.Path) -> None:
        self.client = lightkube.AsyncClient(
            config=lightkube.KubeConfig.from_file(kubeconfig), field_manager="roadie-bench"
        )
        self.requests = 0
        http = self.client._client._client

        async def count(request: Any) -> None:
            if request.url.params.get("watch") not in ("true", "1"):
                self.requests += 1

        http.event_hooks = {**http.event_hooks, "request": [*http.event_hooks.get("request", []), count]}

    @property
    def http(self) -> Any:
        return self.client._client._client

    async def close(self) -> None:
        await self.client.close()


def workshop(namespace: str, name: str, duration: str = "4h") -> Body:
    return {
        "apiVersion": "orchestra.io/v1",
        "kind": "Workshop",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"name": name, "duration": duration, "resources": WORKSHOP_RESOURCES, "storage": {"size": "1Gi"}},
    }


def preview(namespace: str, number: int, ttl: int | None = None) -> Body:
    spec: Body = {"pr_number": number, "branch_name": f"feature/{number}", "image": "example/app", "image_tag": "v1"}
    if ttl:
        spec["ttl_seconds"] = ttl
    return {
        "apiVersion": "devops.orima.com/v1",
        "kind": "PreviewEnvironment",
        "metadata": {"name": f"pr-{number}", "namespace": namespace},
        "spec": spec,
    }


def _unmanaged(manifest: Body) -> Body:
    """A baseline child: no owner (no parent exists) and out of the operator's selector, marked
    as the benchmark's so its Deployments can be watched."""
    doc = copy.deepcopy(manifest)
    meta = doc["metadata"]
    meta.pop("ownerReferences", None)
    meta.setdefault("labels", {}).pop(labels.MANAGED_BY, None)
    meta["labels"][BASELINE_LABEL] = "true"
    template = (doc.get("spec") or {}).get("template")
    if isinstance(template, dict):
        template.get("metadata", {}).get("labels", {}).pop(labels.MANAGED_BY, None)
    return doc


def workshop_children(namespace: str, name: str) -> list[Body]:
    parent = {
        "apiVersion": "orchestra.io/v1",
        "kind": "Workshop",
        "metadata": {"name": name, "namespace": namespace, "uid": "0"},
    }
    spec = ws_models.WorkshopSpec.model_validate(workshop(namespace, name)["spec"])
    session = ws_children.sessions(spec)[0]
    built = [
        ws_children.credentials(parent, spec, session, "rstudio", "not-a-secret"),
        ws_children.claim(parent, spec, session),
        ws_children.deployment(parent, spec, session, 8787),
        ws_children.service(parent, spec, session, 8787),
    ]
    return [_unmanaged(doc) for doc in built]


def preview_children(namespace: str, number: int) -> list[Body]:
    return [doc for round_ in preview_rounds(namespace, number) for doc in round_]


async def create(counted: Counted, docs: list[Body]) -> None:
    """Create in order, one after another."""
    for doc in docs:
        try:
            await counted.client.create(codecs.from_dict(doc))
        except ApiError as error:
            if error.status.code != 409:
                raise


async def create_owned(counted: Counted, docs: list[Body]) -> None:
    """Create `docs` owned by a ConfigMap made first in their namespace: children with an owner,
    as the operator's are, so that the garbage collector tracks the same graph in both runs (the
    parent a user creates in the operator's run costs the benchmark one create there, as this
    ConfigMap does here)."""
    meta = docs[0]["metadata"]
    owner = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {k: meta[k] for k in ("name", "namespace")}}
    try:
        made = await counted.client.create(codecs.from_dict(owner))
        uid = made.metadata.uid
    except ApiError as error:
        if error.status.code != 409:
            raise
        uid = (await counted.client.get(ConfigMap, meta["name"], namespace=meta["namespace"])).metadata.uid
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": meta["name"], "uid": uid,
           "controller": True, "blockOwnerDeletion": True}  # fmt: skip
    await create_together(counted, [{**doc, "metadata": {**doc["metadata"], "ownerReferences": [ref]}} for doc in docs])


async def create_together(counted: Counted, docs: list[Body]) -> None:
    """Create `docs` at once, as a reconcile sends a parent's independent children."""
    await asyncio.gather(*(create(counted, [doc]) for doc in docs))


def preview_rounds(namespace: str, number: int) -> list[list[Body]]:
    """A PreviewEnvironment's namespace, then its children in the reconcile's rounds."""
    body = preview(namespace, number)
    body["metadata"]["uid"] = "0"
    spec = pe_models.PreviewEnvironmentSpec.model_validate(body["spec"])
    eff = pe_children.effective(spec, PREVIEW_SETTINGS)
    rounds = [[pe_children.namespace(body, spec, eff)]]
    rounds += [[m for _, m in round_] for round_ in pe_children.rounds(pe_children.inside(body, spec, eff))]
    return [[_unmanaged(doc) for doc in round_] for round_ in rounds]


async def create_rounds(counted: Counted, rounds: list[list[Body]]) -> None:
    for round_ in rounds:
        await create_together(counted, round_)


def jobs(counted: Counted, groups: Sequence[list[Body]]) -> list[Callable[[], Awaitable[None]]]:
    """One job per group of documents (a parent, or one parent's children)."""
    return [functools.partial(create, counted, group) for group in groups]


async def run_all(jobs: Sequence[Callable[[], Awaitable[Any]]], concurrency: int) -> None:
    """Run every job, `concurrency` at a time (the operator's worker count, for the baseline)."""
    queue: asyncio.Queue[Callable[[], Awaitable[Any]]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            job = queue.get_nowait()
            await job()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


class Follow:
    """An informer on one resource, keeping for each object the first moment a test held true."""

    def __init__(self, counted: Counted, source: Source, test: Callable[[Body], bool], **kw: Any) -> None:
        self.informer = Informer(source, counted.http, **kw)
        self.test = test
        self.first: dict[tuple[str, str], float] = {}
        self.last: dict[tuple[str, str], Body] = {}
        self.informer.add_handler(self._on)

    def _on(self, kind: str, obj: Body, _old: Body | None) -> None:
        key = (obj["metadata"].get("namespace") or "", obj["metadata"]["name"])
        self.last[key] = obj
        if key not in self.first and (self.test(obj) or (kind == "DELETED" and self.test({**obj, "gone": True}))):
            self.first[key] = time.time()

    async def start(self) -> None:
        self.informer.start()
        await self.informer.synced.wait()

    async def until(self, count: int, limit: float) -> None:
        deadline = time.monotonic() + limit
        while len(self.first) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"only {len(self.first)} of {count} {self.informer.source.plural} got there in {limit:.0f}s"
                )
            await asyncio.sleep(0.2)

    async def seen(self, key: tuple[str, str], limit: float) -> float:
        """The moment `key` first passed the test, waiting up to `limit` seconds for it."""
        deadline = time.monotonic() + limit
        while key not in self.first:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{key} did not get there in {limit:.0f}s")
            await asyncio.sleep(0.1)
        return self.first[key]

    def timeline(self, start: float) -> list[tuple[float, int]]:
        return [(t - start, i + 1) for i, t in enumerate(sorted(self.first.values()))]

    async def stop(self) -> None:
        await self.informer.stop()


def phase_ready(obj: Body) -> bool:
    return (obj.get("status") or {}).get("phase") == "Ready"


def available(obj: Body) -> bool:
    return int((obj.get("status") or {}).get("availableReplicas") or 0) >= 1


def deleting(obj: Body) -> bool:
    return bool(obj.get("gone") or obj["metadata"].get("deletionTimestamp"))


def epoch(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def expiry_lateness(follow: Follow) -> tuple[list[float], list[float]]:
    """For each object followed until deleting: the moment first seen deleting, and the API
    server's `deletionTimestamp` (whole seconds), each minus its `status.expiresAt`."""
    seen_late, api_late = [], []
    for key, seen in follow.first.items():
        obj = follow.last[key]
        expires = (obj.get("status") or {}).get("expiresAt")
        if not expires:
            continue
        due = epoch(expires)
        seen_late.append(seen - due)
        stamp = obj["metadata"].get("deletionTimestamp")
        if stamp:
            api_late.append(epoch(stamp) - due)
    return seen_late, api_late
