"""Benchmark: what one request of each kind Roadie sends costs the control plane, against a
ConfigMap create measured in the same run.

P1 showed time to Ready on two cores is CPU spent, and most of Roadie's extra CPU in the API
server. This says which requests carry it: N of each are sent at the operator's concurrency (16)
with no operator running, and the CPU seconds every control-plane process spent over each phase
(its requests and the 8 s after, for the controllers' reaction), less what they spend idle over as
long, are divided by N.

    .venv/bin/python benchmarks/bench_request_costs.py [N]     # default 1000, about two minutes
"""

from __future__ import annotations

import asyncio
import datetime
import pathlib
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, str(pathlib.Path(__file__).parent))

import _harness as h
import _load as load
import lightkube
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace
from lightkube.types import PatchType

from roadie.core import events

SETTLE = 8.0  # seconds after a phase's last request that still count towards it
CONCURRENCY = 16  # the operator's workers
Job = Callable[[], Awaitable[Any]]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(phase: str, i: int) -> dict[str, Any]:
    """A Workshop status of the size the reconcile writes (three conditions, one session)."""
    t, ready = _now(), "True" if phase == "Ready" else "False"
    condition = {"status": ready, "reason": "Provisioning", "message": "creating the sessions"}
    return {
        "phase": phase,
        "observedGeneration": 1,
        "expiresAt": t,
        "url": f"http://w{i}.example",
        "sessions": [{"index": 0, "name": f"w{i}", "ready": phase == "Ready"}],
        "conditions": [
            {"type": kind, **condition, "lastTransitionTime": t, "observedGeneration": 1}
            for kind in ("Provisioned", "Ready", "ExpiringSoon")
        ],
    }


def _event(i: int, reason: str) -> Any:
    """A phase-change event, built as the operator builds it."""
    workshop = load.workshop("ws", f"w{i}")
    workshop["metadata"]["uid"] = f"uid-{i}"
    return events.build(workshop, events.NORMAL, reason, f"phase is now {reason}")


async def main(count: int) -> None:
    workshop = load.WORKSHOP_RESOURCE
    with h.cluster_lock(), h.own_cluster(22) as config:
        kube = h.sync_client(config)
        for ns in ("cm", "ws"):
            kube.create(Namespace(metadata=ObjectMeta(name=ns)))
        client = lightkube.AsyncClient(config=lightkube.KubeConfig.from_file(config.kubeconfig), field_manager="roadie")
        costs: dict[str, float] = {}

        idle: dict[str, float] = {}

        async def phase(name: str, jobs: list[Job]) -> None:
            """CPU over the phase, less what the cluster spends idle over as long."""
            before, start = h.cluster_cpu(config), time.monotonic()
            await load.run_all(jobs, CONCURRENCY)
            await asyncio.sleep(SETTLE)
            spent = h.cpu_delta(h.cluster_cpu(config), before)
            spent.pop("benchmark", None)
            if not jobs:
                idle.update({k: v / (time.monotonic() - start) for k, v in spent.items()})
                return
            spent = {k: v - idle.get(k, 0.0) * (time.monotonic() - start) for k, v in spent.items()}
            costs[name] = sum(spent.values()) / count * 1e3
            api = spent.get("kube-apiserver", 0.0) / count * 1e3
            h.log(f"{name:<34} {costs[name]:5.2f} ms of control-plane CPU each ({api:.2f} in the API server)")

        def patch(i: int, body: dict[str, Any]) -> Job:
            return lambda: client.patch(workshop.Status, f"w{i}", body, namespace="ws", patch_type=PatchType.MERGE)

        def configmap(i: int) -> Job:
            return lambda: client.create(ConfigMap(metadata=ObjectMeta(name=f"c{i}", namespace="cm"), data={"a": "b"}))

        def touch(i: int) -> Job:
            return lambda: client.patch(ConfigMap, f"c{i}", {"data": {"x": "y"}}, namespace="cm")

        def create(i: int) -> Job:
            return lambda: client.create(workshop.from_dict(load.workshop("ws", f"w{i}")))

        def event(i: int, reason: str) -> Job:
            return lambda: client.create(_event(i, reason))

        await asyncio.sleep(5)
        await phase("idle", [])
        await phase("ConfigMap create (the baseline)", [configmap(i) for i in range(count)])
        await phase("ConfigMap merge patch", [touch(i) for i in range(count)])
        await phase("Workshop create", [create(i) for i in range(count)])
        await phase(
            "Workshop status patch (Creating)", [patch(i, {"status": _status("Creating", i)}) for i in range(count)]
        )
        await phase("Workshop status patch (Ready)", [patch(i, {"status": _status("Ready", i)}) for i in range(count)])
        await phase(
            "Workshop status patch, phase only", [patch(i, {"status": {"phase": "Creating"}}) for i in range(count)]
        )
        await phase("Event create", [event(i, "Creating") for i in range(count)])
        await client.close()
    base = costs["ConfigMap create (the baseline)"]
    print("\nratios to a ConfigMap create: " + ", ".join(f"{k}: {v / base:.2f}" for k, v in costs.items()))


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000))
