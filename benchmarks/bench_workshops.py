"""Benchmark: N Workshops to Ready through the operator, against the same children applied
directly (no operator) until their Deployments are available, on the same cluster in the same run.

The ratio is the operator's cost over what the control plane itself needs for the same objects.
It brings up (or reuses) a local cluster named `bench` and runs `roadie run` against it.

    .venv/bin/python benchmarks/bench_workshops.py [N]
"""

from __future__ import annotations

import copy
import os
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
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Namespace

from roadie.devcluster import cluster
from roadie.workshop import children, models

CONFIG = cluster.ClusterConfig(name="bench", port_base=16900, node_count=10)  # room for 2 x N sessions
Workshop = create_namespaced_resource("orchestra.io", "v1", "Workshop", "workshops")


def _phase(obj: Any) -> Any:
    return (obj.status or {}).get("phase")


def _wait(check: Callable[[], bool], timeout: float = 300) -> float:
    start = time.monotonic()
    while not check():
        if time.monotonic() - start > timeout:
            raise TimeoutError("the benchmark's objects did not get there")
        time.sleep(0.1)
    return time.monotonic() - start


def _namespace(kube: lightkube.Client, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kube.create(Namespace(metadata=ObjectMeta(name=name)))
    _wait(lambda: any(True for _ in kube.list(lightkube.resources.core_v1.ServiceAccount, namespace=name)))
    return name


def baseline(kube: lightkube.Client, count: int) -> float:
    ns = _namespace(kube, "bench-direct")
    parent = {
        "apiVersion": "orchestra.io/v1",
        "kind": "Workshop",
        "metadata": {"name": "x", "namespace": ns, "uid": "0"},
    }
    start = time.monotonic()
    for i in range(count):
        spec = models.WorkshopSpec.model_validate({"name": f"w{i}"})
        session = children.sessions(spec)[0]
        for built in (
            children.credentials(parent, spec, session, "rstudio", "x"),
            children.claim(parent, spec, session),
            children.deployment(parent, spec, session, 8787),
            children.service(parent, spec, session, 8787),
        ):
            doc = copy.deepcopy(built)
            doc["metadata"].pop("ownerReferences")  # no parent exists to own them
            kube.apply(codecs.from_dict(doc), force=True)
    _wait(
        lambda: (
            sum(1 for d in kube.list(Deployment, namespace=ns) if d.status and (d.status.availableReplicas or 0) >= 1)
            >= count
        )
    )
    return time.monotonic() - start


def through_roadie(kube: lightkube.Client, count: int) -> float:
    ns = _namespace(kube, "bench-roadie")
    start = time.monotonic()
    for i in range(count):
        doc = {"apiVersion": "orchestra.io/v1", "kind": "Workshop", "metadata": {"name": f"w{i}", "namespace": ns},
               "spec": {"name": f"w{i}"}}  # fmt: skip
        kube.create(codecs.from_dict(doc))
    _wait(lambda: sum(1 for w in kube.list(Workshop, namespace=ns) if _phase(w) == "Ready") >= count)
    return time.monotonic() - start


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    kubeconfig = cluster.up(CONFIG)
    kube = lightkube.Client(config=lightkube.KubeConfig.from_file(kubeconfig), field_manager="roadie-bench")
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    subprocess.run([sys.executable, "-m", "roadie", "install"], env=env, check=True, capture_output=True)
    log = tempfile.NamedTemporaryFile(prefix="roadie-bench-", suffix=".log", delete=False)  # noqa: SIM115
    operator = subprocess.Popen(
        [sys.executable, "-m", "roadie", "run", "--controllers", "workshop", "--metrics-port", "18980",
         "--health-port", "18981"], env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait(lambda: _ready("http://127.0.0.1:18981/readyz"), 60)
        direct = baseline(kube, count)
        roadie = through_roadie(kube, count)
    finally:
        operator.terminate()
        operator.wait(30)
    print(f"{count} workshops: direct apply to available {direct:.2f}s, through Roadie to Ready {roadie:.2f}s")
    print(f"ratio roadie/direct = {roadie / direct:.2f}  ({roadie / count * 1000:.0f} ms per workshop)")
    if not os.environ.get("ROADIE_BENCH_KEEP_CLUSTER"):
        cluster.down(CONFIG)


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


if __name__ == "__main__":
    main()
