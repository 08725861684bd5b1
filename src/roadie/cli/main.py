"""The `roadie` entry point: one Typer app with a sub-app per area."""

from __future__ import annotations

import typer

from roadie.cli import cluster

app = typer.Typer(
    help="Roadie: sets the stage up, keeps it running, strikes it on time.", no_args_is_help=True
)
app.add_typer(cluster.app, name="cluster")
