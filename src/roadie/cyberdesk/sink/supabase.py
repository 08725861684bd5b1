"""The status sink through Supabase's REST interface (PostgREST), for a project that hands out a
URL and an API key rather than a database connection: `SUPABASE_URL` and `SUPABASE_KEY`, as the
original's `.env` had.

An upsert is `POST /rest/v1/cyberdesk_instances?on_conflict=name` with
`Prefer: resolution=merge-duplicates`; with `upsert=False`, a `PATCH` of the row whose key
equals the name (the original updated rows its application had inserted). The table is the one
`roadie.cyberdesk.sink.postgres` documents; it must exist, PostgREST does not create tables.
"""

from __future__ import annotations

import httpx

from roadie.core import models
from roadie.cyberdesk.sink import http, postgres, queue


class SupabaseSink(queue.RowSink):
    name = "supabase"

    def __init__(
        self,
        url: str,
        key: str,
        *,
        table: str = postgres.TABLE,
        key_column: str = postgres.KEY_COLUMN,
        upsert: bool = True,
        backoff: queue.Backoff | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        postgres.quote(table)
        postgres.quote(key_column)
        self._endpoint = f"{url.rstrip('/')}/rest/v1/{table}"
        self._key_column = key_column
        self._upsert = upsert
        self._headers = {"apikey": key, "Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._own_client = client is None
        self.queue: queue.KeyedQueue[str] = queue.KeyedQueue(self.name, self._write, backoff)

    async def _release(self) -> None:
        if self._own_client:
            await self._client.aclose()

    async def _write(self, name: str, status: str) -> str:
        row = {"status": status, "updated_at": models.timestamp(models.now())}
        if self._upsert:
            response = await self._client.post(
                self._endpoint,
                params={"on_conflict": self._key_column},
                json=[{self._key_column: name, **row}],
                headers={**self._headers, "Prefer": "resolution=merge-duplicates,return=minimal"},
            )
        else:
            response = await self._client.patch(
                self._endpoint,
                params={self._key_column: f'eq."{name}"'},
                json=row,
                headers={**self._headers, "Prefer": "return=minimal"},
            )
        http.check(response, f"{self._endpoint} for {name}")
        return queue.OK
