"""R1 and R2 of `bench_core.py`: the operator SIGKILLed mid-creation, the control plane restarted
under it, and faults injected between it and the API server. What counts is that everything
converges by itself: all Ready, one child of each kind per parent, no orphan, expiries on time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import random
import time
from typing import Any

import _faultproxy
import _harness as h
import _load as load
import _plot as plot
from lightkube import codecs
from lightkube.generic_resource import create_global_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace, PersistentVolumeClaim, Secret, Service
from lightkube.types import CascadeType

from roadie.core import labels
from roadie.devcluster import binaries, cluster, pki, processes

_ = create_global_resource  # lightkube's generic resources are registered by `_load`


def audit(kube: Any, parents: set[str]) -> dict[str, Any]:
    """Children counted per parent (by Roadie's parent pointer): duplicates and orphans."""
    per: collections.Counter[tuple[str, str]] = collections.Counter()
    orphans: list[str] = []
    selector = {labels.MANAGED_BY: labels.MANAGER}
    for resource in (Deployment, Service, Secret, PersistentVolumeClaim, Namespace):
        for obj in kube.list(resource, namespace="*" if resource is not Namespace else None, labels=selector):
            pointer = (obj.metadata.annotations or {}).get(labels.PARENT, "")
            if obj.metadata.deletionTimestamp:
                continue
            if pointer not in parents:
                orphans.append(f"{resource.__name__}/{obj.metadata.namespace}/{obj.metadata.name} -> {pointer}")
            per[(pointer, resource.__name__)] += 1
    duplicates = [f"{p} has {n} {kind}s" for (p, kind), n in per.items() if n > 1]
    return {"children": sum(per.values()), "duplicates": duplicates, "orphans": orphans}


async def expiry_baseline(counted: load.Counted, dues: list[float], concurrency: int = 64) -> list[float]:
    """The same expiries done by a bare client, with the operator stopped: as many Workshops
    (with their four children, owned) and PreviewEnvironments (with their namespace and its
    contents), each deleted at its own moment, shaped like the operator's (`dues`, shifted to
    the future), a Workshop in the foreground and a PreviewEnvironment followed by its namespace,
    as the operator does, `concurrency` at a time (its deadline lane). Returns each object's
    first moment seen deleting minus its moment: what the control plane and the watch cost
    without an operator."""
    ns, half = "bench-expiry-baseline", len(dues) // 2
    await counted.client.create(Namespace(metadata=ObjectMeta(name=ns)))
    follows = [load.Follow(counted, source, load.deleting, namespace=ns) for source in (load.WORKSHOPS, load.PREVIEWS)]
    for follow in follows:
        await follow.start()

    async def make_workshop(i: int) -> None:
        made = await counted.client.create(codecs.from_dict(load.workshop(ns, f"w{i}")))
        owner = {"apiVersion": "orchestra.io/v1", "kind": "Workshop", "name": f"w{i}", "uid": made.metadata.uid,
                 "controller": True, "blockOwnerDeletion": True}  # fmt: skip
        children = load.workshop_children(ns, f"w{i}")
        for child in children:
            child["metadata"]["ownerReferences"] = [owner]
        await load.create(counted, children)

    spaces: dict[str, str] = {}

    async def make_preview(i: int) -> None:
        children = load.preview_children(ns, 10_000 + i)  # beside the operator's, not over them
        spaces[f"pr-{i + 1}"] = children[0]["metadata"]["name"]
        await load.create(counted, [load.preview(ns, i + 1), *children])

    made = [functools.partial(make_workshop, i) for i in range(half)]
    made += [functools.partial(make_preview, i) for i in range(len(dues) - half)]
    await load.run_all(made, 8)
    await asyncio.sleep(20)  # the pods started, the control plane quiet again
    lane = asyncio.Semaphore(concurrency)
    first, shift = min(dues), time.time() + 5 - min(dues)
    moments: dict[tuple[str, str], float] = {}

    async def expire(key: tuple[str, str], due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.time()))
        async with lane:
            kind, name = key
            if kind == "Workshop":
                await counted.client.delete(load.WORKSHOP_RESOURCE, name, namespace=ns, cascade=CascadeType.FOREGROUND)
            else:
                await counted.client.delete(load.PREVIEW_RESOURCE, name, namespace=ns)
                await counted.client.delete(Namespace, spaces[name])

    keys = [("Workshop", f"w{i}") for i in range(half)] + [
        ("PreviewEnvironment", f"pr-{i + 1}") for i in range(len(dues) - half)
    ]
    for key, due in zip(keys, sorted(dues), strict=True):
        moments[key] = due + shift
    h.log(f"baseline: {len(keys)} bare-client expiries from {first + shift - time.time():.1f}s on")
    await asyncio.gather(*(expire(key, due) for key, due in moments.items()))
    for follow in follows:
        await follow.until(len(keys) // 2, 120)
        await follow.stop()
    seen = {**{("Workshop", n): t for (_, n), t in follows[0].first.items()},
            **{("PreviewEnvironment", n): t for (_, n), t in follows[1].first.items()}}  # fmt: skip
    return [seen[key] - moments[key] for key in keys]


async def _expiries(
    op: h.Operator, counted: load.Counted, gone_ws: load.Follow, gone_pe: load.Follow, count: int, lead: float
) -> dict[str, Any]:
    """The expiries timed as in P2, what the operator sent meanwhile and how long its rate limit
    held it, then the same expiries by a bare client (the operator stopped) as the baseline."""
    before = (op.api_by_verb(), op.total("roadie_api_throttled_seconds_total"))
    await gone_ws.until(count, lead + 300)
    await gone_pe.until(count, lead + 300)
    (seen_ws, api_ws), (seen_pe, api_pe) = load.expiry_lateness(gone_ws), load.expiry_lateness(gone_pe)
    late, late_api = seen_ws + seen_pe, api_ws + api_pe
    hist = op.lateness_histogram()
    during = {v: n - before[0].get(v, 0) for v, n in op.api_by_verb().items() if n > before[0].get(v, 0)}
    throttled = op.total("roadie_api_throttled_seconds_total") - before[1]
    op.stop()
    baseline = await expiry_baseline(counted, _dues(gone_ws, gone_pe))
    return {
        "expiry_p99_s": h.quantile(late, 0.99),
        "expiry_max_s": max(late, default=float("nan")),
        "expired": len(late),
        "expiry_api_p99_s": h.quantile(late_api, 0.99),
        "baseline_expiry_p99_s": h.quantile(baseline, 0.99),
        "expiry_ratio": h.quantile(late, 0.99) / h.quantile(baseline, 0.99),
        "operator_lateness_histogram": hist,
        "requests_while_expiring": during,
        "throttled_while_expiring_s": throttled,
        "seen_lateness": sorted(late),
        "baseline_lateness": sorted(baseline),
    }


def _dues(*follows: load.Follow) -> list[float]:
    return [
        load.epoch(obj["status"]["expiresAt"])
        for follow in follows
        for obj in follow.last.values()
        if (obj.get("status") or {}).get("expiresAt")
    ]


async def r1(args: argparse.Namespace) -> None:
    count = args.count
    lead = args.lead or 90 + 0.6 * count  # expiries after everything has converged
    with h.cluster_lock(), h.own_cluster(max(3, min(50, 2 * count // 100 + 3)), keep=args.keep) as config:
        kube = h.sync_client(config)
        counted = load.Counted(config.kubeconfig)
        op = h.Operator(config.kubeconfig, load.OPERATOR_ENV)
        op.start()
        ns = "bench-restarts"
        kube.create(Namespace(metadata=ObjectMeta(name=ns)))
        ready_ws = load.Follow(counted, load.WORKSHOPS, load.phase_ready, namespace=ns)
        ready_pe = load.Follow(counted, load.PREVIEWS, load.phase_ready, namespace=ns)
        gone_ws = load.Follow(counted, load.WORKSHOPS, load.deleting, namespace=ns)
        gone_pe = load.Follow(counted, load.PREVIEWS, load.deleting, namespace=ns)
        for follow in (ready_ws, ready_pe, gone_ws, gone_pe):
            await follow.start()
        start = time.time()
        expiry = start + lead
        docs = [load.workshop(ns, f"w{i}", f"{round(expiry - time.time())}s") for i in range(count)]
        docs += [load.preview(ns, i + 1, ttl=round(expiry - time.time())) for i in range(count)]
        random.Random(count).shuffle(docs)
        creating = asyncio.create_task(load.run_all(load.jobs(counted, [[d] for d in docs]), 8))
        kills = []
        rng = random.Random()
        try:
            for _ in range(5):
                await asyncio.sleep(rng.uniform(2.0, 12.0))
                kills.append(time.time() - start)
                op.kill()
                h.log(f"SIGKILL at {kills[-1]:.1f}s; {len(ready_ws.first)} + {len(ready_pe.first)} Ready")
                await asyncio.to_thread(op.start)
            await creating
            await ready_ws.until(count, 600)
            await ready_pe.until(count, 600)
            converged = time.time() - start
            parents = {
                labels.parent_ref(kind, ns, f"w{i}" if kind == "Workshop" else f"pr-{i + 1}")
                for kind in ("Workshop", "PreviewEnvironment")
                for i in range(count)
            }
            found = audit(kube, parents)
            h.log(f"all Ready at {converged:.0f}s; waiting for the expiries at {lead:.0f}s")
            expiries = await _expiries(op, counted, gone_ws, gone_pe, count, lead)
        finally:
            for follow in (ready_ws, ready_pe, gone_ws, gone_pe):
                await follow.stop()
            op.stop()
            await counted.close()
    result = {
        "scenario": "r1",
        "workshops": count,
        "previews": count,
        "kills_at_s": kills,
        "all_ready_s": converged,
        "children": found["children"],
        "duplicates": found["duplicates"],
        "orphans": found["orphans"],
        **expiries,
    }
    lines = {
        "Workshops Ready": [(t, float(n)) for t, n in ready_ws.timeline(start)],
        "PreviewEnvironments Ready": [(t, float(n)) for t, n in ready_pe.timeline(start)],
    }
    _save_r1(result, lines)


def _save_r1(result: dict[str, Any], lines: dict[str, list[tuple[float, float]]]) -> None:
    result["summary"] = (
        f"5 SIGKILLs: {len(result['duplicates'])} duplicates, {len(result['orphans'])} orphans, "
        f"expiry p99 {result['expiry_p99_s']:.2f}s, bare client {result['baseline_expiry_p99_s']:.2f}s "
        f"({result['expiry_ratio']:.2f}x)"
    )
    bars: list[plot.Bar] = [
        ("duplicates", len(result["duplicates"]), 0, True),
        ("orphans", len(result["orphans"]), 0, True),
        ("expiry p99 (s)", result["expiry_p99_s"], 1.0, True),
        ("expiry p99, bare client (s)", result["baseline_expiry_p99_s"], 1.0, True),
    ]
    import bench_core

    bench_core.save("r1", result, lines, bars)


async def _probe(counted: load.Counted, ns: str, name: str, since: float) -> float:
    """Seconds from `since` until a Workshop created now has a status (the operator is working)."""
    follow = load.Follow(counted, load.WORKSHOPS, lambda o: bool((o.get("status") or {}).get("phase")), namespace=ns)
    await follow.start()
    await load.create(counted, [load.workshop(ns, name)])
    try:
        return await follow.seen((ns, name), 120) - since
    finally:
        await follow.stop()


async def _retry(make: Any, limit: float = 60) -> Any:
    deadline = time.monotonic() + limit
    while True:
        try:
            return await make()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def r2(args: argparse.Namespace) -> None:
    count = args.count
    with h.cluster_lock(), h.own_cluster(max(3, 3 * count // 100 + 3), keep=args.keep) as config:
        kube = h.sync_client(config)
        state = config.state
        counted = load.Counted(config.kubeconfig)
        op = h.Operator(config.kubeconfig, load.OPERATOR_ENV)
        op.start()
        ns = "bench-outage"
        kube.create(Namespace(metadata=ObjectMeta(name=ns)))
        ready = load.Follow(counted, load.WORKSHOPS, load.phase_ready, namespace=ns)
        await ready.start()
        result: dict[str, Any] = {"scenario": "r2", "count": count}
        try:
            for part, component in (("apiserver", "kube-apiserver"), ("etcd", "etcd")):
                await load.run_all(load.jobs(counted, [[load.workshop(ns, f"{part}-{i}")] for i in range(count)]), 16)
                await asyncio.sleep(2)  # mid-run: the operator is busy with them
                processes.stop(state, component)
                h.log(f"{component} stopped; {len(ready.first)} Ready")
                await asyncio.sleep(10)
                if component == "etcd":  # `cluster.up` would wipe a stopped etcd: start it as it was
                    argv = cluster._argv(config, binaries.resolve(report=h.log), pki.ensure(state / "pki"), "etcd")
                    processes.start(state, "etcd", argv)
                    h.wait_until("etcd", lambda: processes.find(state, "etcd") is not None, 30)
                else:
                    await asyncio.to_thread(cluster.up, config, h.log)
                back = time.time()
                await asyncio.to_thread(h.wait_until, "the API server", lambda: cluster.api_ready(config), 60)
                result[f"{part}_recovery_s"] = await _retry(
                    functools.partial(_probe, counted, ns, f"{part}-probe", back)
                )
                result[f"{part}_healthz_ok"] = op.healthy()
                h.log(f"after the {component} restart the operator answered in {result[f'{part}_recovery_s']:.1f}s")
            await ready.until(2 * count + 2, 300)
            result["outage_all_ready"] = True
            result["operator_restarted"] = op.proc is not None and op.proc.poll() is not None
            op.stop()
            result.update(await _faults(config, counted, ready, ns, count))
        finally:
            await ready.stop()
            op.stop()
            await counted.close()
    result["summary"] = (
        f"recovery {result.get('apiserver_recovery_s', float('nan')):.1f}s / "
        f"{result.get('etcd_recovery_s', float('nan')):.1f}s; faults {result.get('faults_injected')}"
    )
    bars: list[plot.Bar] = [
        ("apiserver recovery (s)", result.get("apiserver_recovery_s", 99), 30, True),
        ("etcd recovery (s)", result.get("etcd_recovery_s", 99), 30, True),
    ]
    import bench_core

    bench_core.save("r2", result, {}, bars)


async def _faults(
    config: cluster.ClusterConfig, counted: load.Counted, ready: load.Follow, ns: str, count: int
) -> dict[str, Any]:
    """The operator behind the fault-injecting proxy, making `count` more Workshops."""
    state = config.state
    proxy = _faultproxy.FaultProxy(
        config.server, state / "pki/ca.crt", state / "pki/admin.crt", state / "pki/admin.key"
    )
    await proxy.start()
    faulty = h.Operator(proxy.kubeconfig(h.LOG_DIR / "faulty-kubeconfig"), load.OPERATOR_ENV)
    try:
        await asyncio.to_thread(faulty.start)
        start = time.time()
        before = len(ready.first)
        await load.run_all(load.jobs(counted, [[load.workshop(ns, f"faulty-{i}")] for i in range(count)]), 16)
        await ready.until(before + count, 300)
        alive = faulty.proc is not None and faulty.proc.poll() is None
        return {
            "faults_all_ready_s": time.time() - start,
            "faults_injected": dict(proxy.injected),
            "requests_passed": proxy.passed,
            "faulty_operator_alive": alive,
            "faulty_log": str(faulty.log),
        }
    finally:
        faulty.stop()
        await proxy.stop()
