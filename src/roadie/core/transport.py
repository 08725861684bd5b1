"""The HTTP transport under lightkube's client: aiohttp's connection pool and C parser.

lightkube speaks httpx, whose default transport (httpcore on anyio) is pure Python. A profile of
the operator creating a thousand Workshops spent half of its CPU in that stack, a seventh of it
in the pool probing every idle connection's socket (through anyio's attribute lookups) each time
a request was added or removed; on a two-core control plane the operator's CPU is time taken from
the API server. This transport keeps httpx's client (lightkube's requests, auth, event hooks and
the rate limit are unchanged) and hands the wire to aiohttp. aiohttp's errors are raised as the
httpx errors they correspond to, so that everything that retries a dropped connection or a
timeout sees what it did before.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx2
import yarl

#: Headers aiohttp sets itself from the URL and the body.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding"})


def _error(error: BaseException, *, connecting: bool) -> httpx2.TransportError:
    """The httpx error for an aiohttp one (`connecting`: no response was read yet)."""
    if isinstance(error, aiohttp.ConnectionTimeoutError):
        return httpx2.ConnectTimeout(str(error))
    if isinstance(error, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return httpx2.ReadTimeout(str(error) or "timed out reading from the API server")
    if isinstance(error, aiohttp.ClientConnectorError):
        return httpx2.ConnectError(str(error))
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx2.RemoteProtocolError(str(error) or "the server closed the connection")
    if isinstance(error, aiohttp.ClientOSError):
        return httpx2.ConnectError(str(error)) if connecting else httpx2.ReadError(str(error))
    return httpx2.NetworkError(str(error) or type(error).__name__)


class _Body(httpx2.AsyncByteStream):
    """A response body read as it arrives (a watch never ends), released when httpx closes it."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _error(error, connecting=False) from error

    async def aclose(self) -> None:
        self._response.release()


def _streams(request: httpx2.Request) -> bool:
    """A watch, whose body never ends and is read as it comes; every other answer is whole."""
    return b"watch=" in request.url.query


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An httpx transport over one aiohttp session, made on first use in the running loop."""

    def __init__(self, ssl_context: ssl.SSLContext | bool, *, limit: int = 100) -> None:
        self._ssl = ssl_context
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _session_now(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(ssl=self._ssl, limit=self._limit, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # httpx decodes what the headers say
                skip_auto_headers=("User-Agent", "Accept-Encoding"),
                timeout=aiohttp.ClientTimeout(total=None),
            )
            self._loop = loop
        return self._session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        limits: dict[str, Any] = request.extensions.get("timeout") or {}
        headers = [
            (key.decode("latin-1"), value.decode("latin-1"))
            for key, value in request.headers.raw
            if key.lower().decode("latin-1") not in _OWN_HEADERS
        ]
        body = await request.aread()
        try:
            response = await self._session_now().request(
                request.method,
                yarl.URL(str(request.url), encoded=True),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=limits.get("connect"), sock_read=limits.get("read")
                ),
            )
        except (TimeoutError, aiohttp.ClientError) as error:
            raise _error(error, connecting=True) from error
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": (response.reason or "").encode()}
        if not _streams(request):
            # read here, in one call of aiohttp's, rather than chunk by chunk through httpx's stream
            try:
                content = await response.read()
            except (TimeoutError, aiohttp.ClientError) as error:
                raise _error(error, connecting=False) from error
            finally:
                response.release()
            return httpx2.Response(response.status, headers=headers, content=content, extensions=extensions)
        return httpx2.Response(response.status, headers=headers, stream=_Body(response), extensions=extensions)

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
