"""`roadie cluster up | down | status`: the real control plane on loopback, supervised by Roadie.

etcd, kube-apiserver (certificate authentication, RBAC and the default admission plugins, as in a
real cluster), kube-controller-manager with every controller, kube-scheduler, kwok playing the
kubelets of a few fake nodes, a storage provisioner for the default StorageClass, and two stand-ins
for what kwok cannot do: an executor that really runs the Workspace engine's pods as local processes
(their kubelet), and KubeVirt's CRDs with a virt-controller that moves VirtualMachines along. A fresh
etcd is used whenever etcd itself is not running, so `down` then `up` gives a clean cluster.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from roadie.devcluster import binaries, kubeconfigs, kubevirt, nodes, pki, processes
from roadie.devcluster import versions as versions_mod

#: Components in start order; `down` stops them in reverse, the operator (if any) first.
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "provisioner",
    "pod-executor",
    "virt-controller",
)
OPERATOR = "operator"
SERVICE_CIDR = "10.96.0.0/16"

Reporter = Callable[[str], None]


class ClusterError(RuntimeError):
    """The cluster could not be brought up; the message names the log to read."""


def state_root() -> pathlib.Path:
    explicit = os.environ.get("ROADIE_STATE_DIR")
    if explicit:
        return pathlib.Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(pathlib.Path.home() / ".local" / "state")
    return pathlib.Path(base) / "roadie"


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    name: str = "roadie"
    port_base: int = 16400
    node_count: int = 3
    root: pathlib.Path | None = None

    @property
    def state(self) -> pathlib.Path:
        return (self.root or state_root()) / self.name

    @property
    def apiserver_port(self) -> int:
        return self.port_base + 43

    @property
    def etcd_port(self) -> int:
        return self.port_base + 79

    @property
    def etcd_peer_port(self) -> int:
        return self.port_base + 80

    @property
    def controller_manager_port(self) -> int:
        return self.port_base + 57

    @property
    def scheduler_port(self) -> int:
        return self.port_base + 59

    @property
    def kwok_port(self) -> int:
        return self.port_base + 47

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.apiserver_port}"

    @property
    def kubeconfig(self) -> pathlib.Path:
        return self.state / "kubeconfig"

    def ports(self) -> dict[str, int]:
        return {
            "kube-apiserver": self.apiserver_port,
            "etcd": self.etcd_port,
            "etcd-peer": self.etcd_peer_port,
            "kube-controller-manager": self.controller_manager_port,
            "kube-scheduler": self.scheduler_port,
            "kwok": self.kwok_port,
        }


def recorded(name: str, root: pathlib.Path | None = None) -> ClusterConfig | None:
    """The configuration a cluster was last brought up with, read back from its `cluster.json`.

    `status`, `down` and `kubeconfig` are given only a name; without this they would guess the
    ports and miss a cluster started on other ones (the test suite's runs on its own port base).
    """
    config = ClusterConfig(name=name, root=root)
    try:
        record = json.loads((config.state / "cluster.json").read_text())
    except (OSError, ValueError):
        return None
    port_base = record.get("port_base")
    if not isinstance(port_base, int):  # written before the port base was recorded
        apiserver = record.get("ports", {}).get("kube-apiserver")
        if not isinstance(apiserver, int):
            return None
        port_base = apiserver - (config.apiserver_port - config.port_base)
    node_count = record.get("node_count")
    return dataclasses.replace(config, port_base=port_base, node_count=node_count if isinstance(node_count, int) else 3)


def _component_kubeconfig(config: ClusterConfig, stem: str) -> pathlib.Path:
    return config.state / "kubeconfigs" / f"{stem}.kubeconfig"


def _argv(config: ClusterConfig, bins: pathlib.Path, certs: pki.Pki, name: str) -> list[str]:
    state = config.state
    if name == "etcd":
        peer = f"http://127.0.0.1:{config.etcd_peer_port}"
        client = f"http://127.0.0.1:{config.etcd_port}"
        return [
            str(bins / "etcd"),
            "--name=roadie",
            f"--data-dir={state / 'etcd'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=roadie={peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
    if name == "kube-apiserver":
        return [
            str(bins / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{config.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={config.apiserver_port}",
            f"--tls-cert-file={certs.serving_cert}",
            f"--tls-private-key-file={certs.serving_key}",
            f"--client-ca-file={certs.ca_cert}",
            f"--service-account-key-file={certs.sa_pub}",
            f"--service-account-signing-key-file={certs.sa_key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            "--allow-privileged=true",
            "--profiling=false",
            "--v=1",
        ]
    if name == "kube-controller-manager":
        kubeconfig = _component_kubeconfig(config, "controller-manager")
        return [
            str(bins / "kube-controller-manager"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={config.controller_manager_port}",
            f"--service-account-private-key-file={certs.sa_key}",
            f"--root-ca-file={certs.ca_cert}",
            "--use-service-account-credentials=true",
            "--controllers=*,bootstrapsigner,tokencleaner",
            # client-go's 20 requests a second per controller would make a thousand Deployments
            # wait minutes on the ReplicaSet and Deployment controllers, not on Roadie; large
            # clusters raise it too
            "--kube-api-qps=200",
            "--kube-api-burst=400",
            "--concurrent-deployment-syncs=20",
            "--concurrent-replicaset-syncs=20",
            f"--cluster-signing-cert-file={certs.ca_cert}",
            f"--cluster-signing-key-file={certs.ca_key}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false",
            "--v=1",
        ]
    if name == "kube-scheduler":
        kubeconfig = _component_kubeconfig(config, "scheduler")
        return [
            str(bins / "kube-scheduler"),
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={config.scheduler_port}",
            "--leader-elect=false",
            "--v=1",
        ]
    if name == "kwok":
        return [
            str(bins / "kwok"),
            f"--kubeconfig={_component_kubeconfig(config, 'kwok')}",
            f"--config={nodes.STAGES_FILE}",
            "--manage-all-nodes=false",
            f"--manage-nodes-with-annotation-selector={nodes.MANAGED_ANNOTATION}={nodes.MANAGED_VALUE}",
            f"--server-address=127.0.0.1:{config.kwok_port}",
            "--cidr=10.244.0.1/16",
            "--node-ip=10.0.0.1",
            "--node-lease-duration-seconds=40",
        ]
    if name == "provisioner":
        return [
            sys.executable,
            "-m",
            "roadie.devcluster.provisioner",
            f"--kubeconfig={config.kubeconfig}",
            f"--root={state / 'volumes'}",
        ]
    if name == "pod-executor":
        return [
            sys.executable,
            "-m",
            "roadie.devcluster.executor",
            f"--kubeconfig={config.kubeconfig}",
            f"--state={state}",
        ]
    if name == "virt-controller":
        return [sys.executable, "-m", "roadie.devcluster.virtcontroller", f"--kubeconfig={config.kubeconfig}"]
    raise ValueError(f"unknown component {name}")


def _ssl_context(certs: pki.Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    context.load_cert_chain(str(certs.client_cert("admin")), str(certs.client_key("admin")))
    return context


def _get(url: str, context: ssl.SSLContext | None = None, timeout: float = 2.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")
    except (OSError, urllib.error.URLError) as error:
        return 0, str(error)


def _wait(what: str, check: Callable[[], bool], timeout: float, config: ClusterConfig, log: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if log in COMPONENTS and processes.find(config.state, log) is None:
            break  # it died: no point waiting out the timeout
        time.sleep(0.2)
    raise ClusterError(
        f"{what} did not come up; read {processes.log_path(config.state, log)} "
        f"(last lines:\n{_tail(processes.log_path(config.state, log))})"
    )


def _tail(path: pathlib.Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def api_ready(config: ClusterConfig) -> bool:
    certs = pki.Pki(config.state / "pki")
    if not certs.ca_cert.exists():
        return False
    status, _ = _get(f"{config.server}/readyz", _ssl_context(certs))
    return status == 200


def is_up(config: ClusterConfig) -> bool:
    return all(processes.find(config.state, name) for name in COMPONENTS) and api_ready(config)


def up(config: ClusterConfig, report: Reporter = print) -> pathlib.Path:
    """Bring the cluster up (a no-op when it is up already); return the kubeconfig path."""
    if is_up(config):
        report(f"cluster {config.name!r} is already up; kubeconfig: {config.kubeconfig}")
        return config.kubeconfig
    started = time.monotonic()
    bins = binaries.resolve(report=report)
    kubevirt_crds = kubevirt.resolve(report=report)
    state = config.state
    state.mkdir(parents=True, exist_ok=True)
    certs = pki.ensure(state / "pki")
    kubeconfigs.write(config.kubeconfig, config.server, certs, "admin", f"roadie-{config.name}")
    for stem in ("controller-manager", "scheduler", "kwok"):
        kubeconfigs.write(_component_kubeconfig(config, stem), config.server, certs, stem, config.name)
    (state / "cluster.json").write_text(
        json.dumps(
            {
                "name": config.name,
                "port_base": config.port_base,
                "node_count": config.node_count,
                "ports": config.ports(),
                "binaries": str(bins),
                "versions": dataclasses.asdict(versions_mod.PINNED),
            },
            indent=2,
        )
    )

    if processes.find(state, "etcd") is None:
        for name in reversed(COMPONENTS):  # a fresh etcd means nothing above it may keep stale state
            processes.stop(state, name)
        shutil.rmtree(state / "etcd", ignore_errors=True)
        shutil.rmtree(state / "volumes", ignore_errors=True)
        shutil.rmtree(state / "executor", ignore_errors=True)
    report(f"starting cluster {config.name!r} from {bins}")
    processes.start(state, "etcd", _argv(config, bins, certs, "etcd"))
    _wait(
        "etcd",
        lambda: _get(f"http://127.0.0.1:{config.etcd_port}/health")[0] == 200,
        30,
        config,
        "etcd",
    )
    processes.start(state, "kube-apiserver", _argv(config, bins, certs, "kube-apiserver"))
    _wait("kube-apiserver", lambda: api_ready(config), 60, config, "kube-apiserver")
    crd_names = kubevirt.install(config.kubeconfig, kubevirt_crds)  # served while the rest starts
    for name in COMPONENTS[2:]:
        processes.start(state, name, _argv(config, bins, certs, name))
    nodes.ensure_cluster_objects(config.kubeconfig, config.node_count)
    _wait(
        f"{config.node_count} Ready nodes",
        lambda: nodes.ready_count(config.kubeconfig) >= config.node_count,
        60,
        config,
        "kwok",
    )
    kubevirt.wait_established(config.kubeconfig, crd_names)
    report(
        f"cluster {config.name!r} is up in {time.monotonic() - started:.1f}s at {config.server}\n"
        f"  export KUBECONFIG={config.kubeconfig}"
    )
    return config.kubeconfig


def down(config: ClusterConfig, report: Reporter = print) -> list[str]:
    """Stop the operator this cluster runs and every component; return what was stopped."""
    stopped = []
    order = [OPERATOR, *reversed(COMPONENTS)]
    order += [name for name in processes.known(config.state) if name not in order]
    for name in order:
        if processes.stop(config.state, name):
            stopped.append(name)
    report(f"cluster {config.name!r} is down" + (f" (stopped {', '.join(stopped)})" if stopped else ""))
    return stopped


def status(config: ClusterConfig) -> dict[str, object]:
    rows: dict[str, object] = {}
    ports = config.ports()
    for name in (*COMPONENTS, OPERATOR):
        found = processes.find(config.state, name)
        rows[name] = {
            "running": bool(found),
            "pid": found.pid if found else None,
            "port": ports.get(name),
            "log": str(processes.log_path(config.state, name)),
        }
    return {
        "name": config.name,
        "state": str(config.state),
        "server": config.server,
        "kubeconfig": str(config.kubeconfig),
        "api_ready": api_ready(config),
        "components": rows,
    }
