"""The operator's HTTP endpoints: `/metrics` on one port, `/healthz` and `/readyz` on another.

aiohttp (already the operator framework's own HTTP stack) serves both inside the operator's event
loop, so a probe answers only when the loop itself is responsive. Ready means every enabled
controller has started and its caches are synced; healthy means the loop answers and nothing the
operator runs on has died (the scheduler, a watch failing for a minute, the workers).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from roadie.core import metrics

_ready = False
_checks: list[Callable[[], list[str]]] = []


def set_ready(value: bool) -> None:
    global _ready
    _ready = value


def add_check(check: Callable[[], list[str]]) -> None:
    """A liveness check: returns what is wrong (empty when all is well)."""
    _checks.append(check)


def problems() -> list[str]:
    return [problem for check in _checks for problem in check()]


async def _metrics(_: web.Request) -> web.Response:
    payload, content_type = metrics.exposition()
    return web.Response(body=payload, headers={"Content-Type": content_type})


async def _healthz(_: web.Request) -> web.Response:
    found = problems()
    return web.Response(status=500, text="\n".join(found)) if found else web.Response(text="ok")


async def _readyz(_: web.Request) -> web.Response:
    return web.Response(text="ok") if _ready else web.Response(status=503, text="starting")


async def serve(host: str, metrics_port: int, health_port: int) -> list[web.AppRunner]:
    runners = []
    routes = {
        metrics_port: [web.get("/metrics", _metrics)],
        health_port: [web.get("/healthz", _healthz), web.get("/readyz", _readyz)],
    }
    if metrics_port == health_port:
        routes = {metrics_port: routes[metrics_port] + routes[health_port]}
    for port, handlers in routes.items():
        if port <= 0:
            continue
        app = web.Application()
        app.add_routes(handlers)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        runners.append(runner)
    return runners
