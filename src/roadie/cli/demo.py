"""`roadie demo`: the local cluster, the operator in the background, and the examples at work."""

from __future__ import annotations

import typer


def demo() -> None:
    """Bring up the local cluster and the operator, apply the examples, and show them working."""
    from roadie.devcluster import demo as demo_mod

    raise typer.Exit(demo_mod.run())
