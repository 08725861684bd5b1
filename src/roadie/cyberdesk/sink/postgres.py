"""The status sink as a PostgreSQL row per Cyberdesk (Supabase's database is PostgreSQL), written
with asyncpg.

The expected table (created when `create_table` is set, otherwise left to its owner):

    CREATE TABLE cyberdesk_instances (
        name text PRIMARY KEY,       -- the Cyberdesk's name
        status text,                 -- pending | running | completed | error
        updated_at timestamptz       -- when Roadie last wrote the row
    );

The key column's name is configurable (the original's own table keyed rows by an `id` uuid, the
Cyberdesk being named by that uuid), and so is upserting: with `upsert=False` an existing row is
updated and a missing one left alone, for a table whose rows the application inserts itself with
columns Roadie knows nothing of. `status` may be an enum type with those four values.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import asyncpg

from roadie.cyberdesk.sink import queue

log = logging.getLogger(__name__)

TABLE = "cyberdesk_instances"
KEY_COLUMN = "name"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote(identifier: str) -> str:
    """`schema.table` or `column` as quoted SQL identifiers; anything but plain names is refused."""
    parts = identifier.split(".")
    if not 1 <= len(parts) <= 2 or not all(_IDENTIFIER.match(part) for part in parts):
        raise ValueError(f"not a plain SQL identifier: {identifier!r}")
    return ".".join(f'"{part}"' for part in parts)


def create_table_sql(table: str = TABLE, key_column: str = KEY_COLUMN) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {quote(table)} "
        f"({quote(key_column)} text PRIMARY KEY, status text, updated_at timestamptz)"
    )


def write_sql(table: str = TABLE, key_column: str = KEY_COLUMN, *, upsert: bool = True) -> str:
    t, k = quote(table), quote(key_column)
    if upsert:
        return (
            f"INSERT INTO {t} ({k}, status, updated_at) VALUES ($1, $2, now()) "
            f"ON CONFLICT ({k}) DO UPDATE SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at"
        )
    return f"UPDATE {t} SET status = $2, updated_at = now() WHERE {k} = $1"


#: Refusals of a value by the database itself (a CHECK, an enum, NOT NULL): retrying cannot help.
_PERMANENT = (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError)


class PostgresSink(queue.RowSink):
    name = "postgres"

    def __init__(
        self,
        url: str,
        *,
        table: str = TABLE,
        key_column: str = KEY_COLUMN,
        upsert: bool = True,
        create_table: bool = False,
        backoff: queue.Backoff | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._url = url
        self._sql = write_sql(table, key_column, upsert=upsert)
        self._create = create_table_sql(table, key_column) if create_table else None
        self._timeout = timeout
        self._conn: Any = None
        self.queue: queue.KeyedQueue[str] = queue.KeyedQueue(self.name, self._write, backoff)

    async def _release(self) -> None:
        await self._disconnect()

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            conn = await asyncpg.connect(self._url, timeout=self._timeout, command_timeout=self._timeout)
            try:
                if self._create:
                    await conn.execute(self._create)
            except BaseException:
                conn.terminate()
                raise
            self._conn = conn
        return self._conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await conn.close(timeout=self._timeout)
            except Exception:
                conn.terminate()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def _write(self, name: str, status: str) -> str:
        try:
            conn = await self._connection()
            result = await conn.execute(self._sql, name, status)
        except _PERMANENT as error:
            raise queue.RejectedError(f"{type(error).__name__}: {error}") from error
        except BaseException:
            self._drop()  # a broken connection is not reused; the next attempt reconnects
            raise
        return queue.MISSING if result.endswith(" 0") else queue.OK
