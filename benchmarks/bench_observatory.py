"""Benchmark: Observatory workflows from apply to Succeeded, against a bare async client that runs
the same DAG itself, in the same run, on the same local cluster.

Shapes, each of 100 and 1,000 tasks: `wide` (every task independent, then a join in two levels,
since a task may name at most 500 dependencies), `chain` (each task depends on the one before) and
`diamonds` (layers of ten tasks, each depending on two of the layer above). Pods "run" through
kwok's `pod-complete-never` stage for `--task-seconds` (their delay annotation), so what is
measured is orchestration: how soon a task's pod exists once its dependencies' pods succeeded.

The baseline is the least a controller could do: one watch on the namespace's pods, and as soon
as a pod succeeds, a create of each dependent whose dependencies all succeeded, at most
`--concurrency` pods Pending or Running at once (the Observatory's `maxConcurrent`). Its pods are
the operator's own manifests (`children.pod`), without owner and parent, so the operator ignores them.

Both runs are timed by the same observer, a third watch of the namespace: the delay of a task is
the time between the observer seeing its last dependency's pod Succeeded and seeing its pod
created. Reported: wall time of each, their ratio, and the mean and p95 of that delay; and where
each side's time went: to its first pod, from its first pod to its last pod done, and from there to
the end (for Roadie, the status saying Succeeded, seen on a watch).

    .venv/bin/python benchmarks/bench_observatory.py [--sizes 100,1000] [--shapes wide,chain,diamonds]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import lightkube
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Pod

from roadie.core import labels
from roadie.devcluster import cluster
from roadie.observatory import children, models

CONFIG = cluster.ClusterConfig(name="benchobs", port_base=18200, node_count=3)
METRICS_PORT = 18390
Observatory = create_namespaced_resource(
    models.API.group, models.API.version, models.API.kind, models.API.plural, verbs=None
)
DELAY = "pod-complete.stage.kwok.x-k8s.io/delay"
Tasks = list[dict[str, Any]]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- shapes ----------------------------------------------------------------------------------------
def _task(name: str, deps: list[str], seconds: float) -> dict[str, Any]:
    return {
        "name": name,
        "image": "busybox:1.36",
        "command": ["true"],
        "dependencies": deps,
        "metadata": {"annotations": {DELAY: f"{int(seconds * 1000)}ms"}},
    }


def wide(n: int, seconds: float) -> Tasks:
    joins = -(-(n - 1) // (models.MAX_DEPENDENCIES + 1)) if n > 2 else 0
    roots = n - 1 - joins
    tasks = [_task(f"w{i}", [], seconds) for i in range(roots)]
    size = -(-roots // max(1, joins)) if joins else roots
    groups = [[f"w{i}" for i in range(g * size, min(roots, (g + 1) * size))] for g in range(joins)]
    tasks += [_task(f"join{g}", group, seconds) for g, group in enumerate(groups)]
    tasks.append(_task("end", [f"join{g}" for g in range(joins)] or [t["name"] for t in tasks], seconds))
    return tasks


def chain(n: int, seconds: float) -> Tasks:
    return [_task(f"c{i}", [f"c{i - 1}"] if i else [], seconds) for i in range(n)]


def diamonds(n: int, seconds: float, width: int = 10) -> Tasks:
    tasks = []
    for layer in range(n // width):
        for i in range(width):
            deps = list(dict.fromkeys(f"d{layer - 1}-{(i + k) % width}" for k in range(2))) if layer else []
            tasks.append(_task(f"d{layer}-{i}", deps, seconds))
    return tasks


SHAPES: dict[str, Callable[[int, float], Tasks]] = {"wide": wide, "chain": chain, "diamonds": diamonds}


# -- the observer ------------------------------------------------------------------------------------
class Observer:
    """A watch of the namespace's pods: when each task's pod was first seen, and seen Succeeded."""

    def __init__(self, client: lightkube.AsyncClient, namespace: str) -> None:
        self.client, self.namespace = client, namespace
        self.created: dict[str, float] = {}
        self.succeeded: dict[str, float] = {}
        self.live: set[str] = set()
        self.most_live = 0
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        async for kind, pod in self.client.watch(Pod, namespace=self.namespace):
            now = time.monotonic()
            task = (pod.metadata.labels or {}).get(children.TASK_LABEL)
            if not task:
                continue
            self.created.setdefault(task, now)
            phase = pod.status.phase if pod.status else None
            if kind != "DELETED" and phase in (None, "Pending", "Running"):
                self.live.add(task)
            else:
                self.live.discard(task)
            self.most_live = max(self.most_live, len(self.live))
            if phase == "Succeeded":
                self.succeeded.setdefault(task, now)
            self.changed.set()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def delays(self, tasks: Tasks) -> list[float]:
        found = []
        for t in tasks:
            if t["dependencies"] and t["name"] in self.created:
                ready = max(self.succeeded[d] for d in t["dependencies"])
                found.append(self.created[t["name"]] - ready)
        return found


# -- the baseline --------------------------------------------------------------------------------------
async def baseline(client: lightkube.AsyncClient, namespace: str, name: str, tasks: Tasks, limit: int) -> None:
    """Run the DAG with a bare client: create each pod once its dependencies' pods succeeded."""
    spec = models.ObservatorySpec.model_validate({"tasks": tasks})
    fake = {"apiVersion": models.API.api_version, "kind": "Observatory",
            "metadata": {"name": name, "namespace": namespace, "uid": str(uuid.uuid4())}}  # fmt: skip
    waiting = {t.name: set(t.dependencies) for t in spec.tasks}
    dependents: dict[str, list[str]] = {t.name: [] for t in spec.tasks}
    for t in spec.tasks:
        for d in t.dependencies:
            dependents[d].append(t.name)
    by_name = {t.name: t for t in spec.tasks}
    ready = [t.name for t in spec.tasks if not t.dependencies]
    live: set[str] = set()
    done: set[str] = set()
    creating: set[asyncio.Task[Any]] = set()

    def manifest(task: str) -> dict[str, Any]:
        body = children.pod(fake, by_name[task], 1)
        meta = body["metadata"]
        meta.pop("ownerReferences", None)
        meta["annotations"].pop(labels.PARENT, None)
        meta["labels"][labels.MANAGED_BY] = "bench-baseline"
        return body

    def fill() -> None:
        while ready and len(live) < limit:
            task = ready.pop(0)
            live.add(task)
            job = asyncio.get_running_loop().create_task(client.create(Pod.from_dict(manifest(task))))
            creating.add(job)
            job.add_done_callback(creating.discard)

    fill()
    async for _kind, pod in client.watch(Pod, namespace=namespace, labels={labels.MANAGED_BY: "bench-baseline"}):
        task = (pod.metadata.labels or {}).get(children.TASK_LABEL, "") if pod.metadata else ""
        if pod.status and pod.status.phase == "Succeeded" and task not in done:
            done.add(task)
            live.discard(task)
            for dependent in dependents[task]:
                waiting[dependent].discard(task)
                if not waiting[dependent]:
                    ready.append(dependent)
            fill()
            if len(done) == len(tasks):
                return


async def finished(client: lightkube.AsyncClient, namespace: str, name: str) -> None:
    """Wait for the run to finish, on a watch: a GET of a 1,000-task Observatory (some 400 KB)
    costs the API server about 90 ms of CPU, so polling one ten times a second loaded the cluster
    with half a core that the baseline's run never paid."""
    watched = client.watch(Observatory, namespace=namespace, fields={"metadata.name": name})
    async for _kind, found in watched:
        status = found.to_dict().get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed"):
            assert status["phase"] == "Succeeded", status.get("message")
            return


# -- one measurement ------------------------------------------------------------------------------------
async def measure(kube: lightkube.Client, shape: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    tasks = SHAPES[shape](n, args.task_seconds)
    result: dict[str, Any] = {"shape": shape, "tasks": len(tasks), "concurrency": args.concurrency}
    for who in ("baseline", "roadie"):
        namespace = f"bench-{shape}-{n}-{who}-{uuid.uuid4().hex[:4]}"
        kube.create(Namespace(metadata=ObjectMeta(name=namespace)))
        client = lightkube.AsyncClient(config=lightkube.KubeConfig.from_file(CONFIG.kubeconfig))
        observer = Observer(client, namespace)
        observer.start()
        await asyncio.sleep(0.5)
        started = time.monotonic()
        if who == "baseline":
            await baseline(client, namespace, f"{shape}{n}", tasks, args.concurrency)
            while len(observer.succeeded) < len(tasks):
                observer.changed.clear()
                await asyncio.wait_for(observer.changed.wait(), 60)
        else:
            body = {"apiVersion": models.API.api_version, "kind": "Observatory",
                    "metadata": {"name": f"{shape}{n}", "namespace": namespace},
                    "spec": {"tasks": tasks, "maxConcurrent": args.concurrency}}  # fmt: skip
            await client.create(Observatory.from_dict(body))
            await finished(client, namespace, f"{shape}{n}")
        wall = time.monotonic() - started
        await observer.stop()
        delays = observer.delays(tasks)
        result[who] = {
            "seconds": round(wall, 2),
            "delay_mean": round(statistics.mean(delays), 3) if delays else None,
            "delay_p95": round(sorted(delays)[int(0.95 * (len(delays) - 1))], 3) if delays else None,
            "most_live": observer.most_live,
            # where the time went: to the first pod, first pod to last pod done, then to the end
            "first_pod": round(min(observer.created.values()) - started, 2),
            "pods": round(max(observer.succeeded.values()) - min(observer.created.values()), 2),
            "after_last_pod": round(started + wall - max(observer.succeeded.values()), 2),
        }
        log(f"{shape} {len(tasks)} {who}: {result[who]}")
        await client.close()
        kube.delete(Namespace, namespace)
    result["ratio"] = round(result["roadie"]["seconds"] / result["baseline"]["seconds"], 3)
    return result


async def main_async(args: argparse.Namespace) -> list[dict[str, Any]]:
    kube = lightkube.Client(config=lightkube.KubeConfig.from_file(CONFIG.kubeconfig), field_manager="roadie-bench")
    results = []
    for n in [int(s) for s in args.sizes.split(",")]:
        for shape in args.shapes.split(","):
            results.append(await measure(kube, shape, n, args))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--shapes", default="wide,chain,diamonds")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--task-seconds", type=float, default=1.0)
    parser.add_argument("--json", type=pathlib.Path)
    parser.add_argument("--keep-cluster", action="store_true")
    args = parser.parse_args()
    cluster.down(CONFIG, report=log)
    kubeconfig = cluster.up(CONFIG, report=log)
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    subprocess.run([sys.executable, "-m", "roadie", "install"], env=env, check=True, capture_output=True)
    operator_log = pathlib.Path(f"/tmp/roadie-bench-observatory-{time.strftime('%H%M%S')}.log")
    with open(operator_log, "ab") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "roadie", "run", "--controllers", "observatory", "--metrics-port",
             str(METRICS_PORT), "--health-port", str(METRICS_PORT + 1)], env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        time.sleep(5)
        results = asyncio.run(main_async(args))
    finally:
        operator.terminate()
        operator.wait(30)
        if not args.keep_cluster:
            cluster.down(CONFIG, report=log)
    print(f"\noperator log: {operator_log}")
    print(
        f"{'shape':10} {'tasks':>6} {'baseline s':>11} {'roadie s':>9} {'ratio':>6} "
        f"{'delay mean (b/r)':>18} {'p95 (b/r)':>14}"
    )
    for r in results:
        b, o = r["baseline"], r["roadie"]
        print(
            f"{r['shape']:10} {r['tasks']:>6} {b['seconds']:>11} {o['seconds']:>9} {r['ratio']:>6} "
            f"{b['delay_mean']!s:>8} / {o['delay_mean']!s:<8} {b['delay_p95']!s:>6} / {o['delay_p95']!s:<6}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
