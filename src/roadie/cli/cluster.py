"""`roadie cluster ...`: the local control plane, for development, demos and the test suite."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from roadie.devcluster import binaries, cluster, kubevirt

app = typer.Typer(help="Run a real Kubernetes control plane on loopback (no Docker).", no_args_is_help=True)

NameOption = Annotated[str, typer.Option("--name", help="Cluster name; each has its own state and ports.")]
PortOption = Annotated[int, typer.Option("--port-base", help="Ports are this plus a fixed offset.")]


def _config(name: str, port_base: int | None) -> cluster.ClusterConfig:
    """The cluster's ports: as given, else as it was last brought up with, else derived from its name."""
    if port_base is None:
        previous = cluster.recorded(name)
        if previous is not None:
            return cluster.ClusterConfig(name=name, port_base=previous.port_base)
        port_base = 16400 if name == "roadie" else 16400 + 100 * (1 + sum(map(ord, name)) % 40)
    return cluster.ClusterConfig(name=name, port_base=port_base)


@app.command()
def up(
    name: NameOption = "roadie",
    port_base: Annotated[int | None, typer.Option("--port-base")] = None,
    nodes: Annotated[int, typer.Option("--nodes", min=1, max=50)] = 3,
) -> None:
    """Start etcd, kube-apiserver, controller-manager, scheduler, kwok, a volume provisioner and the stand-ins."""
    config = cluster.ClusterConfig(name=name, port_base=_config(name, port_base).port_base, node_count=nodes)
    try:
        cluster.up(config)
    except (cluster.ClusterError, binaries.BinariesError) as error:
        typer.echo(f"roadie: {error}", err=True)
        raise typer.Exit(1) from error


@app.command()
def down(name: NameOption = "roadie") -> None:
    """Stop every process of the cluster, the operator it runs included."""
    cluster.down(_config(name, None))


@app.command()
def status(
    name: NameOption = "roadie",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Say what runs where."""
    info = cluster.status(_config(name, None))
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"cluster {info['name']}: API {'ready' if info['api_ready'] else 'down'} at {info['server']}")
    typer.echo(f"  state:      {info['state']}\n  kubeconfig: {info['kubeconfig']}")
    components = info["components"]
    assert isinstance(components, dict)
    for component, row in components.items():
        state = f"running (pid {row['pid']})" if row["running"] else "stopped"
        port = f" port {row['port']}" if row["port"] else ""
        typer.echo(f"  {component:<24} {state}{port}  log {row['log']}")


@app.command()
def kubeconfig(name: NameOption = "roadie") -> None:
    """Print the path of the cluster's admin kubeconfig."""
    typer.echo(str(_config(name, None).kubeconfig))


@app.command("binaries")
def binaries_cmd() -> None:
    """Find or build the control-plane binaries and KubeVirt's CRDs; print the binaries' folder."""

    def report(line: str) -> None:
        typer.echo(line, err=True)

    try:
        folder = binaries.resolve(report=report)
        report(f"KubeVirt CRDs: {kubevirt.resolve(report=report)}")
        typer.echo(str(folder))
    except binaries.BinariesError as error:
        typer.echo(f"roadie: {error}", err=True)
        raise typer.Exit(1) from error
