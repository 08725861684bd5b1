"""The operator process: registers each enabled kind's handlers, then runs kopf.

Process-wide set-up happens in kopf's startup handler, not at import: the shared client, the
deadline scheduler, the probe and metrics endpoints, and kopf's own settings (no progress kept in
annotations; Roadie's state lives in each object's status).
"""

from __future__ import annotations

import asyncio
import logging
import pathlib
from typing import Any

import kopf

from roadie import catalog
from roadie import settings as settings_mod
from roadie.core import client, probes, schedule

log = logging.getLogger("roadie")


def _configure_logging(cfg: settings_mod.OperatorSettings) -> None:
    """kopf's own formatters (JSON carries each object's namespace and name as fields)."""
    level = getattr(logging, cfg.log_level.upper(), logging.INFO)
    log_format = kopf.LogFormat.JSON if cfg.log_format == "json" else kopf.LogFormat.FULL
    kopf.configure(debug=level <= logging.DEBUG, log_format=log_format)
    logging.getLogger().setLevel(level)
    for noisy in ("httpx", "httpx2", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if level > logging.DEBUG:  # kopf reports every handler call on this logger; Roadie logs what matters
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)


def build_registry(cfg: settings_mod.Settings) -> kopf.OperatorRegistry:
    registry = kopf.get_default_registry()
    for kind in catalog.enabled(cfg.operator.controllers):
        kind.register()
        log.info("controller %s enabled", kind.controller)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
        settings.posting.level = logging.WARNING
        settings.watching.server_timeout = 300
        settings.watching.reconnect_backoff = 1.0
        settings.batching.worker_limit = 50
        settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
        settings.persistence.diffbase_storage = kopf.StatusDiffBaseStorage(field="status.kopf.diffbase")
        kubeconfig = pathlib.Path(cfg.operator.kubeconfig) if cfg.operator.kubeconfig else None
        client.connect(kubeconfig)
        memo.scheduler_task = asyncio.create_task(schedule.get().run(), name="roadie-scheduler")
        memo.runners = await probes.serve(cfg.operator.host, cfg.operator.metrics_port, cfg.operator.health_port)

    @kopf.on.probe(registry=registry, id="api")
    async def api_probe(**_: Any) -> str:
        return "ok"

    @kopf.on.cleanup(registry=registry)
    async def cleanup(memo: Any, **_: Any) -> None:
        probes.set_ready(False)
        task = getattr(memo, "scheduler_task", None)
        if task is not None:
            task.cancel()
        for runner in getattr(memo, "runners", []):
            await runner.cleanup()
        await client.close()

    return registry


def run(cfg: settings_mod.Settings) -> None:
    settings_mod.use(cfg)
    _configure_logging(cfg.operator)
    registry = build_registry(cfg)
    ready = asyncio.Event()

    async def main() -> None:
        async def mark_ready() -> None:
            await ready.wait()
            probes.set_ready(True)
            log.info("operator ready: controllers %s", ", ".join(cfg.operator.controllers))

        waiter = asyncio.create_task(mark_ready())
        try:
            await kopf.operator(
                registry=registry,
                standalone=True,
                clusterwide=not cfg.operator.namespaces,
                namespaces=cfg.operator.namespaces,
                ready_flag=ready,
            )
        finally:
            waiter.cancel()

    asyncio.run(main())
