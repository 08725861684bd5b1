"""Where a Cyberdesk's state goes outside Kubernetes: a database row per desktop (PostgreSQL, or
Supabase's REST interface) and a webhook for the events a client waits for.

The controller holds one `Sinks` and calls it on every reconcile: `put(name, status)` with the
row's status (`roadie.cyberdesk.phases.sink_status`), `notify(event, payload)` when a desktop is
ready, expiring or stopped. Both return at once; each sink writes in its own background task,
latest value per key, with retries (`roadie.cyberdesk.sink.queue`). `start()` once the event loop
runs, `close()` at shutdown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from roadie.cyberdesk.sink import postgres, queue, supabase, webhook


class Sink(Protocol):
    name: str

    def put(self, name: str, status: str) -> None: ...

    def notify(self, event: str, payload: Mapping[str, Any]) -> None: ...

    def forget(self, name: str, namespace: str | None = None) -> None: ...

    async def start(self) -> None: ...

    async def close(self, grace: float = 5.0) -> None: ...


class Sinks:
    """Every configured sink behind the one interface; with none configured, calls do nothing."""

    name = "all"

    def __init__(self, sinks: Sequence[Sink] = ()) -> None:
        self.sinks = list(sinks)

    def put(self, name: str, status: str) -> None:
        for sink in self.sinks:
            sink.put(name, status)

    def notify(self, event: str, payload: Mapping[str, Any]) -> None:
        for sink in self.sinks:
            sink.notify(event, payload)

    def forget(self, name: str, namespace: str | None = None) -> None:
        for sink in self.sinks:
            sink.forget(name, namespace)

    async def start(self) -> None:
        for sink in self.sinks:
            await sink.start()

    async def close(self, grace: float = 5.0) -> None:
        for sink in self.sinks:
            await sink.close(grace)


def build(
    *,
    postgres_url: str = "",
    create_table: bool = False,
    supabase_url: str = "",
    supabase_key: str = "",
    webhook_url: str = "",
    webhook_secret: str = "",
    table: str = postgres.TABLE,
    key_column: str = postgres.KEY_COLUMN,
    upsert: bool = True,
    backoff: queue.Backoff | None = None,
) -> Sinks:
    """The sinks the settings ask for: each one whose URL is set."""
    chosen: list[Sink] = []
    if postgres_url:
        chosen.append(
            postgres.PostgresSink(
                postgres_url,
                table=table,
                key_column=key_column,
                upsert=upsert,
                create_table=create_table,
                backoff=backoff,
            )
        )
    if supabase_url:
        if not supabase_key:
            raise ValueError("SUPABASE_URL is set but SUPABASE_KEY is not")
        chosen.append(
            supabase.SupabaseSink(
                supabase_url, supabase_key, table=table, key_column=key_column, upsert=upsert, backoff=backoff
            )
        )
    if webhook_url:
        chosen.append(webhook.WebhookSink(webhook_url, secret=webhook_secret, backoff=backoff))
    return Sinks(chosen)
