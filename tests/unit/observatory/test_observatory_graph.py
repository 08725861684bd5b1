"""`roadie graph`: the layered layout (no box over another at 200 tasks, dependencies above their
dependents, crossings removed where the graph allows), the SVG and PNG it draws, the `argo get`
tree, and the command line read from a manifest. Reading from a cluster is in
tests/cluster/test_observatory_schema.py."""

from __future__ import annotations

import datetime
import itertools
import pathlib
import xml.etree.ElementTree as ET
from typing import Any

import pytest
import typer
import yaml
from PIL import Image
from tests.unit.observatory import workflows as wf
from typer.testing import CliRunner

from roadie.cli import graph as cli_graph
from roadie.observatory import graph, topology

ROOT = pathlib.Path(__file__).resolve().parents[3]
NOW = wf.T0 + wf.seconds(100)


def body(tasks: list[dict[str, Any]], status: dict[str, Any] | None = None, name: str = "wf") -> dict[str, Any]:
    return {
        "apiVersion": "workflow.seventh-horizon.io/v1alpha1",
        "kind": "Observatory",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"tasks": tasks},
        **({"status": status} if status else {}),
    }


def two_hundred() -> list[dict[str, Any]]:
    """A fan-out of 60 (wider than a row), a join layer, a fan of 100 and a short chain."""
    tasks = [wf.task("start")]
    tasks += [wf.task(f"fetch-{i}", "start") for i in range(60)]
    tasks += [wf.task(f"merge-{i}", *(f"fetch-{j}" for j in range(i * 6, i * 6 + 6))) for i in range(10)]
    tasks += [wf.task(f"report-{i}", f"merge-{i % 10}") for i in range(100)]
    tasks += [wf.task(f"chain-{i}", f"chain-{i - 1}" if i else "report-0") for i in range(29)]
    assert len(tasks) == 200
    return tasks


def overlap(a: graph.Box, b: graph.Box) -> bool:
    return a.x < b.x + graph.BOX_W and b.x < a.x + graph.BOX_W and a.y < b.y + graph.BOX_H and b.y < a.y + graph.BOX_H


def test_two_hundred_tasks_render_without_overlapping_boxes() -> None:
    dag_graph, nodes = graph.nodes_of(body(two_hundred()), NOW)
    plan = graph.layout(dag_graph, nodes, "wf")
    boxes = list(plan.boxes.values())
    assert len(boxes) == 200
    assert not [(a.node.name, b.node.name) for a, b in itertools.combinations(boxes, 2) if overlap(a, b)]
    assert all(b.x >= 0 and b.x + graph.BOX_W <= plan.width and b.y + graph.BOX_H <= plan.height for b in boxes)
    # wide layers wrap: the picture stays about as wide as MAX_ROW boxes, whatever the fan-out
    assert plan.width <= 2 * graph.MARGIN + graph.MAX_ROW * (graph.BOX_W + graph.GAP_X)
    assert all(target.y > source.y for source, target in plan.edges()), "dependencies are drawn above"


def test_barycentre_ordering_uncrosses_what_spec_order_crosses() -> None:
    # spec order puts b-side children first: drawn naively every edge would cross
    tasks = [wf.task("a"), wf.task("b"), wf.task("under-b", "b"), wf.task("under-a", "a")]
    dag_graph, nodes = graph.nodes_of(body(tasks), NOW)
    boxes = graph.layout(dag_graph, nodes).boxes
    assert (boxes["a"].x < boxes["b"].x) == (boxes["under-a"].x < boxes["under-b"].x)


def test_the_svg_is_well_formed_and_shows_each_state() -> None:
    status = {"phase": "Running", "tasks": [
        {"name": "setup", "phase": "Succeeded", "startTime": "2026-05-01T12:00:00Z",
         "completionTime": "2026-05-01T12:00:03Z", "attempts": 1},
        {"name": "process", "phase": "Failed", "message": "exit <code> 3 & more", "attempts": 2},
    ]}  # fmt: skip
    tasks = [wf.task("setup"), wf.task("process", "setup"), wf.task("finalize", "process")]
    dag_graph, nodes = graph.nodes_of(body(tasks, status), NOW)
    text = graph.svg(graph.layout(dag_graph, nodes, "wf Running"))
    root = ET.fromstring(text)
    ns = "{http://www.w3.org/2000/svg}"
    fills = [r.get("fill") for r in root.iter(f"{ns}rect")][1:]  # the first is the background
    assert fills == [graph.COLOURS[p][0] for p in ("Succeeded", "Failed", "Pending")]
    words = [t.text for t in root.iter(f"{ns}text")]
    assert "Succeeded · 3s" in words and "Failed · 2 tries" in words
    assert any("exit <code> 3 & more" in (t.text or "") for t in root.iter(f"{ns}title"))
    assert len(list(root.iter(f"{ns}path"))) == 2


def test_the_png_is_drawn_with_pillow_alone(tmp_path: pathlib.Path) -> None:
    status = {"tasks": [{"name": "start", "phase": "Succeeded"}]}
    dag_graph, nodes = graph.nodes_of(body(two_hundred(), status), NOW)
    plan = graph.layout(dag_graph, nodes, "wf")
    graph.png(plan, tmp_path / "wf.png")
    image = Image.open(tmp_path / "wf.png")
    assert image.size == (plan.width, plan.height)
    start = plan.boxes["start"]
    green = tuple(int(graph.COLOURS["Succeeded"][0][k : k + 2], 16) for k in (1, 3, 5))
    assert image.getpixel((start.x + graph.BOX_W - 8, start.y + graph.BOX_H // 2)) == green


def test_the_tree_reads_like_argo_get() -> None:
    status = {"phase": "Running", "progress": "1/3", "startTime": "2026-05-01T12:00:00Z", "tasks": [
        {"name": "setup", "phase": "Succeeded", "startTime": "2026-05-01T12:00:00Z",
         "completionTime": "2026-05-01T12:01:05Z", "attempts": 1, "podName": "wf-setup-abc123-1"},
        {"name": "process", "phase": "Running", "startTime": "2026-05-01T12:01:05Z", "attempts": 2},
    ]}  # fmt: skip
    tasks = [wf.task("finalize", "process"), wf.task("process", "setup"), wf.task("setup")]
    doc = body(tasks, status)
    dag_graph, nodes = graph.nodes_of(doc, NOW)
    lines = graph.tree(doc, dag_graph, nodes, NOW).splitlines()
    assert lines[0].split() == ["Name:", "wf"] and "Progress:    1/3" in lines
    assert "Duration:    1m40s" in lines
    table = lines[lines.index("") + 1 :]
    assert table[0].split() == ["STEP", "PODNAME", "DURATION", "MESSAGE"]
    assert table[1].split() == ["●", "wf"]
    assert table[2].split() == ["├─✔", "setup", "wf-setup-abc123-1", "1m5s"]
    assert table[3].split()[:3] == ["├─●", "process", "35s"] and table[3].endswith("(2 attempts)")
    assert table[4].split() == ["└─◷", "finalize"]


@pytest.mark.parametrize(("seconds", "text"), [(5, "5s"), (65, "1m5s"), (3720, "1h2m"), (90000, "1d1h")])
def test_durations(seconds: int, text: str) -> None:
    assert graph.duration(wf.T0, wf.T0 + datetime.timedelta(seconds=seconds), NOW) == text
    assert graph.duration(None, None, NOW) == ""


app = typer.Typer()
app.command("graph")(cli_graph.graph_command)
app.command("unused")(lambda: None)  # two commands, so "graph" is a subcommand as in roadie's app
runner = CliRunner()


def test_the_command_draws_the_quickstart_from_its_file(tmp_path: pathlib.Path) -> None:
    sample = str(ROOT / "deploy" / "samples" / "observatory-quickstart.yaml")
    shown = runner.invoke(app, ["graph", "obs/my-workflow", "--file", sample])
    assert shown.exit_code == 0, shown.output
    assert "└─◷ finalize" in shown.output
    for suffix in ("svg", "png"):
        out = tmp_path / f"wf.{suffix}"
        written = runner.invoke(app, ["graph", "--file", sample, "-o", str(out)])
        assert written.exit_code == 0, written.output
        assert out.stat().st_size > 500 and f"wrote {out} (3 tasks" in written.output


def test_the_command_names_what_it_cannot_draw(tmp_path: pathlib.Path) -> None:
    cyclic = tmp_path / "cycle.yaml"
    cyclic.write_text(yaml.safe_dump(body([wf.task("a", "b"), wf.task("b", "a")])))
    result = runner.invoke(app, ["graph", "--file", str(cyclic)])
    assert result.exit_code == 1 and "a -> b -> a" in result.output
    wrong_kind = runner.invoke(app, ["graph", "pod/x", "--file", str(cyclic)])
    assert wrong_kind.exit_code != 0 and "obs/NAME" in wrong_kind.output
    missing = runner.invoke(app, ["graph", "obs/other", "--file", str(cyclic)])
    assert missing.exit_code != 0 and "no Observatory 'other'" in missing.output
    bad_suffix = runner.invoke(app, ["graph", "--file", str(cyclic), "-o", str(tmp_path / "x.jpg")])
    assert bad_suffix.exit_code != 0 and ".svg or a .png" in bad_suffix.output


def test_the_dag_behind_the_picture_is_the_schedulers() -> None:
    dag_graph, _ = graph.nodes_of(body(two_hundred()), NOW)
    assert dag_graph.layers() == topology.build(wf.spec(*two_hundred()).tasks).layers()
