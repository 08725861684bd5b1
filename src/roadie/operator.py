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
from collections.abc import Coroutine
from typing import Any

from roadie import catalog
from roadie import settings as settings_mod
from roadie.core import background, client, leader, manager, metrics, probes, schedule, secure_metrics

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


async def _until(stop: asyncio.Event, work: Coroutine[Any, Any, None]) -> bool:
    """Run `work` until it ends (True; its exception, if any, is raised) or `stop` is set first
    (False; `work` is cancelled)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait([task, stopping], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return False
    task.result()
    return True


async def _synced(mgr: manager.Manager) -> None:
    """The informers listed and watching: a standby keeps its caches warm, so it takes over with
    every object known and queued, without listing the world first."""
    for informer in mgr.informers:
        informer.start()
    await asyncio.gather(*(informer.synced.wait() for informer in mgr.informers))
    log.info("caches synced: %s", ", ".join(f"{i.source.name}={len(i)}" for i in mgr.informers))


class _Process:
    """What one operator process runs: the controllers and their caches, the kinds' start-up and
    shut-down hooks, the lease elector (with `--leader-elect`), and the HTTP endpoints."""

    def __init__(self, op: settings_mod.OperatorSettings) -> None:
        self.op = op
        schedule.reset()
        self.sched = schedule.get()
        self.sched.start()
        kubeconfig = pathlib.Path(op.kubeconfig) if op.kubeconfig else None
        client.connect(kubeconfig, qps=op.api_qps, burst=op.api_burst)
        controllers = []
        for kind in catalog.enabled(op.controllers):
            for controller in kind.controllers():
                controller.configure(resync_seconds=op.resync_seconds, workers=op.workers)
                controllers.append(controller)
            log.info("controller %s enabled", kind.controller)
        self.mgr = manager.Manager(client.http(), controllers, namespaces=op.namespaces, watch_timeout=op.watch_timeout)
        # a kind's module may hold process-wide resources (connections, background writers): its
        # `startup()` runs once this process is the active one, its `shutdown()` when it stops
        self.hooks = [importlib.import_module(kind.reconcile_module) for kind in catalog.enabled(op.controllers)]
        self.active = False
        self.elector: leader.Elector | None = None
        self.store: leader.LeaseStore | None = None
        if op.leader_elect:
            self.store = leader.LeaseStore.connect(kubeconfig, leader.namespace())
            self.elector = leader.Elector(self.store, leader.identity())
        metrics.LEADER.set(0 if self.elector else 1)
        self.background: list[asyncio.Task[None]] = []
        self.runners: list[Any] = []

    def problems(self) -> list[str]:
        if self.active:
            return self.mgr.problems()
        # no worker runs yet (caches syncing, or standing by): only the watches can be at fault
        return [f"watch of {i.source.name} failing" for i in self.mgr.informers if not i.healthy]

    async def open(self) -> None:
        probes.add_check(self.problems)
        probes.add_check(lambda: [] if self.sched.healthy else ["the deadline scheduler stopped"])
        op = self.op
        self.runners = await probes.serve(op.host, op.metrics_port, op.health_port, **_metrics_tls(op, self.background))
        if self.elector is not None:
            self.background.append(asyncio.create_task(self.elector.watch(), name="leader-election-watch"))

    async def activate(self) -> None:
        """Start reconciling: the kinds' hooks, then the workers (taking what the caches queued)."""
        self.active = True
        for module in self.hooks:
            if hasattr(module, "startup"):
                await module.startup()
        for controller in self.mgr.controllers:
            controller.queue.start()
        log.info("operator active: controllers %s", ", ".join(self.op.controllers))

    async def close(self, *, release: bool) -> None:
        """Stop every worker and watch first; only then give the Lease up, so that the next leader
        never works beside this one."""
        probes.set_ready(False)
        log.info("operator stopping")
        await self.mgr.stop()
        await background.drain()  # events and statuses still waiting to be sent
        if self.active:
            for module in self.hooks:
                if hasattr(module, "shutdown"):
                    await module.shutdown()
        if self.elector is not None and self.store is not None:
            if release:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.elector.release(), leader.RETRY_PERIOD)
            await self.store.close()
        for task in self.background:
            task.cancel()
        for runner in self.runners:
            await runner.cleanup()
        await self.sched.stop()
        await client.close()


async def serve(cfg: settings_mod.Settings, stop: asyncio.Event) -> None:
    """Run every enabled controller until `stop` is set. With leader election, the caches fill at
    once but nothing is reconciled (no worker runs, no deadline is scheduled, nothing is written)
    until this process holds the Lease; losing it raises LeadershipLostError, after the workers
    have stopped, so the process exits and starts clean."""
    process = _Process(cfg.operator)
    lost = False
    try:
        await process.open()
        if not await _until(stop, _synced(process.mgr)):
            return
        probes.set_ready(True)
        elector = process.elector
        if elector is not None and not await _until(stop, elector.acquire()):
            return
        await process.activate()
        if elector is None:
            await stop.wait()
            return
        try:
            await _until(stop, elector.keep())
        except leader.LeadershipLostError:
            lost = True
            raise
    finally:
        await process.close(release=not lost)


def _metrics_tls(op: settings_mod.OperatorSettings, background: list[asyncio.Task[None]]) -> dict[str, Any]:
    """Where the probes and metrics listen, and with `--metrics-secure` the TLS context and the
    authentication and authorisation in front of /metrics (its certificate reloaded on rotation)."""
    where: dict[str, Any] = {"metrics_host": op.metrics_host, "health_host": op.health_host}
    if not op.metrics_secure:
        return where
    context = secure_metrics.ssl_context(op.metrics_cert_dir, http2=op.enable_http2)
    if op.metrics_cert_dir:
        watching = secure_metrics.watch_certificates(context, op.metrics_cert_dir)
        background.append(asyncio.create_task(watching, name="metrics-certificates"))
    reviewer = secure_metrics.Reviewer()
    return {**where, "metrics_ssl": context, "metrics_middlewares": [secure_metrics.middleware(reviewer)]}


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

    try:
        asyncio.run(main())
    except leader.LeadershipLostError:
        # as controller-runtime: exit, so the pod restarts clean and stands by again
        raise SystemExit(1) from None
