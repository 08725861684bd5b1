"""What every scenario of `bench_core.py` needs: a local cluster of its own (under the shared
cluster lock), the operator as a real process, and the three ways of counting its cost.

Counting happens where it cannot be flattered: the API server's own `apiserver_request_total`
(WATCH excluded, as `count-api-requests` reads it), the operator's `roadie_*` metrics on its
metrics port, and the kernel's view of the process (`/proc/<pid>/stat` and `status`).
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import pathlib
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import lightkube

from roadie.devcluster import cluster, processes

LOCK = pathlib.Path("/tmp/roadie-cluster-tests.lock")
PORT_BASE = 17700
METRICS_PORT = 18990
LOG_DIR = pathlib.Path("/tmp/roadie-bench-core")
_REQUEST = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:]+)(\{(?P<labels>[^}]*)\})? (?P<value>\S+)$")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextlib.contextmanager
def cluster_lock() -> Iterator[None]:
    """One load on the machine at a time: the cluster tests take the same lock."""
    with open(LOCK, "a") as handle:
        log(f"waiting for {LOCK}")
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def own_cluster(nodes: int, keep: bool = False) -> Iterator[cluster.ClusterConfig]:
    """A fresh cluster named `benchcore` (its etcd wiped), taken down at the end."""
    config = cluster.ClusterConfig(name="benchcore", port_base=PORT_BASE, node_count=nodes)
    cluster.down(config, report=log)
    cluster.up(config, report=log)
    env = {**os.environ, "KUBECONFIG": str(config.kubeconfig)}
    subprocess.run([sys.executable, "-m", "roadie", "install"], env=env, check=True, capture_output=True)
    try:
        yield config
    finally:
        if not keep:
            cluster.down(config, report=log)


def sync_client(config: cluster.ClusterConfig) -> lightkube.Client:
    return lightkube.Client(config=lightkube.KubeConfig.from_file(config.kubeconfig), field_manager="roadie-bench")


class Operator:
    """`roadie run` as a child process; killed, restarted and measured from outside."""

    def __init__(self, kubeconfig: pathlib.Path, env: dict[str, str] | None = None, args: list[str] | None = None):
        self.kubeconfig = kubeconfig
        self.env = env or {}
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        LOG_DIR.mkdir(exist_ok=True)
        self.log = LOG_DIR / f"operator-{time.strftime('%Y%m%d-%H%M%S')}.log"

    def start(self, wait: bool = True) -> None:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), **self.env}
        argv = [
            sys.executable,
            "-m",
            "roadie",
            "run",
            "--controllers",
            "workshop,preview",
            "--metrics-port",
            str(METRICS_PORT),
            "--health-port",
            str(METRICS_PORT + 1),
            *self.args,
        ]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        if wait:
            wait_until("the operator's /readyz", self.ready, 120)

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"the operator exited with {self.proc.returncode}; see {self.log}")
        return _http_ok(f"http://127.0.0.1:{METRICS_PORT + 1}/readyz")

    def healthy(self) -> bool:
        return _http_ok(f"http://127.0.0.1:{METRICS_PORT + 1}/healthz")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return process_cpu(self.pid)

    def rss_mib(self) -> float:
        for line in pathlib.Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{METRICS_PORT}/metrics", timeout=10) as response:
            text = response.read().decode()
        samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for line in text.splitlines():
            m = _SAMPLE.match(line)
            if m and not line.startswith("#"):
                labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group("labels") or "")))
                samples[(m.group("name"), labels)] = float(m.group("value"))
        return samples

    def total(self, name: str, where: Callable[[dict[str, str]], bool] = lambda _: True) -> float:
        return sum(v for (n, labels), v in self.metrics().items() if n == name and where(dict(labels)))

    def lateness_histogram(self) -> dict[str, float]:
        """The operator's own `roadie_deadline_lateness_seconds`: cumulative counts by bucket."""
        return {
            dict(labels).get("le", "?"): value
            for (name, labels), value in self.metrics().items()
            if name == "roadie_deadline_lateness_seconds_bucket"
        }

    def api_requests(self) -> float:
        """Requests the operator sent, WATCH excluded (its own count, by verb)."""
        return self.total("roadie_api_requests_total", lambda labels: labels.get("verb") != "WATCH")

    def api_by_verb(self) -> dict[str, float]:
        found: dict[str, float] = collections.defaultdict(float)
        for (name, labels), value in self.metrics().items():
            if name == "roadie_api_requests_total":
                found[dict(labels).get("verb", "?")] += value
        return dict(found)

    def events_by_resource(self) -> dict[str, float]:
        """Watch events received (bookmarks excluded), by resource."""
        found: dict[str, float] = collections.defaultdict(float)
        for (name, labels), value in self.metrics().items():
            if name == "roadie_informer_events_total" and dict(labels).get("type") != "BOOKMARK":
                found[dict(labels).get("resource", "?")] += value
        return dict(found)

    def timings(self) -> dict[str, float]:
        """Sums and counts of the operator's reconcile and queue-wait histograms, and the seconds
        its client-side rate limit held requests back: where an object's time went."""
        found: dict[str, float] = {}
        for (name, _labels), value in self.metrics().items():
            for metric in ("roadie_reconcile_duration_seconds", "roadie_workqueue_wait_seconds"):
                if name in (f"{metric}_sum", f"{metric}_count"):
                    found[name] = found.get(name, 0.0) + value
            if name == "roadie_api_throttled_seconds_total":
                found[name] = found.get(name, 0.0) + value
        return found

    def reconciles(self) -> float:
        return self.total("roadie_reconcile_total")


def process_cpu(pid: int) -> float:
    """CPU seconds a process has used (user and system), from `/proc/<pid>/stat`; 0 if gone."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14 and 15)


def cluster_cpu(config: cluster.ClusterConfig, op: Operator | None = None) -> dict[str, float]:
    """CPU seconds so far of each local-cluster component, the operator and this benchmark: the
    difference over a phase says who spent the machine's two cores on it."""
    found = {name: processes.find(config.state, name) for name in processes.known(config.state)}
    used = {name: process_cpu(run.pid) for name, run in found.items() if run is not None}
    if op is not None and op.proc is not None:
        used["operator"] = process_cpu(op.pid)
    used["benchmark"] = time.process_time()
    return used


def machine_cpu() -> dict[str, float]:
    """The machine's CPU seconds so far by state, from `/proc/stat`. `steal` is time the
    hypervisor gave to other guests while this one wanted it: on a shared host the same work then
    takes longer, in whichever run it falls."""
    fields = pathlib.Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    return {name: int(value) / CLK_TCK for name, value in zip(names, fields, strict=True)}


def cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def wait_until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> float:
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except (OSError, lightkube.ApiError):
            pass
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def apiserver_requests(kube: lightkube.Client) -> collections.Counter[tuple[str, str]]:
    """`apiserver_request_total` by (verb, resource), WATCH excluded."""
    text = kube._client._client.get("/metrics").text  # the admin kubeconfig may read /metrics
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    for line in text.splitlines():
        m = _REQUEST.match(line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group("labels")))
        if labels.get("verb") != "WATCH":
            counts[(labels.get("verb", "?"), labels.get("resource", "?"))] += int(float(m.group("value")))
    return counts


def delta(after: collections.Counter[Any], before: collections.Counter[Any]) -> collections.Counter[Any]:
    return collections.Counter({k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0) > 0})


def idle_rate(kube: lightkube.Client, seconds: float) -> float:
    """API requests a second the cluster's own components make with nothing happening."""
    before, t0 = apiserver_requests(kube), time.monotonic()
    time.sleep(seconds)
    diff = delta(apiserver_requests(kube), before)
    return sum(diff.values()) / (time.monotonic() - t0)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]
