"""Kubernetes events for the transitions a user wants to see in `kubectl describe`.

Written with the shared async client (core/v1 Events, reported by `roadie`), so they can be sent
from anywhere, the expiry scheduler included, not only from inside a framework handler. A failure
to post an event is logged and never fails the reconcile that wanted it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Hashable
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import EventSource, ObjectReference
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Event

from roadie.core import background, client, models

NORMAL, WARNING = "Normal", "Warning"
#: Attempts at posting one event, and the first pause between them (doubled each time).
TRIES = 3
RETRY_SECONDS = 0.5
log = logging.getLogger(__name__)


def build(body: Any, type_: str, reason: str, message: str) -> Event:
    meta = body["metadata"]
    namespace = meta.get("namespace") or "default"
    stamp = models.now()
    return Event(
        metadata=ObjectMeta(name=f"{meta['name']}.{uuid.uuid4().hex[:12]}", namespace=namespace),
        involvedObject=ObjectReference(
            apiVersion=body["apiVersion"],
            kind=body["kind"],
            name=meta["name"],
            namespace=meta.get("namespace"),
            uid=meta.get("uid"),
            resourceVersion=meta.get("resourceVersion"),
        ),
        type=type_,
        reason=reason,
        message=message[:1024],
        source=EventSource(component="roadie"),
        reportingComponent="roadie",
        reportingInstance="roadie",
        firstTimestamp=stamp,
        lastTimestamp=stamp,
        count=1,
    )


async def emit(body: Any, type_: str, reason: str, message: str) -> None:
    """Post the event, trying again after an error a retry can cure (a dropped connection, a
    429 or a 5xx), as client-go's recorder does, but only `TRIES` times and briefly: an event is a
    courtesy, and some callers wait for it."""
    event = build(body, type_, reason, message)
    for attempt in range(TRIES):
        try:
            await client.get().create(event)
            return
        except Exception as error:
            if client.transient(error) and attempt + 1 < TRIES:
                await asyncio.sleep(RETRY_SECONDS * 2**attempt)
                continue
            name = body["metadata"].get("name")
            if isinstance(error, ApiError):  # e.g. the namespace is terminating: expected while tearing down
                log.info("event %s for %s not posted: %s", reason, name, error.status.message)
            else:  # never let it break a reconcile
                log.warning("could not post event %s for %s", reason, name, exc_info=True)
            return


def emit_soon(body: Any, type_: str, reason: str, message: str) -> None:
    """Post the event in the background, a few at a time (`core.background`): for a path where
    every request in sequence delays what the user waits for."""
    background.soon(lambda: emit(body, type_, reason, message), f"event {reason}")


class Digest:
    """Events of one reason about one object, gathered for `every` seconds and posted together:
    one event for one item, else one per `batch` items naming them all. A thousand-task workflow
    starts a task every few milliseconds; an event for each would cost the API server as much as
    the tasks' pods."""

    def __init__(
        self,
        type_: str,
        reason: str,
        *,
        every: float,
        batch: int,
        one: Callable[[Any], str],
        many: Callable[[list[Any]], str],
    ) -> None:
        self.type, self.reason, self.every, self.batch = type_, reason, every, batch
        self._one, self._many = one, many
        self._pending: dict[Hashable, tuple[Any, list[Any]]] = {}

    def add(self, key: Hashable, body: Any, item: Any) -> None:
        if key not in self._pending:
            self._pending[key] = (body, [])
            asyncio.get_running_loop().call_later(self.every, self.flush, key)
        self._pending[key][1].append(item)

    def flush(self, key: Hashable) -> None:
        body, items = self._pending.pop(key, (None, []))
        if len(items) == 1:
            emit_soon(body, self.type, self.reason, self._one(items[0]))
            return
        for i in range(0, len(items), self.batch):
            emit_soon(body, self.type, self.reason, self._many(items[i : i + self.batch]))
