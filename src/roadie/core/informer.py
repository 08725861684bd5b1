"""List-and-watch with a server-side label selector, into an in-memory cache: client-go's
informer, for the operator's own kinds and the children it makes.

Why not the framework's watches: they filter labels in the client, so every Deployment, Secret
and Pod in the cluster would stream through the operator; here the API server applies the
selector and unrelated objects cost nothing. Why a cache: a reconcile then reads children from
memory instead of a GET before each apply and a LIST to prune, and the operator's API traffic at
rest is the open watches alone.

The protocol is the API server's: a paged LIST gives the objects and a resourceVersion, a WATCH
from that version (with bookmarks, so a quiet resource still advances it) gives every change
after; a watch that times out is reopened from the last version seen, and `410 Gone` (the
version was compacted away) starts over with a LIST whose differences are reported as events.
Objects are kept trimmed of `managedFields` (the bulk of most objects) and, unless their source
says otherwise, as compact JSON bytes rather than dicts: a decoded Kubernetes object takes five to
six times the memory of its JSON, and the cache holds every child of every object Roadie owns
(P3 in docs/performance.md: 5,000 Workshops are 30,000 cached objects). A read decodes a fresh
copy (tens of microseconds for a Deployment), so no caller can change the cache by accident.
Pods, which the Observatory reads a thousand at a time, stay dicts and drop their spec instead
(`Source.slim`): every reader of a cached pod reads its labels and status, and pods are created,
never applied, so nothing compares their spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from roadie.core import metrics

Body = dict[str, Any]
Key = tuple[str, str]  # (namespace or "", name)
#: (event type, new object, previous cached object or None); DELETED passes the last state as new.
Handler = Callable[[str, Body, Body | None], None]
Indexer = Callable[[Body], Iterable[str]]

log = logging.getLogger(__name__)
PAGE = 500
MAX_BACKOFF = 30.0
UNHEALTHY_AFTER = 60.0
NOT_SERVED_RETRY = 60.0
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


@dataclasses.dataclass(frozen=True)
class Source:
    """What to watch: a resource, addressed as the API server's paths address it."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    #: keep cached objects as compact JSON (memory) rather than dicts (reads that cost nothing)
    compact: bool = dataclasses.field(default=True, compare=False)
    #: what to keep of each object, for a resource of which reconciles read only some parts
    slim: Callable[[Body], Body] | None = dataclasses.field(default=None, compare=False)
    #: whether a change of a child's status alone wakes its parent: not for kinds whose status
    #: no reconcile reads (a quota's usage, recounted by the controller-manager as pods come)
    status_wakes: bool = dataclasses.field(default=True, compare=False)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    def path(self, namespace: str | None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


def key_of(obj: Body) -> Key:
    meta = obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


def trim(obj: Body) -> Body:
    """Drop what no reconcile reads and what makes objects big: managedFields, last-applied."""
    meta = obj.get("metadata") or {}
    meta.pop("managedFields", None)
    annotations = meta.get("annotations")
    if annotations and LAST_APPLIED in annotations:
        annotations.pop(LAST_APPLIED)
    return obj


_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


def _unpack(payload: Body | bytes) -> Body:
    return _decode(payload) if isinstance(payload, bytes) else payload


def lines(buffer: bytearray, chunk: bytes) -> list[bytes]:
    """Complete newline-ended lines from a watch stream, the rest left in `buffer` for the next
    chunk: split as bytes, so each event is decoded once, straight from the wire."""
    buffer += chunk
    end = buffer.rfind(b"\n")
    if end < 0:
        return []
    done = bytes(buffer[:end])
    del buffer[: end + 1]
    return [line for line in done.split(b"\n") if line.strip()]


def _version(obj: Body | None) -> int:
    try:
        return int((obj or {}).get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:  # opaque versions are allowed by the API contract; etcd's are integers
        return 0


class GoneError(Exception):
    """The API server no longer has the resourceVersion asked for: list again."""


class NotServedError(Exception):
    """The API server does not serve this resource (its CRD is not installed)."""


class Informer:
    def __init__(
        self,
        source: Source,
        http: Any,
        *,
        namespace: str | None = None,
        selector: str | None = None,
        watch_timeout: int = 300,
    ) -> None:
        self.source = source
        self.namespace = namespace
        self.selector = selector
        self._http = http
        self._watch_timeout = watch_timeout
        #: key -> (resourceVersion, the object or its compact JSON)
        self._store: dict[Key, tuple[int, Body | bytes]] = {}
        self._handlers: list[Handler] = []
        self._indexers: dict[str, Indexer] = {}
        self._index: dict[str, dict[str, set[Key]]] = {}
        self._indexed: dict[str, dict[Key, tuple[str, ...]]] = {}
        self._version = ""
        self.synced = asyncio.Event()
        self._failing_since: float | None = None
        self._failures = 0
        self._task: asyncio.Task[None] | None = None

    # -- reading -----------------------------------------------------------------------------
    def get(self, namespace: str | None, name: str) -> Body | None:
        return self._read((namespace or "", name))

    def objects(self) -> list[Body]:
        return [_unpack(payload) for _, payload in self._store.values()]

    def by_index(self, index: str, value: str) -> list[Body]:
        return [_unpack(self._store[k][1]) for k in self._index.get(index, {}).get(value, ()) if k in self._store]

    def __len__(self) -> int:
        return len(self._store)

    # -- wiring ------------------------------------------------------------------------------
    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def add_index(self, name: str, indexer: Indexer) -> None:
        self._indexers[name] = indexer
        self._index[name] = {}
        self._indexed[name] = {}
        for key, (_, payload) in self._store.items():
            self._reindex(name, key, _unpack(payload))

    def observe(self, obj: Body) -> None:
        """Take in an object the operator just wrote (the response of its own request), so the
        next reconcile reads it at once instead of the copy from before the write. Older
        versions are ignored. A change runs no handler (the watch event that follows is then no
        news); a new object runs them as ADDED, since its own ADDED event will be skipped."""
        obj = self._trim(obj)
        key = key_of(obj)
        previous = self._store.get(key)
        if previous is not None and _version(obj) <= previous[0]:
            return
        self._put(key, obj)
        if previous is None:  # a new object (the operator created it): its watch ADDED will be no news
            self._emit("ADDED", obj, None)

    # -- running -----------------------------------------------------------------------------
    def start(self) -> asyncio.Task[None]:
        self._task = asyncio.create_task(self.run(), name=f"informer-{self.source.name}")
        return self._task

    @property
    def healthy(self) -> bool:
        if self._task is not None and self._task.done():
            return False
        return self._failing_since is None or time.monotonic() - self._failing_since < UNHEALTHY_AFTER

    async def run(self) -> None:
        while True:
            try:
                if not self._version:
                    await self._relist()
                await self._watch()
                self._failures = 0
                self._failing_since = None
            except GoneError:
                self._version = ""
            except NotServedError:
                # e.g. KubeVirt is not installed: the kind that needs it has nothing to watch yet;
                # the operator still starts, and the watch begins once the resource appears
                if not self.synced.is_set():
                    log.warning("%s is not served by this cluster; watching for it", self.source.name)
                self.synced.set()
                self._version = ""
                await asyncio.sleep(NOT_SERVED_RETRY)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._failures += 1
                metrics.WATCH_FAILURES.labels(self.source.name).inc()
                self._failing_since = self._failing_since or time.monotonic()
                delay = min(MAX_BACKOFF, 0.5 * 2 ** min(self._failures, 8)) * random.uniform(0.8, 1.2)
                log.warning("watch of %s failed (retry in %.1fs): %s", self.source.name, delay, error or type(error))
                await asyncio.sleep(delay)

    def _params(self) -> dict[str, str]:
        return {"labelSelector": self.selector} if self.selector else {}

    async def _relist(self) -> None:
        fresh: dict[Key, Body] = {}
        params = {**self._params(), "limit": str(PAGE)}
        path = self.source.path(self.namespace)
        while True:
            response = await self._http.get(path, params=params)
            if response.status_code == 404:
                raise NotServedError(path)
            _raise_for(response)
            page = _decode(response.content)
            for item in page.get("items") or []:
                obj = self._trim(item)
                fresh[key_of(obj)] = obj
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                break
            params = {**params, "continue": cont}
        self._version = str((page.get("metadata") or {}).get("resourceVersion") or "")
        for key in [k for k in self._store if k not in fresh]:
            self._emit("DELETED", self._remove(key), None)
        for key, obj in fresh.items():
            known = self._store.get(key)
            if known is not None and known[0] >= _version(obj):
                continue
            self._put(key, obj)
            self._emit("ADDED" if known is None else "MODIFIED", obj, None if known is None else _unpack(known[1]))
        metrics.INFORMER_OBJECTS.labels(self.source.name).set(len(self._store))
        self.synced.set()

    async def _watch(self) -> None:
        params = {
            **self._params(),
            "watch": "true",
            "allowWatchBookmarks": "true",
            "resourceVersion": self._version,
            "timeoutSeconds": str(int(self._watch_timeout * random.uniform(1.0, 1.5))),
        }
        timeout = {"connect": 10.0, "read": self._watch_timeout * 2.0, "write": 10.0, "pool": 10.0}
        async with self._http.stream(
            "GET", self.source.path(self.namespace), params=params, timeout=_timeout(self._http, timeout)
        ) as response:
            if response.status_code == 410:
                raise GoneError()
            if response.status_code >= 400:
                await response.aread()
                _raise_for(response)
            self._failing_since = None
            self._failures = 0  # open again: the next outage backs off from the start
            pending = bytearray()
            async for chunk in response.aiter_bytes():
                for line in lines(pending, chunk):
                    self._on_line(line)
            if pending.strip():  # a last event without its newline, as aiter_lines would give it
                self._on_line(bytes(pending))

    def _on_line(self, line: bytes) -> None:
        event = _decode(line)
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise GoneError()
            raise RuntimeError(f"watch error: {obj.get('message')}")
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self._version = str(version)
        metrics.INFORMER_EVENTS.labels(self.source.name, kind).inc()
        if kind == "BOOKMARK":
            return
        obj = self._trim(obj)
        key = key_of(obj)
        if kind == "DELETED":
            old = self._remove(key)
            self._emit("DELETED", obj, old)
        else:
            known = self._store.get(key)
            if known is not None and known[0] >= _version(obj):
                return  # already known: the operator's own write, taken in by observe()
            self._put(key, obj)
            self._emit("ADDED" if known is None else "MODIFIED", obj, None if known is None else _unpack(known[1]))
        metrics.INFORMER_OBJECTS.labels(self.source.name).set(len(self._store))

    # -- store -------------------------------------------------------------------------------
    def _trim(self, obj: Body) -> Body:
        obj.setdefault("apiVersion", self.source.api_version)
        obj.setdefault("kind", self.source.kind)
        obj = trim(obj)
        return self.source.slim(obj) if self.source.slim else obj

    def _read(self, key: Key) -> Body | None:
        entry = self._store.get(key)
        return None if entry is None else _unpack(entry[1])

    def _put(self, key: Key, obj: Body) -> None:
        payload: Body | bytes = _encode(obj) if self.source.compact else obj
        self._store[key] = (_version(obj), payload)
        for name in self._indexers:
            self._reindex(name, key, obj)

    def _remove(self, key: Key) -> Body | None:
        entry = self._store.pop(key, None)
        obj = None if entry is None else _unpack(entry[1])
        for name in self._indexers:
            for value in self._indexed[name].pop(key, ()):
                bucket = self._index[name].get(value)
                if bucket is not None:
                    bucket.discard(key)
                    if not bucket:
                        del self._index[name][value]
        return obj

    def _reindex(self, name: str, key: Key, obj: Body) -> None:
        values = tuple(self._indexers[name](obj))
        previous = self._indexed[name].get(key, ())
        if values == previous:
            return
        for value in previous:
            bucket = self._index[name].get(value)
            if bucket is not None:
                bucket.discard(key)
                if not bucket:
                    del self._index[name][value]
        for value in values:
            self._index[name].setdefault(value, set()).add(key)
        self._indexed[name][key] = values

    def _emit(self, kind: str, obj: Body | None, old: Body | None) -> None:
        if obj is None:
            return
        for handler in self._handlers:
            try:
                handler(kind, obj, old)
            except Exception:
                log.exception("handler of %s failed on %s", self.source.name, key_of(obj))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


def _timeout(http: Any, values: dict[str, float]) -> Any:
    return type(http.timeout)(**{k: values[k] for k in ("connect", "read", "write", "pool")})


def _raise_for(response: Any) -> None:
    if response.status_code >= 400:
        try:
            message = response.json().get("message")
        except ValueError:
            message = response.text[:200]
        raise RuntimeError(f"{response.request.method} {response.request.url.path}: {response.status_code} {message}")
