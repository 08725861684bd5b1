"""`roadie graph obs/NAME`: a workflow's DAG with each task's state, as a tree in the terminal
(like `argo get`) or as an SVG or PNG file. People read a graph faster than a table.

The object comes from the cluster ($KUBECONFIG, lightkube's synchronous client) or, with
`--file`, from a manifest, so a workflow can be looked at before it is applied.
"""

from __future__ import annotations

import datetime
import pathlib
from typing import Annotated, Any

import typer
import yaml

from roadie.observatory import graph, models, topology

KIND_WORDS = {"obs", "observatory", "observatories", f"observatories.{models.API.group}"}


def _name(target: str) -> str:
    kind, _, name = target.rpartition("/")
    if kind and kind.lower() not in KIND_WORDS:
        raise typer.BadParameter(f"{target!r}: name an Observatory, as obs/NAME", param_hint="TARGET")
    return name


def _from_file(path: pathlib.Path, name: str) -> dict[str, Any]:
    found = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and d.get("kind") == "Observatory"]
    for doc in found:
        if not name or (doc.get("metadata") or {}).get("name") == name:
            return doc
    raise typer.BadParameter(f"no Observatory {name!r} in {path}", param_hint="--file")


def _from_cluster(name: str, namespace: str | None) -> dict[str, Any]:
    import lightkube
    from lightkube.core.exceptions import ApiError
    from lightkube.generic_resource import create_namespaced_resource

    api = models.API
    resource = create_namespaced_resource(api.group, api.version, api.kind, api.plural, verbs=None)
    client = lightkube.Client(config=lightkube.KubeConfig.from_env())
    try:
        obj = client.get(resource, name, namespace=namespace or client.namespace)
    except ApiError as error:
        raise typer.BadParameter(str(error.status.message), param_hint="TARGET") from error
    body: dict[str, Any] = obj.to_dict()
    return body


def graph_command(
    target: Annotated[str, typer.Argument(help="obs/NAME (or NAME); with --file, may be left out.")] = "",
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Default: the kubeconfig's.")] = None,
    output: Annotated[
        pathlib.Path | None, typer.Option("--output", "-o", help="Write an .svg or .png file instead.")
    ] = None,
    file: Annotated[
        pathlib.Path | None,
        typer.Option("--file", "-f", exists=True, dir_okay=False, help="Read the workflow from YAML."),
    ] = None,
) -> None:
    """Draw an Observatory's DAG with each task's state."""
    name = _name(target) if target else ""
    if not name and file is None:
        raise typer.BadParameter("name a workflow (obs/NAME) or give --file", param_hint="TARGET")
    if output is not None and output.suffix.lower() not in (".svg", ".png"):
        raise typer.BadParameter("write a .svg or a .png file", param_hint="--output")
    body = _from_file(file, name) if file is not None else _from_cluster(name, namespace)
    now = datetime.datetime.now(datetime.UTC)
    try:
        dag_graph, nodes = graph.nodes_of(body, now)
    except topology.GraphError as error:
        typer.echo(f"cannot draw {name or 'the workflow'}: {error}", err=True)
        raise typer.Exit(1) from error
    if output is None:
        typer.echo(graph.tree(body, dag_graph, nodes, now), nl=False)
        return
    title = f"{(body.get('metadata') or {}).get('name', '')}  {(body.get('status') or {}).get('phase', '')}".strip()
    plan = graph.layout(dag_graph, nodes, title)
    if output.suffix.lower() == ".svg":
        output.write_text(graph.svg(plan))
    else:
        graph.png(plan, output)
    typer.echo(f"wrote {output} ({len(nodes)} tasks, {plan.width}x{plan.height})")
