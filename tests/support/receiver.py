"""A local HTTP receiver for tests of outgoing HTTP (webhooks, Supabase's PostgREST): an aiohttp
server on 127.0.0.1 that records every request, can fail its first requests to show retries, and
answers PostgREST's upserts and filtered PATCHes from rows it keeps; and `eventually`, to wait on
a condition instead of sleeping."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web


async def eventually(check: Callable[[], Any], within: float = 10.0, interval: float = 0.02) -> Any:
    """Wait until `check()` (sync or async) returns something truthy; return it."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"not true after {within}s (last: {last!r})")


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Records every request. The first `fail_first` answer `fail_status`; then a webhook gets 204,
    and `/rest/v1/<table>` behaves as PostgREST does for upserts and filtered PATCHes, keeping
    rows in `tables` (requests without the API key get 401)."""

    api_key = "test-key"

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.fail_first = 0
        self.fail_status = 503
        self.failed = 0
        self.tables: dict[str, dict[str, dict[str, Any]]] = {}
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Request(request.method, request.path, dict(request.query), dict(request.headers), body))
        if self.failed < self.fail_first:
            self.failed += 1
            return web.Response(status=self.fail_status, text="try again later")
        if request.path.startswith("/rest/v1/"):
            return self._postgrest(request, json.loads(body))
        return web.Response(status=204)

    def _postgrest(self, request: web.Request, body: Any) -> web.Response:
        if request.headers.get("apikey") != self.api_key or request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            return web.json_response({"message": "Invalid API key"}, status=401)
        rows = self.tables.setdefault(request.path.removeprefix("/rest/v1/"), {})
        if request.method == "POST":
            key = request.query["on_conflict"]
            assert "resolution=merge-duplicates" in request.headers.get("Prefer", "")
            for row in body:
                rows[row[key]] = {**rows.get(row[key], {}), **row}
            return web.Response(status=201)
        if request.method == "PATCH":
            ((column, condition),) = request.query.items()
            wanted = condition.removeprefix("eq.").strip('"')
            for row in rows.values():
                if row.get(column) == wanted:
                    row.update(body)
            return web.Response(status=204)
        return web.Response(status=405)


@contextlib.asynccontextmanager
async def running() -> AsyncIterator[Receiver]:
    recorder = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    recorder.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield recorder
    finally:
        await runner.cleanup()
