"""The aiohttp transport under httpx, against a real HTTP server on loopback: requests and bodies
go through unchanged, a streamed body arrives as it is written, and aiohttp's failures come out
as the httpx errors the operator's retries look for."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
from collections.abc import AsyncIterator

import httpx2
import pytest
from aiohttp import web

from roadie.core import transport


async def _echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "query": request.raw_path.partition("?")[2],  # as sent, not decoded
            "body": body.decode(),
            "type": request.headers.get("Content-Type"),
            "auth": request.headers.get("Authorization"),
        },
        status=201 if request.method == "POST" else 200,
    )


async def _stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    await response.prepare(request)
    for i in range(3):
        await response.write(json.dumps({"n": i}).encode() + b"\n")
        await asyncio.sleep(0.05)
    return response


async def _gzipped(request: web.Request) -> web.Response:
    """As the API server answers a large list to a client that accepts gzip (httpx's default)."""
    body = gzip.compress(json.dumps({"items": [1, 2, 3]}).encode())
    return web.Response(body=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})


async def _slow(request: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.Response(text="late")


async def _cut(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Length": "1000"})
    await response.prepare(request)
    await response.write(b"partial")
    assert request.transport is not None
    request.transport.close()  # the connection drops mid-body
    return response


@pytest.fixture
async def server() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/stream", _stream)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/gzipped", _gzipped)
    app.router.add_get("/cut", _cut)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _client(base: str, **kw: object) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(base_url=base, transport=transport.AiohttpTransport(False), **kw)


async def test_a_request_and_its_body_go_through_unchanged(server: str) -> None:
    async with _client(server) as http:
        response = await http.post(
            "/echo",
            params={"labelSelector": "app.kubernetes.io/managed-by=roadie"},
            json={"kind": "Workshop"},
            headers={"Authorization": "Bearer t"},
        )
        assert response.status_code == 201
        seen = response.json()
    assert seen["method"] == "POST" and json.loads(seen["body"]) == {"kind": "Workshop"}
    assert seen["type"] == "application/json" and seen["auth"] == "Bearer t"
    sent = httpx2.Request("GET", server, params={"labelSelector": "app.kubernetes.io/managed-by=roadie"})
    assert seen["query"] == sent.url.query.decode(), "the query as httpx encoded it"


async def test_a_watch_arrives_line_by_line_as_written(server: str) -> None:
    lines, times = [], []
    async with _client(server) as http, http.stream("GET", "/stream", params={"watch": "true"}) as response:
        async for line in response.aiter_lines():
            lines.append(json.loads(line))
            times.append(asyncio.get_running_loop().time())
    assert lines == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert times[-1] - times[0] >= 0.08, "each line handed on when written, not all at the end"


async def test_any_other_answer_comes_whole(server: str) -> None:
    async with _client(server) as http, http.stream("GET", "/stream") as response:
        body = response.content  # a streamed response would raise ResponseNotRead here
    assert [json.loads(line) for line in body.splitlines()] == [{"n": 0}, {"n": 1}, {"n": 2}]


async def test_a_compressed_answer_read_whole_is_decompressed(server: str) -> None:
    async with _client(server) as http:
        response = await http.get("/gzipped")
    assert response.json() == {"items": [1, 2, 3]}


async def test_no_listener_is_a_connect_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, never listening: refused
        async with _client(f"http://127.0.0.1:{port}") as http:
            with pytest.raises(httpx2.ConnectError):
                await http.get("/")


async def test_a_slow_answer_is_a_read_timeout(server: str) -> None:
    async with _client(server, timeout=httpx2.Timeout(5, read=0.2)) as http:
        with pytest.raises(httpx2.ReadTimeout):
            await http.get("/slow")


async def test_a_connection_dropped_mid_body_is_a_transport_error(server: str) -> None:
    async with _client(server) as http:
        with pytest.raises(httpx2.TransportError) as caught:
            await http.get("/cut")
    assert isinstance(caught.value, httpx2.RemoteProtocolError | httpx2.ReadError)
