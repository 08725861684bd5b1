"""The `roadie` entry point: one Typer app with a sub-app per area."""

from __future__ import annotations

import typer

from roadie.cli import cluster, demo, graph, install, jvs, operator

app = typer.Typer(help="Roadie: sets the stage up, keeps it running, strikes it on time.", no_args_is_help=True)
app.command()(operator.run)
app.command()(operator.crds)
app.command()(install.install)
app.command()(install.uninstall)
app.add_typer(cluster.app, name="cluster")
app.add_typer(jvs.app, name="jvs")
app.command("graph")(graph.graph_command)


@app.command("demo")
def demo_command() -> None:
    """Bring up the local cluster and the operator, apply the examples, and show them working."""
    raise typer.Exit(demo.run())
