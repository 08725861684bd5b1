"""Benchmark: the core at cluster scale, each figure a ratio or a count measured in one run.

What issue 7 asks the core to prove, on the local control plane, with the operator running as a
process exactly as `roadie run` runs in a cluster:

- `p1`: N Workshops (or `--kind preview`: PreviewEnvironments) applied at once, time until all are
  Ready, against a bare async client creating the same children at the same concurrency and waiting
  for the same Deployments; API requests per object, from the operator's own count and from the
  API server's (less what the cluster's components do alone and what the benchmark itself sent).
  Then, for Workshops, `rest` (requests a second and CPU with nothing changing) and `noise`
  (unrelated Secrets, ConfigMaps and Pods beside them: reconciles triggered, memory grown).
- `p2`: N Workshops whose expiries fall within one minute: how late each deletion is.
- `p3`: the operator's memory with N Ready Workshops.
- `r1`: the operator SIGKILLed at random moments while Workshops and PreviewEnvironments are made.
- `r2`: kube-apiserver, then etcd, restarted mid-run; and 429s, 500s and dropped connections
  injected by a proxy between the operator and the API server.

Each scenario brings up a cluster of its own (`benchcore`, its etcd wiped), holds the cluster-test
lock while it runs, and writes `benchmarks/results/<scenario>-<timestamp>.json` and `.png`.

    .venv/bin/python benchmarks/bench_core.py all              # the `make bench` scale (~15 min)
    .venv/bin/python benchmarks/bench_core.py p1 --count 1000 --noise 20000 --rest-seconds 300
    .venv/bin/python benchmarks/bench_core.py p1 --kind preview --count 1000
    .venv/bin/python benchmarks/bench_core.py p2 --count 1000
    .venv/bin/python benchmarks/bench_core.py p3 --count 5000
    .venv/bin/python benchmarks/bench_core.py r1 --count 200
    .venv/bin/python benchmarks/bench_core.py r2 --count 100
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import pathlib
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import _harness as h
import _load as load
import _plot as plot
import _resilience as resilience
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, PersistentVolume

from roadie.core import labels

RESULTS = pathlib.Path(__file__).parent / "results"


def nodes_for(pods: int) -> int:
    """Fake nodes (110 pod slots each) for `pods` pods, with room to spare; at most 50."""
    return max(3, min(50, math.ceil(pods / 100) + 2))


def save(name: str, result: dict[str, Any], lines: plot.Series, bars: list[plot.Bar]) -> pathlib.Path:
    RESULTS.mkdir(exist_ok=True)
    stem = RESULTS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    result["command"] = " ".join(["benchmarks/bench_core.py", *sys.argv[1:]])
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    plot.render(stem.with_suffix(".png"), f"{name}: {result.get('summary', '')}", lines, bars)
    h.log(f"wrote {stem}.json and .png")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list | dict)}, indent=2, default=str))
    return stem


def namespace(kube: Any, name: str) -> str:
    kube.create(Namespace(metadata=ObjectMeta(name=name)))
    return name


def clear(kube: Any, name: str, timeout: float, selected: dict[str, str] | None = None) -> float:
    """Delete a namespace (and the namespaces carrying the `selected` labels), and wait until they
    and their volumes are gone: the run after starts on the cluster the run before had. Left in
    place, the baseline's thousand Services made each of Roadie's ClusterIP allocations scan twice
    the addresses (the allocator counts the ones in use on every allocation), and every
    controller list twice the objects."""
    doomed = [name, *(ns.metadata.name for ns in kube.list(Namespace, labels=selected))] if selected else [name]
    for ns in doomed:
        kube.delete(Namespace, ns)

    def gone() -> bool:
        left = {ns.metadata.name for ns in kube.list(Namespace)}
        if left & set(doomed):
            return False
        claimed = (pv.spec.claimRef for pv in kube.list(PersistentVolume) if pv.spec and pv.spec.claimRef)
        return not any(ref.namespace in doomed for ref in claimed)

    return h.wait_until(f"{len(doomed)} namespace(s) and their volumes to be gone", gone, timeout, interval=1.0)


# -- P1, Rest, Noise ------------------------------------------------------------------------------
def _by_request(counts: Any) -> dict[str, int]:
    """API server requests by verb and resource, the most first: where two runs differ."""
    return {f"{verb} {resource}": n for (verb, resource), n in counts.most_common()}


async def _baseline(
    counted: load.Counted, kube: Any, config: Any, kind: str, count: int, concurrency: int
) -> dict[str, Any]:
    ns = namespace(kube, "bench-direct")
    follow = load.Follow(counted, load.DEPLOYMENTS, load.available, selector=load.BASELINE_LABEL)
    await follow.start()
    before, sent0, start = h.apiserver_requests(kube), counted.requests, time.time()
    cpu0, machine0 = h.cluster_cpu(config), h.machine_cpu()
    if kind == "workshop":
        sets = [load.workshop_children(ns, f"w{i}") for i in range(count)]
        jobs: list[Callable[[], Awaitable[None]]] = [
            functools.partial(load.create_owned, counted, docs) for docs in sets
        ]
    else:
        rounds = [load.preview_rounds(ns, 100_000 + i) for i in range(count)]
        jobs = [functools.partial(load.create_rounds, counted, r) for r in rounds]
    await load.run_all(jobs, concurrency)
    await follow.until(count, 120 + count * 1.0)
    seconds = time.time() - start
    by_request = h.delta(h.apiserver_requests(kube), before)
    cpu, machine = h.cpu_delta(h.cluster_cpu(config), cpu0), h.cpu_delta(h.machine_cpu(), machine0)
    await follow.stop()
    cleared = clear(kube, ns, 300 + count * 0.5, None if kind == "workshop" else {load.BASELINE_LABEL: "true"})
    h.log(f"the baseline's objects deleted in {cleared:.1f}s")
    return {
        "seconds": seconds,
        "apiserver": sum(by_request.values()),
        "apiserver_by_request": _by_request(by_request),
        "sent": counted.requests - sent0,
        "cpu_s": cpu,
        "machine_s": machine,
        "timeline": follow.timeline(start),
    }


async def _through_roadie(
    counted: load.Counted, kube: Any, config: Any, op: h.Operator, kind: str, count: int, concurrency: int
) -> dict[str, Any]:
    ns = namespace(kube, f"bench-{kind}")
    source = load.WORKSHOPS if kind == "workshop" else load.PREVIEWS
    follow = load.Follow(counted, source, load.phase_ready, namespace=ns)
    await follow.start()
    before, sent0, own0, start = h.apiserver_requests(kube), counted.requests, op.api_requests(), time.time()
    verbs0, cpu0, timing0 = op.api_by_verb(), h.cluster_cpu(config, op), op.timings()
    machine0 = h.machine_cpu()
    if kind == "workshop":
        docs = [load.workshop(ns, f"w{i}") for i in range(count)]
    else:
        docs = [load.preview(ns, i + 1) for i in range(count)]
    await load.run_all(load.jobs(counted, [[d] for d in docs]), concurrency)
    await follow.until(count, 120 + count * 1.5)
    seconds = time.time() - start
    by_request = h.delta(h.apiserver_requests(kube), before)
    by_verb = {v: n - verbs0.get(v, 0) for v, n in op.api_by_verb().items() if n - verbs0.get(v, 0)}
    cpu, machine = h.cpu_delta(h.cluster_cpu(config, op), cpu0), h.cpu_delta(h.machine_cpu(), machine0)
    timing = {k: round(v - timing0.get(k, 0.0), 3) for k, v in op.timings().items()}
    await follow.stop()
    return {
        "operator_timing": timing,
        "seconds": seconds,
        "apiserver": sum(by_request.values()),
        "apiserver_by_request": _by_request(by_request),
        "sent": counted.requests - sent0,
        "cpu_s": cpu,
        "machine_s": machine,
        "operator": op.api_requests() - own0,
        "operator_by_verb": by_verb,
        "timeline": follow.timeline(start),
    }


async def _rest(kube: Any, op: h.Operator, seconds: float, idle: float) -> dict[str, Any]:
    await asyncio.sleep(10)  # the last status writes and events land
    events0 = op.events_by_resource()
    api0, cpu0, rec0, before, t0 = (
        op.api_requests(),
        op.cpu_seconds(),
        op.reconciles(),
        h.apiserver_requests(kube),
        time.monotonic(),
    )
    rss: list[tuple[float, float]] = []
    while time.monotonic() - t0 < seconds:
        rss.append((time.monotonic() - t0, op.rss_mib()))
        await asyncio.sleep(min(5.0, seconds / 20))
    dt = time.monotonic() - t0
    cluster_rate = sum(h.delta(h.apiserver_requests(kube), before).values()) / dt
    return {
        "seconds": dt,
        "operator_requests_per_s": (op.api_requests() - api0) / dt,
        "operator_cpu_s": op.cpu_seconds() - cpu0,
        "operator_cpu_share": (op.cpu_seconds() - cpu0) / dt,
        "reconciles": op.reconciles() - rec0,
        "informer_events": _grown(op.events_by_resource(), events0),
        "apiserver_requests_per_s": cluster_rate,
        "apiserver_requests_per_s_over_idle": cluster_rate - idle,
        "rss_mib": op.rss_mib(),
        "rss_curve": rss,
    }


def _at(timeline: list[tuple[float, int]], q: str) -> float:
    """When the given share of the objects (p10: a tenth) had got there."""
    return h.quantile([t for t, _ in timeline], int(q[1:]) / 100)


def _grown(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


async def _noise(counted: load.Counted, kube: Any, op: h.Operator, count: int) -> dict[str, Any]:
    ns = namespace(kube, "bench-noise")
    rec0, rss0, cpu0, events0 = op.reconciles(), op.rss_mib(), op.cpu_seconds(), op.events_by_resource()
    start = time.monotonic()
    docs: list[dict[str, Any]] = []
    for i in range(count):
        meta = {"name": f"noise-{i}", "namespace": ns, "labels": {"app": "unrelated"}}
        if i % 3 == 0:
            docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {"k": "v" * 64}})
        elif i % 3 == 1:
            docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v" * 64}})
        else:
            docs.append(
                {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "metadata": meta,
                    "spec": {
                        "nodeSelector": {"roadie.dev/bench": "nowhere"},  # unschedulable: no pod slot used
                        "containers": [{"name": "c", "image": "example/unrelated"}],
                    },
                }
            )
    await load.run_all(load.jobs(counted, [[d] for d in docs]), 32)
    created = time.monotonic() - start
    await asyncio.sleep(20)
    return {
        "objects": count,
        "create_seconds": created,
        "reconciles": op.reconciles() - rec0,
        "window_seconds": time.monotonic() - start,
        "informer_events": _grown(op.events_by_resource(), events0),
        "rss_growth_mib": op.rss_mib() - rss0,
        "cpu_s": op.cpu_seconds() - cpu0,
    }


async def _again(
    counted: load.Counted, kube: Any, config: Any, op: h.Operator, args: argparse.Namespace, noise: bool
) -> dict[str, Any]:
    """The baseline once more, after Roadie's objects are gone (the operator back to take off its
    finalizers), on the cluster as Roadie's run left it."""
    op.start()
    try:
        for ns in ["bench-noise"] * noise + [f"bench-{args.kind}"]:
            owned = {labels.MANAGED_BY: "roadie"} if args.kind == "preview" else None  # their namespaces
            h.log(f"deleted {ns} in {clear(kube, ns, 300 + args.count * 1.0, owned):.1f}s")
    finally:
        op.stop()
    h.log("the baseline again, on the cluster Roadie's run had")
    again = await _baseline(counted, kube, config, args.kind, args.count, args.concurrency)
    h.log(f"baseline took {again['seconds']:.1f}s")
    return again


async def p1(args: argparse.Namespace) -> None:
    kind, count = args.kind, args.count
    with h.cluster_lock(), h.own_cluster(nodes_for(2 * count), keep=args.keep) as config:
        kube = h.sync_client(config)
        counted = load.Counted(config.kubeconfig)
        h.log(f"idle cluster for {args.idle_seconds}s")
        idle = h.idle_rate(kube, args.idle_seconds)
        h.log(f"baseline: {count} {kind} children sets, {args.concurrency} at a time")
        base = await _baseline(counted, kube, config, kind, count, args.concurrency)
        h.log(f"baseline took {base['seconds']:.1f}s; starting the operator")
        op = h.Operator(config.kubeconfig, load.OPERATOR_ENV, ["--workers", str(args.concurrency)])
        op.start()
        try:
            roadie = await _through_roadie(counted, kube, config, op, kind, count, args.concurrency)
            h.log(f"through Roadie took {roadie['seconds']:.1f}s")
            rss_ready = op.rss_mib()
            rest = await _rest(kube, op, args.rest_seconds, idle) if kind == "workshop" and args.rest_seconds else {}
            noise = await _noise(counted, kube, op, args.noise) if kind == "workshop" and args.noise else {}
        finally:
            op.stop()
        if rest:  # the same objects, nothing changing, no operator: what the cluster does alone
            after = h.idle_rate(kube, min(60.0, args.rest_seconds))
            rest["idle_after_requests_per_s"] = after
            rest["apiserver_requests_per_s_over_idle_after"] = rest["apiserver_requests_per_s"] - after
        try:
            again = await _again(counted, kube, config, op, args, bool(noise)) if args.baseline_again else None
        finally:
            await counted.close()
    # the ratio is against the mean of the baselines run before and after Roadie's, so that what
    # changes in the cluster over the run (a larger etcd, warmer caches) weighs on neither side
    baselines = [base] if again is None else [base, again]
    base_seconds = statistics.fmean(run["seconds"] for run in baselines)
    reaction = base["apiserver"] - idle * base["seconds"] - base["sent"]  # the control plane's own work
    by_server = roadie["apiserver"] - idle * roadie["seconds"] - roadie["sent"] - reaction
    result: dict[str, Any] = {
        "scenario": "p1",
        "kind": kind,
        "count": count,
        "concurrency": args.concurrency,
        "nodes": config.node_count,
        "idle_requests_per_s": idle,
        "baseline_seconds": base_seconds,
        "baseline_runs_seconds": [run["seconds"] for run in baselines],
        "roadie_seconds": roadie["seconds"],
        "ratio": roadie["seconds"] / base_seconds,
        "operator_requests_per_object": roadie["operator"] / count,
        **{
            f"{who}_ready_{q}_s": _at(run["timeline"], q)
            for who, run in (("baseline", base), ("roadie", roadie))
            for q in ("p10", "p50", "p90")
        },
        "apiserver_operator_requests_per_object": by_server / count,
        "apiserver_total_per_object_roadie": (roadie["apiserver"] - idle * roadie["seconds"]) / count,
        "apiserver_total_per_object_baseline": (base["apiserver"] - idle * base["seconds"]) / count,
        "operator_by_verb": roadie["operator_by_verb"],
        "baseline_cpu_s": base["cpu_s"],
        "baseline_again_cpu_s": {} if again is None else again["cpu_s"],
        # the machine's CPU by state over each run: steal says the host gave the cores elsewhere
        "machine_s": {"baseline": base["machine_s"], "roadie": roadie["machine_s"]}
        | ({} if again is None else {"baseline_again": again["machine_s"]}),
        "roadie_cpu_s": roadie["cpu_s"],
        "operator_timing": roadie["operator_timing"],
        "baseline_apiserver_by_request": base["apiserver_by_request"],
        "roadie_apiserver_by_request": roadie["apiserver_by_request"],
        "rss_mib_ready": rss_ready,
        "rest": {k: v for k, v in rest.items() if k != "rss_curve"},
        "noise": noise,
        "baseline_timeline": base["timeline"],
        "roadie_timeline": roadie["timeline"],
    }
    result["summary"] = (
        f"{count} {kind}s, ratio {result['ratio']:.2f}, {result['operator_requests_per_object']:.1f} req/object"
    )
    bars: list[plot.Bar] = [
        ("time ratio", result["ratio"], 1.25, True),
        ("operator req/object", result["operator_requests_per_object"], 15, True),
        ("apiserver req/object", result["apiserver_operator_requests_per_object"], 15, True),
    ]
    if rest:
        bars.append(("rest req/s", rest["operator_requests_per_s"], 1.0, True))
    if noise:
        bars += [
            ("noise reconciles", noise["reconciles"], 0, True),
            ("noise RSS MiB", noise["rss_growth_mib"], 5, True),
        ]
    lines = {
        "baseline (bare client)": [(t, float(n)) for t, n in base["timeline"]],
        "Roadie": [(t, float(n)) for t, n in roadie["timeline"]],
    }
    if again is not None:
        lines["baseline, after Roadie's run"] = [(t, float(n)) for t, n in again["timeline"]]
    save(f"p1-{kind}", result, lines, bars)


# -- P2 and P3 ----------------------------------------------------------------------------------
async def p2(args: argparse.Namespace) -> None:
    count = args.count
    lead = args.lead or 60 + 0.25 * count
    with h.cluster_lock(), h.own_cluster(nodes_for(count), keep=args.keep) as config:
        kube = h.sync_client(config)
        counted = load.Counted(config.kubeconfig)
        op = h.Operator(config.kubeconfig, {**load.OPERATOR_ENV, "ROADIE_WORKSHOP_EXPIRY_WARNING": "5s"})
        op.start()
        try:
            ns = namespace(kube, "bench-expiry")
            follow = load.Follow(counted, load.WORKSHOPS, load.deleting, namespace=ns)
            await follow.start()
            base = time.time() + lead
            jobs: list[Callable[[], Awaitable[None]]] = []
            for i in range(count):
                target = base + 60.0 * i / count

                async def job(i: int = i, target: float = target) -> None:
                    seconds = max(1, round(target - time.time()))
                    await load.create(counted, [load.workshop(ns, f"w{i}", f"{seconds}s")])

                jobs.append(job)
            await load.run_all(jobs, args.concurrency)
            h.log(f"{count} Workshops created; expiries from {lead:.0f}s to {lead + 60:.0f}s after start")
            await follow.until(count, lead + 60 + 300)
            late_seen, late_api = load.expiry_lateness(follow)
            hist = op.lateness_histogram()
        finally:
            await follow.stop()
            op.stop()
            await counted.close()
    result = {
        "scenario": "p2",
        "count": count,
        "with_expiresAt": len(late_seen),
        "lead_seconds": lead,
        "seen_p50_s": h.quantile(late_seen, 0.5),
        "seen_p99_s": h.quantile(late_seen, 0.99),
        "seen_max_s": max(late_seen, default=float("nan")),
        "api_p99_s": h.quantile(late_api, 0.99),
        "api_max_s": max(late_api, default=float("nan")),
        "operator_lateness_histogram": hist,
        "seen_lateness": sorted(late_seen),
    }
    result["summary"] = f"{count} expiries in a minute, p99 {result['seen_p99_s']:.3f}s late"
    curve = [(float(i), v) for i, v in enumerate(sorted(late_seen))]
    save(
        "p2",
        result,
        {"lateness (s), sorted": curve},
        [("p99 seen (s)", result["seen_p99_s"], 1.0, True), ("p99 API stamp (s)", result["api_p99_s"], 1.0, True)],
    )


async def p3(args: argparse.Namespace) -> None:
    count = args.count
    with h.cluster_lock(), h.own_cluster(nodes_for(count), keep=args.keep) as config:
        kube = h.sync_client(config)
        counted = load.Counted(config.kubeconfig)
        op = h.Operator(config.kubeconfig, load.OPERATOR_ENV)
        op.start()
        try:
            rss0 = op.rss_mib()
            roadie = await _through_roadie(counted, kube, config, op, "workshop", count, args.concurrency)
            await asyncio.sleep(30)
            rss = op.rss_mib()
        finally:
            op.stop()
            await counted.close()
    goal = 150.0 if count <= 1000 else 300.0
    result = {
        "scenario": "p3",
        "count": count,
        "rss_mib_started": rss0,
        "rss_mib_ready": rss,
        "goal_mib": goal,
        "seconds_to_ready": roadie["seconds"],
        "operator_requests_per_object": roadie["operator"] / count,
    }
    result["summary"] = f"{count} Ready Workshops, RSS {rss:.0f} MiB"
    save("p3", result, {"Ready": [(t, float(n)) for t, n in roadie["timeline"]]}, [("RSS MiB", rss, goal, True)])


SCENARIOS = {"p1": p1, "p2": p2, "p3": p3, "r1": resilience.r1, "r2": resilience.r2}


async def everything(args: argparse.Namespace) -> None:
    """The `make bench` scale: every scenario, small enough to finish in about fifteen minutes."""
    plan: list[tuple[str, dict[str, Any]]] = [
        ("p1", {"kind": "workshop", "count": 200, "rest_seconds": 60, "noise": 3000, "idle_seconds": 15}),
        ("p1", {"kind": "preview", "count": 100, "rest_seconds": 0, "noise": 0, "idle_seconds": 15}),
        ("p2", {"count": 200}),
        ("r1", {"count": 30}),
        ("r2", {"count": 30}),
    ]
    for name, overrides in plan:
        await SCENARIOS[name](argparse.Namespace(**(vars(args) | overrides)))


def table() -> str:
    """The latest result of each scenario as the Markdown table docs/performance.md keeps."""
    rows = ["| scenario | latest | command |", "|---|---|---|"]
    latest: dict[str, dict[str, Any]] = {}
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        latest[path.name.rsplit("-", 2)[0]] = data
    for name, data in sorted(latest.items()):
        rows.append(f"| {name} | {data.get('summary', '')} | `{data.get('command', '')}` |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=[*SCENARIOS, "all", "table"])
    parser.add_argument("--kind", choices=["workshop", "preview"], default="workshop")
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16, help="the operator's workers, and the baseline's")
    parser.add_argument("--rest-seconds", type=float, default=300)
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--noise", type=int, default=20_000, help="unrelated objects created beside (p1)")
    parser.add_argument("--lead", type=float, default=0, help="p2, r1: seconds from the start to the (first) expiry")
    parser.add_argument("--keep", action="store_true", help="leave the cluster up at the end")
    parser.add_argument(
        "--baseline-again",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="p1: run the baseline again after Roadie's run and take the mean of the two",
    )
    args = parser.parse_args()
    if args.scenario == "table":
        print(table())
        return
    asyncio.run(everything(args) if args.scenario == "all" else SCENARIOS[args.scenario](args))


if __name__ == "__main__":
    main()
