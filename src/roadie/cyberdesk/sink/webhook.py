"""An HTTP webhook for the moments a client waits for: a desktop is `ready` (its VM runs), is
`expiring` (the warning before its timeout), or has `stopped` (timed out, finished or failed).

Each event is a `POST` of a JSON object: the payload the controller gives (see `payload`) plus
`event`, `id` and `sentAt`. Delivery is at least once: retried with backoff until the receiver
answers 2xx, and sent again after an operator restart, so `id` (the same for the same event of
the same desktop with the same content) lets a receiver drop repeats. With a secret, the body is
signed: `X-Roadie-Signature: sha256=<hex HMAC-SHA256 of the body>`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

from roadie.core import models
from roadie.cyberdesk import phases
from roadie.cyberdesk.sink import http, queue

READY, EXPIRING, STOPPED = "ready", "expiring", "stopped"
EVENTS = (READY, EXPIRING, STOPPED)
SIGNATURE_HEADER = "X-Roadie-Signature"
EVENT_HEADER = "X-Roadie-Event"


def payload(body: Mapping[str, Any], status: Mapping[str, Any]) -> dict[str, Any]:
    """What a client needs about a desktop, from the Cyberdesk and its computed status. Nothing in
    it changes between two reconciles that saw the same thing, so repeats are recognised."""
    meta = body["metadata"]
    return {
        "name": meta["name"],
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
        "phase": status.get("phase"),
        "status": phases.sink_status(status.get("phase")),
        "vmName": status.get("vmName"),
        "ipAddress": status.get("ipAddress"),
        "nodeName": status.get("nodeName"),
        "startedAt": status.get("startedAt"),
        "expiresAt": status.get("expiresAt"),
        "timedOut": bool(status.get("timedOut")),
    }


def event_id(key: str, content: Mapping[str, Any]) -> str:
    return hashlib.sha256(f"{key}\n{json.dumps(content, sort_keys=True)}".encode()).hexdigest()[:32]


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSink:
    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        secret: str = "",
        backoff: queue.Backoff | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self._url = url
        self._secret = secret
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._own_client = client is None
        self.queue: queue.KeyedQueue[dict[str, Any]] = queue.KeyedQueue(self.name, self._write, backoff)

    def put(self, name: str, status: str) -> None:
        """Rows are the database sinks'; the webhook carries events."""

    def notify(self, event: str, payload: Mapping[str, Any]) -> None:
        """Queue `event` for the desktop `payload["name"]`; the same event of the same desktop with
        the same payload is sent once, a newer payload of one still waiting replaces it."""
        if event not in EVENTS:
            raise ValueError(f"unknown webhook event {event!r}; known: {', '.join(EVENTS)}")
        key = f"{payload.get('namespace') or ''}/{payload['name']}/{event}"
        self.queue.put(key, {"event": event, **payload})

    def forget(self, name: str, namespace: str | None = None) -> None:
        for event in EVENTS:
            self.queue.forget(f"{namespace or ''}/{name}/{event}")

    async def start(self) -> None:
        await self.queue.start()

    async def close(self, grace: float = 5.0) -> None:
        await self.queue.close(grace)
        if self._own_client:
            await self._client.aclose()

    async def _write(self, key: str, content: dict[str, Any]) -> str:
        document = {**content, "id": event_id(key, content), "sentAt": models.timestamp(models.now())}
        data = json.dumps(document, sort_keys=True).encode()
        headers = {"Content-Type": "application/json", EVENT_HEADER: str(content["event"])}
        if self._secret:
            headers[SIGNATURE_HEADER] = signature(self._secret, data)
        response = await self._client.post(self._url, content=data, headers=headers)
        http.check(response, f"webhook {content['event']} for {key}")
        return queue.OK
