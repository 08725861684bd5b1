"""A proxy between the operator and the API server that misbehaves on purpose: some requests get a
429 (with Retry-After), some a 500, some have their connection dropped, the rest pass through.

It speaks plain HTTP on 127.0.0.1 to the operator (its kubeconfig names `http://127.0.0.1:PORT`,
so no certificate has to be minted and trusted) and HTTPS to the API server with the cluster's
admin client certificate, so it can answer with any status code, which a TCP-level proxy cannot.
Responses are streamed, so watches pass through it as they would reach the operator directly.
Watches are spared the injected status codes (a real API server answers them with the same codes
only when it opens them; a dropped connection is what a watch really meets) but not the drops.
"""

from __future__ import annotations

import collections
import pathlib
import random
import ssl
from typing import Any

import httpx
from aiohttp import web

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}  # bodies pass as sent


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        ca: pathlib.Path,
        cert: pathlib.Path,
        key: pathlib.Path,
        *,
        p429: float = 0.05,
        p500: float = 0.05,
        pdrop: float = 0.03,
        seed: int = 7,
    ) -> None:
        self.rates = {"429": p429, "500": p500, "drop": pdrop}
        self.injected: collections.Counter[str] = collections.Counter()
        self.passed = 0
        self._random = random.Random(seed)
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(cert), str(key))
        self._upstream = httpx.AsyncClient(base_url=upstream, verify=context, timeout=httpx.Timeout(30, read=900))
        self._runner: web.AppRunner | None = None
        self.port = 0

    def kubeconfig(self, path: pathlib.Path) -> pathlib.Path:
        path.write_text(
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: faulty\n  cluster:\n    server: http://127.0.0.1:{self.port}\n"
            "users:\n- name: faulty\n  user: {}\n"
            "contexts:\n- name: faulty\n  context:\n    cluster: faulty\n    user: faulty\n"
            "current-context: faulty\n"
        )
        return path

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self._upstream.aclose()

    def _fault(self, watch: bool) -> str | None:
        roll = self._random.random()
        if roll < self.rates["drop"]:
            return "drop"
        if watch:
            return None
        roll -= self.rates["drop"]
        if roll < self.rates["429"]:
            return "429"
        if roll < self.rates["429"] + self.rates["500"]:
            return "500"
        return None

    async def _handle(self, request: web.Request) -> Any:
        watch = request.query.get("watch") in ("true", "1")
        fault = self._fault(watch)
        if fault:
            self.injected[fault] += 1
        if fault == "drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(status=500)  # never reaches the client: the connection is gone
        if fault in ("429", "500"):
            body = {
                "kind": "Status",
                "apiVersion": "v1",
                "status": "Failure",
                "code": int(fault),
                "reason": "TooManyRequests" if fault == "429" else "InternalError",
                "message": "injected",
            }
            headers = {"Retry-After": "1"} if fault == "429" else {}
            return web.json_response(body, status=int(fault), headers=headers)
        self.passed += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP and k.lower() != "authorization"}
        upstream = self._upstream.build_request(
            request.method, request.rel_url.path_qs, headers=headers, content=await request.read()
        )
        response = await self._upstream.send(upstream, stream=True)
        try:
            out = web.StreamResponse(status=response.status_code)
            for k, v in response.headers.items():
                if k.lower() not in HOP:
                    out.headers[k] = v
            await out.prepare(request)
            async for chunk in response.aiter_raw():
                await out.write(chunk)
            await out.write_eof()
            return out
        except (ConnectionResetError, httpx.HTTPError):
            return web.Response(status=502)
        finally:
            await response.aclose()
