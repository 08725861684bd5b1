"""The HTTP sinks against a local receiver: Supabase's PostgREST upsert (headers, merge, latest
status wins, retries after 503s, a wrong key refused without retries, the update-only form) and
the webhook (JSON events with a stable id and a verifiable signature, retried until delivered,
sent once per content, a 400 not retried); and `build`, which makes the one object the
controller calls."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import uuid

import asyncpg
import pytest
from tests.support.postgres import PostgresServer
from tests.support.receiver import Receiver, eventually

from roadie.core import metrics
from roadie.cyberdesk import sink as sinks
from roadie.cyberdesk.sink import postgres, queue, supabase, webhook

FAST = queue.Backoff(initial=0.02, maximum=0.1)
BODY = {"metadata": {"name": "desk-a", "namespace": "desks", "uid": "u-1"}}
STATUS = {
    "phase": "Running",
    "vmName": "cyberdesk-desk-a",
    "ipAddress": "10.0.0.7",
    "nodeName": "node-1",
    "startedAt": "2026-03-01T09:00:00Z",
    "expiresAt": "2026-03-02T09:00:00Z",
    "timedOut": False,
}


def _metric(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_supabase_upserts_with_postgrest_headers_and_latest_wins(http: Receiver) -> None:
    sink = supabase.SupabaseSink(http.url, Receiver.api_key, backoff=FAST)
    for value in ("pending", "running"):
        sink.put("desk-a", value)
    sink.put("desk-b", "pending")
    await sink.start()
    try:
        await asyncio.wait_for(sink.queue.idle(), 10)
        rows = http.tables["cyberdesk_instances"]
        assert {k: r["status"] for k, r in rows.items()} == {"desk-a": "running", "desk-b": "pending"}
        assert rows["desk-a"]["name"] == "desk-a" and rows["desk-a"]["updated_at"].endswith("Z")
        first = http.requests[0]
        assert (first.method, first.path, first.query) == (
            "POST",
            "/rest/v1/cyberdesk_instances",
            {"on_conflict": "name"},
        )
        assert first.headers["apikey"] == Receiver.api_key
        assert first.headers["Authorization"] == f"Bearer {Receiver.api_key}"
        assert "resolution=merge-duplicates" in first.headers["Prefer"]
        assert len(http.requests) == 2
        sink.put("desk-a", "completed")
        await asyncio.wait_for(sink.queue.idle(), 10)
        assert http.tables["cyberdesk_instances"]["desk-a"]["status"] == "completed"
    finally:
        await sink.close()


async def test_supabase_retries_until_the_server_answers(http: Receiver) -> None:
    http.fail_first = 3
    retries = _metric("roadie_cyberdesk_sink_retries_total", sink="supabase")
    sink = supabase.SupabaseSink(http.url, Receiver.api_key, backoff=FAST)
    await sink.start()
    try:
        sink.put("desk-a", "running")
        await eventually(lambda: http.tables.get("cyberdesk_instances", {}).get("desk-a", {}).get("status"))
        assert len(http.requests) == 4
        assert _metric("roadie_cyberdesk_sink_retries_total", sink="supabase") == retries + 3
    finally:
        await sink.close()


async def test_supabase_with_a_wrong_key_is_refused_without_retries(http: Receiver) -> None:
    rejected = _metric("roadie_cyberdesk_sink_writes_total", sink="supabase", result="rejected")
    sink = supabase.SupabaseSink(http.url, "wrong", backoff=FAST)
    await sink.start()
    try:
        sink.put("desk-a", "running")
        await asyncio.wait_for(sink.queue.idle(), 10)
        assert len(http.requests) == 1 and "cyberdesk_instances" not in http.tables
        assert _metric("roadie_cyberdesk_sink_writes_total", sink="supabase", result="rejected") == rejected + 1
    finally:
        await sink.close()


async def test_supabase_update_only_patches_the_row_of_that_key(http: Receiver) -> None:
    http.tables["cyberdesk_instances"] = {"u-1": {"id": "u-1", "status": "pending", "user_id": "x"}}
    sink = supabase.SupabaseSink(http.url, Receiver.api_key, key_column="id", upsert=False, backoff=FAST)
    await sink.start()
    try:
        sink.put("u-1", "running")
        sink.put("u-2", "running")
        await asyncio.wait_for(sink.queue.idle(), 10)
        assert http.tables["cyberdesk_instances"] == {
            "u-1": {
                "id": "u-1",
                "status": "running",
                "user_id": "x",
                "updated_at": http.tables["cyberdesk_instances"]["u-1"]["updated_at"],
            }
        }
        assert {r.method for r in http.requests} == {"PATCH"}
        assert http.requests[0].query == {"id": 'eq."u-1"'}
    finally:
        await sink.close()


async def test_webhook_delivers_signed_events_with_retries(http: Receiver) -> None:
    http.fail_first = 2
    hook = webhook.WebhookSink(f"{http.url}/hooks/desks", secret="s3cret", backoff=FAST)
    await hook.start()
    try:
        hook.notify(webhook.READY, webhook.payload(BODY, STATUS))
        await eventually(lambda: len(http.requests) == 3)
        await asyncio.wait_for(hook.queue.idle(), 10)
        delivered = http.requests[-1]
        event = delivered.json()
        assert event["event"] == "ready" and event["name"] == "desk-a" and event["namespace"] == "desks"
        assert event["status"] == "running" and event["ipAddress"] == "10.0.0.7" and event["sentAt"].endswith("Z")
        assert delivered.headers["X-Roadie-Event"] == "ready"
        expected = "sha256=" + hmac.new(b"s3cret", delivered.body, hashlib.sha256).hexdigest()
        assert delivered.headers["X-Roadie-Signature"] == expected
        assert [r.json()["id"] for r in http.requests] == [event["id"]] * 3  # one id for every attempt

        hook.notify(webhook.READY, webhook.payload(BODY, STATUS))  # the next reconcile: nothing new
        expiring = {**STATUS, "expiresAt": "2026-03-02T09:00:00Z"}
        hook.notify(webhook.EXPIRING, webhook.payload(BODY, expiring))
        await asyncio.wait_for(hook.queue.idle(), 10)
        assert [r.json()["event"] for r in http.requests[3:]] == ["expiring"]
    finally:
        await hook.close()


async def test_webhook_refusal_is_not_retried_and_unknown_events_are_an_error(http: Receiver) -> None:
    http.fail_first, http.fail_status = 1, 400
    hook = webhook.WebhookSink(http.url, backoff=FAST)
    await hook.start()
    try:
        hook.notify(webhook.STOPPED, webhook.payload(BODY, {**STATUS, "phase": "TimedOut", "timedOut": True}))
        await asyncio.wait_for(hook.queue.idle(), 10)
        assert len(http.requests) == 1
        assert "X-Roadie-Signature" not in http.requests[0].headers
        assert http.requests[0].json()["status"] == "completed"
        with pytest.raises(ValueError, match="unknown webhook event"):
            hook.notify("started", webhook.payload(BODY, STATUS))
    finally:
        await hook.close()


async def test_build_makes_one_object_for_every_configured_sink(http: Receiver, pg: PostgresServer) -> None:
    table = f"built_{uuid.uuid4().hex[:12]}"
    built = sinks.build(
        postgres_url=pg.url,
        create_table=True,
        supabase_url=http.url,
        supabase_key=Receiver.api_key,
        webhook_url=f"{http.url}/hook",
        table=table,
        backoff=FAST,
    )
    assert [s.name for s in built.sinks] == ["postgres", "supabase", "webhook"]
    await built.start()
    try:
        built.put("desk-a", "running")
        built.notify(webhook.READY, webhook.payload(BODY, STATUS))
        for each in built.sinks:
            await asyncio.wait_for(each.queue.idle(), 10)  # type: ignore[attr-defined]
        assert http.tables[table]["desk-a"]["status"] == "running"
        conn = await asyncpg.connect(pg.url)
        try:
            assert await conn.fetchval(f'SELECT status FROM "{table}" WHERE name = $1', "desk-a") == "running"
        finally:
            await conn.close()
        hooks = [r for r in http.requests if r.path == "/hook"]
        assert len(hooks) == 1 and json.loads(hooks[0].body)["event"] == "ready"
        assert built.sinks[0].queue.pending == 0  # type: ignore[attr-defined]
    finally:
        await built.close()
    assert sinks.build().sinks == []
    with pytest.raises(ValueError, match="SUPABASE_KEY"):
        sinks.build(supabase_url=http.url)
    assert postgres.TABLE == "cyberdesk_instances"
