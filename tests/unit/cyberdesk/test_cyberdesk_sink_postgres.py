"""The PostgreSQL sink against a real server started from the machine's binaries: rows upserted
and kept at the latest status, the table created only when asked (and waited for otherwise), the
original's own table (uuid key, enum status, rows its application inserts) updated in place, a
value the database refuses not retried, and a database stopped mid-test while statuses change
whose rows catch up by themselves once it is back."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
from tests.support.postgres import PostgresServer
from tests.support.receiver import eventually

from roadie.core import metrics
from roadie.cyberdesk.sink import postgres, queue

FAST = queue.Backoff(initial=0.05, maximum=0.3)


def _table() -> str:
    return f"desks_{uuid.uuid4().hex[:12]}"


async def _rows(url: str, table: str, key: str = "name") -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    try:
        records = await conn.fetch(f'SELECT "{key}"::text AS k, status::text AS s, updated_at FROM "{table}"')
    finally:
        await conn.close()
    return {r["k"]: (r["s"], r["updated_at"]) for r in records}


async def _statuses(url: str, table: str, key: str = "name") -> dict[str, str]:
    return {k: v[0] for k, v in (await _rows(url, table, key)).items()}


async def _sql(url: str, *statements: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _metric(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_rows_are_upserted_and_the_latest_status_wins(pg: PostgresServer) -> None:
    table = _table()
    sink = postgres.PostgresSink(pg.url, table=table, create_table=True, backoff=FAST)
    await sink.start()
    try:
        sink.put("desk-a", "pending")
        await eventually(lambda: _wanted(pg.url, table, {"desk-a": "pending"}))
        first = (await _rows(pg.url, table))["desk-a"]
        assert first[0] == "pending" and first[1] is not None
        for value in ("pending", "running", "completed", "error", "running"):
            sink.put("desk-a", value)
        sink.put("desk-b", "pending")
        await asyncio.wait_for(sink.queue.idle(), 10)
        rows = await _rows(pg.url, table)
        assert {k: v[0] for k, v in rows.items()} == {"desk-a": "running", "desk-b": "pending"}
        assert rows["desk-a"][1] > first[1]  # updated_at moves with each write
    finally:
        await sink.close()


async def test_without_create_table_a_missing_table_is_waited_for(pg: PostgresServer) -> None:
    table = _table()
    sink = postgres.PostgresSink(pg.url, table=table, backoff=FAST)
    await sink.start()
    try:
        sink.put("desk-a", "running")
        before = _metric("roadie_cyberdesk_sink_retries_total", sink="postgres")
        await eventually(lambda: _metric("roadie_cyberdesk_sink_retries_total", sink="postgres") >= before + 2)
        await _sql(pg.url, postgres.create_table_sql(table))
        await eventually(lambda: _wanted(pg.url, table, {"desk-a": "running"}))
    finally:
        await sink.close()


async def test_the_originals_table_is_updated_in_place(pg: PostgresServer) -> None:
    table = _table()
    present, absent = str(uuid.uuid4()), str(uuid.uuid4())
    await _sql(
        pg.url,
        "DO $$ BEGIN CREATE TYPE instance_status AS ENUM ('pending', 'running', 'completed', 'error');"
        " EXCEPTION WHEN duplicate_object THEN null; END $$",
        f'CREATE TABLE "{table}" (id uuid PRIMARY KEY, user_id uuid NOT NULL, '
        f"status instance_status NOT NULL DEFAULT 'pending', updated_at timestamp)",
        f"INSERT INTO \"{table}\" (id, user_id) VALUES ('{present}', gen_random_uuid())",
    )
    sink = postgres.PostgresSink(pg.url, table=table, key_column="id", upsert=False, backoff=FAST)
    missing_before = _metric("roadie_cyberdesk_sink_writes_total", sink="postgres", result="missing")
    await sink.start()
    try:
        sink.put(present, "running")
        sink.put(absent, "running")
        await asyncio.wait_for(sink.queue.idle(), 10)
        rows = await _rows(pg.url, table, key="id")
        assert rows[present][0] == "running" and rows[present][1] is not None
        assert absent not in rows
        assert _metric("roadie_cyberdesk_sink_writes_total", sink="postgres", result="missing") == missing_before + 1
    finally:
        await sink.close()


async def test_a_status_the_database_refuses_is_not_retried(pg: PostgresServer) -> None:
    table = _table()
    await _sql(
        pg.url,
        f"CREATE TABLE \"{table}\" (name text PRIMARY KEY, status text CHECK (status <> 'bogus'), "
        "updated_at timestamptz)",
    )
    sink = postgres.PostgresSink(pg.url, table=table, backoff=FAST)
    rejected = _metric("roadie_cyberdesk_sink_writes_total", sink="postgres", result="rejected")
    await sink.start()
    try:
        sink.put("desk-a", "bogus")
        sink.put("desk-b", "running")
        await asyncio.wait_for(sink.queue.idle(), 10)
        assert await _statuses(pg.url, table) == {"desk-b": "running"}
        assert _metric("roadie_cyberdesk_sink_writes_total", sink="postgres", result="rejected") == rejected + 1
    finally:
        await sink.close()


async def test_rows_catch_up_after_the_database_was_stopped_while_statuses_changed(own_pg: PostgresServer) -> None:
    table = _table()
    sink = postgres.PostgresSink(own_pg.url, table=table, create_table=True, backoff=FAST, timeout=2.0)
    await sink.start()
    try:
        for name in ("desk-a", "desk-b", "desk-c"):
            sink.put(name, "pending")
        await eventually(
            lambda: _wanted(own_pg.url, table, {"desk-a": "pending", "desk-b": "pending", "desk-c": "pending"})
        )
        own_pg.stop()
        retries = _metric("roadie_cyberdesk_sink_retries_total", sink="postgres")
        sink.put("desk-a", "running")  # every put returns at once though the database is gone
        sink.put("desk-b", "running")
        await eventually(lambda: _metric("roadie_cyberdesk_sink_retries_total", sink="postgres") >= retries + 3)
        sink.put("desk-a", "completed")
        sink.put("desk-b", "error")
        sink.put("desk-c", "running")
        assert sink.queue.pending >= 3
        await asyncio.sleep(0.3)
        own_pg.start()  # nothing is put again: the queue brings the rows to the latest statuses
        want = {"desk-a": "completed", "desk-b": "error", "desk-c": "running"}
        await eventually(lambda: _wanted(own_pg.url, table, want), within=15)
        await asyncio.wait_for(sink.queue.idle(), 5)
        assert _metric("roadie_cyberdesk_sink_pending", sink="postgres") == 0
    finally:
        await sink.close()


async def _wanted(url: str, table: str, want: dict[str, str]) -> bool:
    try:
        return await _statuses(url, table) == want
    except (OSError, asyncpg.PostgresError):
        return False


def test_identifiers_are_quoted_and_anything_else_refused() -> None:
    assert postgres.quote("public.cyberdesk_instances") == '"public"."cyberdesk_instances"'
    for bad in ('x"; DROP TABLE y; --', "a b", "a.b.c", "", "1abc"):
        try:
            postgres.quote(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
    assert "ON CONFLICT" in postgres.write_sql() and "ON CONFLICT" not in postgres.write_sql(upsert=False)
