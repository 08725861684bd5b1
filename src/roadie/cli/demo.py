"""`roadie demo`: the local cluster, the operator in the background, and the seed examples at work.

It leaves the cluster and the operator running and returns to the prompt, saying how to reach
what it made; `roadie cluster down` stops everything, the operator included.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time
import urllib.request

import typer

from roadie import catalog
from roadie.cli import install as install_cli
from roadie.cli import operator as operator_cli
from roadie.devcluster import cluster, processes

SAMPLES = pathlib.Path(__file__).resolve().parents[3] / "deploy" / "samples"
METRICS_PORT, HEALTH_PORT = 18080, 18081


def _kubectl(kubeconfig: pathlib.Path, *args: str, check: bool = True) -> str:
    proc = subprocess.run(
        [operator_cli.kubectl(), f"--kubeconfig={kubeconfig}", *args], capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout


def _start_operator(config: cluster.ClusterConfig) -> None:
    argv = [sys.executable, "-m", "roadie", "run", f"--metrics-port={METRICS_PORT}", f"--health-port={HEALTH_PORT}"]
    processes.start(config.state, cluster.OPERATOR, argv, env={"KUBECONFIG": str(config.kubeconfig)})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{HEALTH_PORT}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if processes.find(config.state, cluster.OPERATOR) is None:
            break
        time.sleep(0.3)
    log = processes.log_path(config.state, cluster.OPERATOR)
    raise RuntimeError(f"the operator did not become ready; read {log}")


def _watch_phases(
    kubeconfig: pathlib.Path, resource: str, namespace: str, name: str, until: str, limit: float = 90
) -> None:
    """Print each phase the object passes through, as `kubectl get -w` would, until `until`."""
    seen = None
    started = time.monotonic()
    while time.monotonic() - started < limit:
        raw = _kubectl(kubeconfig, "get", resource, name, "-n", namespace, "-o", "json", check=False)
        status = json.loads(raw).get("status", {}) if raw else {}
        phase = status.get("phase")
        if phase != seen:
            typer.echo(f"  {time.monotonic() - started:5.1f}s  {resource}/{name}: {phase or '(no status yet)'}")
            if status.get("message"):
                typer.echo(f"         {status['message']}")
            seen = phase
        if phase == until:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{resource}/{name} did not reach {until}")


def _observatory(kubeconfig: pathlib.Path) -> None:
    typer.echo("Observatory: applying deploy/samples/observatory-three-tasks.yaml (the original's sample)")
    _kubectl(kubeconfig, "apply", "-n", "default", "-f", str(SAMPLES / "observatory-three-tasks.yaml"))
    _watch_phases(kubeconfig, "observatory", "default", "observatory-sample", "Succeeded")
    typer.echo(_kubectl(kubeconfig, "get", "observatories", "-n", "default"))
    graph = subprocess.run(
        [sys.executable, "-m", "roadie", "graph", "obs/observatory-sample", "-n", "default"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )
    typer.echo(graph.stdout or graph.stderr)
    svg = pathlib.Path("observatory-sample.svg").resolve()
    subprocess.run(
        [sys.executable, "-m", "roadie", "graph", "obs/observatory-sample", "-n", "default", "-o", str(svg)],
        check=False,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )
    typer.echo(f"  the graph as a picture: {svg}\n")


def _volume_dir(kubeconfig: pathlib.Path, claim: str) -> pathlib.Path:
    """Where the local provisioner keeps a claim's volume: what a user's pod would see."""
    volume = _kubectl(kubeconfig, "get", "pvc", claim, "-n", "default", "-o", "jsonpath={.spec.volumeName}")
    return pathlib.Path(_kubectl(kubeconfig, "get", "pv", volume, "-o", "jsonpath={.spec.hostPath.path}"))


def _workspace(kubeconfig: pathlib.Path) -> None:
    typer.echo("Workspace: applying deploy/samples/workspace-demo.yaml")
    _kubectl(kubeconfig, "apply", "-n", "default", "-f", str(SAMPLES / "workspace-demo.yaml"))
    _watch_phases(kubeconfig, "workspace", "default", "demo-ws", "Ready")
    main = _volume_dir(kubeconfig, "demo-ws-data") / "main"
    main.mkdir(parents=True, exist_ok=True)
    (main / "notes.txt").write_text("written before the snapshot\n")
    typer.echo(f"  wrote {main / 'notes.txt'} (as a user in the workspace pod would)")
    typer.echo("  taking a snapshot: deploy/samples/workspace-demo-snapshot.yaml")
    _kubectl(kubeconfig, "apply", "-n", "default", "-f", str(SAMPLES / "workspace-demo-snapshot.yaml"))
    _watch_phases(kubeconfig, "snapshot", "default", "demo-first", "Ready", limit=180)
    typer.echo(_kubectl(kubeconfig, "get", "snapshots", "-n", "default", "-o", "wide"))
    (main / "notes.txt").write_text("changed after the snapshot\n")
    typer.echo("  changed notes.txt; restoring in place: deploy/samples/workspace-demo-restore.yaml")
    _kubectl(kubeconfig, "apply", "-n", "default", "-f", str(SAMPLES / "workspace-demo-restore.yaml"))
    _watch_phases(kubeconfig, "snapshot", "default", "demo-rollback", "Ready", limit=180)
    typer.echo(f"  notes.txt now says: {(main / 'notes.txt').read_text().strip()!r}\n")


def _cyberdesk(kubeconfig: pathlib.Path) -> None:
    typer.echo("Cyberdesk: applying deploy/samples/cyberdesk-short.yaml (a desktop with a 30 s timeout)")
    _kubectl(kubeconfig, "apply", "-n", "default", "-f", str(SAMPLES / "cyberdesk-short.yaml"))
    _watch_phases(kubeconfig, "cyberdesk", "default", "demo-desk", "Running")
    typer.echo(_kubectl(kubeconfig, "get", "cyberdesks,virtualmachines,virtualmachineinstances", "-n", "default"))
    typer.echo("  ... waiting for its timeout: halted, then deleted")
    _watch_phases(kubeconfig, "cyberdesk", "default", "demo-desk", "TimedOut", limit=120)
    typer.echo(_kubectl(kubeconfig, "get", "cyberdesks", "-n", "default"))


def run() -> int:
    config = cluster.ClusterConfig()
    try:
        kubeconfig = cluster.up(config, report=typer.echo)
        typer.echo("\nnodes of the local cluster:")
        typer.echo(_kubectl(kubeconfig, "get", "nodes"))
        install_cli.install(kubeconfig=str(kubeconfig))
        _start_operator(config)
        typer.echo(f"operator running in the background (log: {processes.log_path(config.state, 'operator')})\n")
        controllers = {kind.controller for kind in catalog.KINDS}

        typer.echo("Workshop: applying deploy/samples/workshop-bioconductor.yaml (the seed's example)")
        _kubectl(kubeconfig, "apply", "-f", str(SAMPLES / "workshop-bioconductor.yaml"))
        _watch_phases(kubeconfig, "workshop", "default", "data-science-101", "Ready")
        typer.echo(_kubectl(kubeconfig, "get", "workshops", "-n", "default"))
        typer.echo(_kubectl(kubeconfig, "get", "pods,services,ingress,pvc", "-l", "workshop=data-science-101"))

        if "preview" in controllers and (SAMPLES / "preview-example.yaml").exists():
            typer.echo("PreviewEnvironment: applying deploy/samples/preview-example.yaml (the seed's example)")
            _kubectl(kubeconfig, "create", "namespace", "preview-environments", check=False)
            _kubectl(kubeconfig, "apply", "-f", str(SAMPLES / "preview-example.yaml"))
            _watch_phases(kubeconfig, "previewenvironment", "preview-environments", "pr-42-env", "Ready")
            typer.echo(_kubectl(kubeconfig, "get", "all,ingress,networkpolicy", "-n", "preview-pr-42"))

        if "observatory" in controllers:
            _observatory(kubeconfig)
        if "workspace" in controllers:
            _workspace(kubeconfig)
        if "cyberdesk" in controllers:
            _cyberdesk(kubeconfig)
    except (RuntimeError, cluster.ClusterError) as error:
        typer.echo(f"roadie demo: {error}", err=True)
        return 1

    roadie = "roadie" if os.environ.get("VIRTUAL_ENV") else str(pathlib.Path(sys.executable).with_name("roadie"))
    typer.echo(
        f"""The cluster and the operator keep running. Try:

  export KUBECONFIG={kubeconfig}
  export PATH={pathlib.Path(sys.executable).parent}:$PATH    # roadie and a matching kubectl
  kubectl get workshops -w                                   # watch phases (Ctrl-C to stop)
  kubectl describe workshop data-science-101                 # conditions and events
  kubectl get secret data-science-101-credentials -o jsonpath='{{.data.password}}' | base64 -d
  kubectl port-forward service/data-science-101-service 8787:80   # the seed's way in
  kubectl get previewenvironments -A                         # the preview of PR 42
  kubectl get all,ingress,networkpolicy,quota -n preview-pr-42

Watch a workshop expire: apply one with a short duration and watch it go at its expiresAt:
  kubectl apply -f deploy/samples/workshop-short.yaml && kubectl get workshops -w

Metrics: curl -s localhost:{METRICS_PORT}/metrics | grep -E '^(roadie|preview)_'
Stop everything (the operator included): {roadie} cluster down
"""
    )
    return 0
