"""Benchmark: time from creating a Cyberdesk to its `Running`, with a new VM against a VM claimed
from the warm pool, on the same cluster, through the same operator, in the same run.

The local cluster's virt-controller stand-in boots nothing; to stand for a boot, the benchmark's
template asks it to spend `PHASE_DELAY` in each of the instance's phases (Pending, Scheduling,
Scheduled), about what a small container-disk VM takes to be scheduled and started. Desktops are
created one at a time so each is measured alone; the pool holds as many VMs as there are desktops,
filled before the first is created.

    .venv/bin/python benchmarks/bench_cyberdesk.py [N]
"""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import lightkube
from lightkube import codecs
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace

from roadie.cyberdesk import default_template, pool
from roadie.devcluster import cluster, vmlifecycle

CONFIG = cluster.ClusterConfig(name="bench", port_base=16900)
Cyberdesk = create_namespaced_resource("cyberdesk.io", "v1alpha1", "Cyberdesk", "cyberdesks")
VM = create_namespaced_resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines")
VMI = create_namespaced_resource("kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances")
TEMPLATE = "bench-vm-template"
PHASE_DELAY = "2s"


def _wait(check: Callable[[], Any], timeout: float = 300, interval: float = 0.05) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError("the benchmark's desktops did not get there")
        time.sleep(interval)
    return time.monotonic() - start


def _template() -> str:
    annotation = f"  annotations:\n    {vmlifecycle.DELAY_ANNOTATION}: '{PHASE_DELAY}'\n  labels:\n"
    return default_template.TEMPLATE.replace("  labels:\n", annotation, 1)


def _running(kube: lightkube.Client, namespace: str, name: str) -> bool:
    return (kube.get(Cyberdesk, name, namespace=namespace).get("status") or {}).get("phase") == "Running"


def _warm(kube: lightkube.Client, namespace: str) -> int:
    count = 0
    for vm in kube.list(VM, namespace=namespace, labels={pool.POOL_LABEL: TEMPLATE}):
        phase = None
        with contextlib.suppress(lightkube.ApiError):
            phase = (kube.get(VMI, str(vm.metadata.name), namespace=namespace).get("status") or {}).get("phase")
        count += phase == "Running"
    return count


def to_running(kube: lightkube.Client, namespace: str, count: int) -> list[float]:
    times = []
    for i in range(count):
        name = f"d{i}-{uuid.uuid4().hex[:4]}"
        doc = {"apiVersion": "cyberdesk.io/v1alpha1", "kind": "Cyberdesk",
               "metadata": {"name": name, "namespace": namespace}, "spec": {"timeoutMs": 3_600_000}}  # fmt: skip
        start = time.monotonic()
        kube.create(codecs.from_dict(doc))
        _wait(lambda name=name: _running(kube, namespace, name), 120)  # type: ignore[misc]
        times.append(time.monotonic() - start)
    return times


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    kubeconfig = cluster.up(CONFIG)
    kube = lightkube.Client(config=lightkube.KubeConfig.from_file(kubeconfig), field_manager="roadie-bench")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    subprocess.run([sys.executable, "-m", "roadie", "install"], env=env, check=True, capture_output=True)
    cold, warm = f"bench-cold-{uuid.uuid4().hex[:4]}", f"bench-warm-{uuid.uuid4().hex[:4]}"
    for name in (cold, warm):
        kube.create(Namespace(metadata=ObjectMeta(name=name)))
    template = ConfigMap(metadata=ObjectMeta(name=TEMPLATE, namespace="cyberdesk-system"), data={"t": _template()})
    kube.apply(template, force=True)
    env |= {
        "ROADIE_CYBERDESK_TEMPLATE_NAME": TEMPLATE,
        "ROADIE_CYBERDESK_POOL_SIZE": str(count),
        "ROADIE_CYBERDESK_POOL_NAMESPACES": warm,
    }
    log = tempfile.NamedTemporaryFile(prefix="roadie-bench-", suffix=".log", delete=False)  # noqa: SIM115
    operator = subprocess.Popen(
        [sys.executable, "-m", "roadie", "run", "--controllers", "cyberdesk", "--metrics-port", "18980",
         "--health-port", "18981"], env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait(lambda: _ready("http://127.0.0.1:18981/readyz"), 60)
        new = to_running(kube, cold, count)
        _wait(lambda: _warm(kube, warm) >= count, 300, interval=0.5)
        pooled = to_running(kube, warm, count)
    finally:
        operator.terminate()
        operator.wait(30)
        for name in (cold, warm):
            kube.delete(Namespace, name)
    print(f"{count} desktops, instance phases {PHASE_DELAY} each:")
    print(f"  new VM:    median {statistics.median(new):.2f}s  max {max(new):.2f}s")
    print(f"  warm pool: median {statistics.median(pooled):.2f}s  max {max(pooled):.2f}s")
    print(f"ratio pool/new = {statistics.median(pooled) / statistics.median(new):.2f}")
    if not os.environ.get("ROADIE_BENCH_KEEP_CLUSTER"):
        cluster.down(CONFIG)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    main()
