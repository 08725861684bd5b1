"""The operator's HTTP endpoints: `/metrics` on one port, `/healthz` and `/readyz` on another.

aiohttp (already the operator framework's own HTTP stack) serves both inside the operator's event
loop, so a probe answers only when the loop itself is responsive. Ready means the enabled
controllers' caches are synced: a standby replica (`--leader-elect`) is ready too, as it is ready
to take over, and a rolling update must not wait for the old leader to go. Healthy means the loop
answers and nothing the operator runs on has died (the scheduler, a watch failing for a minute,
the workers once they run).

Each listens on the operator's `host` or a host of its own (`--metrics-bind-address
127.0.0.1:8080`); a port 0 means no server at all. With `--metrics-secure`, /metrics is served
over TLS behind the checks of `roadie.core.secure_metrics`; the probes stay plain HTTP, as the
kubelet calls them.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from typing import Any

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


async def serve(
    host: str,
    metrics_port: int,
    health_port: int,
    *,
    metrics_host: str = "",
    health_host: str = "",
    metrics_ssl: ssl.SSLContext | None = None,
    metrics_middlewares: Iterable[Any] = (),
) -> list[web.AppRunner]:
    """Start the metrics and probe servers (each on `host` unless given its own); one server when
    both share an address, which a TLS metrics server cannot."""
    metrics_at = (metrics_host or host, metrics_port)
    health_at = (health_host or host, health_port)
    if metrics_ssl is not None and metrics_port > 0 and metrics_at == health_at:
        raise ValueError("secure metrics need a port of their own, apart from the probes'")
    servers: dict[tuple[str, int], list[web.RouteDef]] = {}
    servers.setdefault(metrics_at, []).append(web.get("/metrics", _metrics))
    servers.setdefault(health_at, []).extend([web.get("/healthz", _healthz), web.get("/readyz", _readyz)])
    runners = []
    for (where, port), handlers in servers.items():
        if port <= 0:
            continue
        secure = metrics_ssl is not None and (where, port) == metrics_at
        app = web.Application(middlewares=list(metrics_middlewares) if secure else [])
        app.add_routes(handlers)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, where, port, ssl_context=metrics_ssl if secure else None).start()
        runners.append(runner)
    return runners
