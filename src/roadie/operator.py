"""The operator process: the enabled kinds' controllers, their informers and work queues, the
deadline scheduler, and the probe and metrics endpoints, in one asyncio loop.

Process-wide set-up happens here when the operator starts, never at import. SIGTERM and SIGINT
stop it cleanly: workers and watches are cancelled, the client closed. A restart resumes from
the API alone: the first listing of every informer queues every object, and each reconcile
schedules its deadlines again from the object's spec and status.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import importlib
import json
import logging
import pathlib
import signal
from typing import Any

from roadie import catalog
from roadie import settings as settings_mod
from roadie.core import client, manager, probes, schedule

log = logging.getLogger("roadie")


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the fields log shippers index (time, level, logger, msg)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for extra in ("namespace", "name", "kind"):
            if hasattr(record, extra):
                entry[extra] = getattr(record, extra)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(cfg: settings_mod.OperatorSettings) -> None:
    level = getattr(logging, cfg.log_level.upper(), logging.INFO)
    handler = logging.StreamHandler()
    if cfg.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(levelname)-8s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("httpx", "httpx2", "httpcore", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


async def serve(cfg: settings_mod.Settings, stop: asyncio.Event) -> None:
    """Run every enabled controller until `stop` is set."""
    op = cfg.operator
    schedule.reset()
    sched = schedule.get()
    sched.start()
    kubeconfig = pathlib.Path(op.kubeconfig) if op.kubeconfig else None
    client.connect(kubeconfig, qps=op.api_qps, burst=op.api_burst)
    controllers = []
    for kind in catalog.enabled(op.controllers):
        for controller in kind.controllers():
            controller.configure(resync_seconds=op.resync_seconds, workers=op.workers)
            controllers.append(controller)
        log.info("controller %s enabled", kind.controller)
    mgr = manager.Manager(client.http(), controllers, namespaces=op.namespaces, watch_timeout=op.watch_timeout)
    # a kind's module may hold process-wide resources (connections, background writers): its
    # `startup()` runs once the caches are registered, its `shutdown()` when the operator stops
    hooks = [importlib.import_module(kind.reconcile_module) for kind in catalog.enabled(op.controllers)]
    for module in hooks:
        if hasattr(module, "startup"):
            await module.startup()
    probes.add_check(mgr.problems)
    probes.add_check(lambda: [] if sched.healthy else ["the deadline scheduler stopped"])
    runners = await probes.serve(op.host, op.metrics_port, op.health_port)
    try:
        starting = asyncio.create_task(mgr.start(sync_timeout=None))
        await asyncio.wait([starting, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        if starting.done():
            starting.result()
            probes.set_ready(True)
            log.info("operator ready: controllers %s", ", ".join(op.controllers))
            await stop.wait()
        else:
            starting.cancel()
    finally:
        probes.set_ready(False)
        log.info("operator stopping")
        await mgr.stop()
        for module in hooks:
            if hasattr(module, "shutdown"):
                await module.shutdown()
        for runner in runners:
            await runner.cleanup()
        await sched.stop()
        await client.close()


def run(cfg: settings_mod.Settings) -> None:
    settings_mod.use(cfg)
    configure_logging(cfg.operator)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve(cfg, stop)

    asyncio.run(main())
