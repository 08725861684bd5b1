"""Pictures of a workflow: its DAG laid out in layers with each task's state, as SVG (written by
hand), as PNG (Pillow, no system package), and as a tree in the terminal like `argo get`.

The layout is computed here in pure Python: a task's layer is its longest path from a root (as
`topology.Graph.layer`), tasks within a layer are ordered by the barycentre of their neighbours in the
layers around them (a few sweeps down and up, which removes most edge crossings), and a layer wider
than `MAX_ROW` wraps onto several rows, so 200 tasks stay legible instead of becoming one
unreadable strip. Boxes never overlap; tests check it at 200 tasks.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
from collections.abc import Mapping, Sequence
from typing import Any
from xml.sax.saxutils import escape

from roadie.core import models as core_models
from roadie.observatory import models, topology

BOX_W, BOX_H = 168, 44
GAP_X, ROW_GAP, LAYER_GAP = 24, 16, 48
MARGIN, HEADER = 24, 40
MAX_ROW = 8
SWEEPS = 4
NAME_CHARS = 21

COLOURS = {  # fill, text: Argo's palette, so the picture reads like its UI
    "Succeeded": ("#18be94", "#ffffff"),
    "Failed": ("#e96d76", "#ffffff"),
    "Running": ("#0dadea", "#ffffff"),
    "Pending": ("#dde6ed", "#33404d"),
    "Skipped": ("#f4f6f8", "#8fa4b1"),
}
SYMBOLS = {"Succeeded": "✔", "Failed": "✖", "Running": "●", "Pending": "◷", "Skipped": "○"}


@dataclasses.dataclass(frozen=True)
class Node:
    name: str
    phase: str = "Pending"
    duration: str = ""
    attempts: int = 0
    pod: str = ""
    message: str = ""
    deps: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Box:
    node: Node
    x: int
    y: int
    layer: int


@dataclasses.dataclass(frozen=True)
class Layout:
    boxes: dict[str, Box]
    width: int
    height: int
    title: str

    def edges(self) -> list[tuple[Box, Box]]:
        return [(self.boxes[d], box) for box in self.boxes.values() for d in box.node.deps if d in self.boxes]


# --- reading an Observatory -----------------------------------------------------------------------


def _time(value: Any) -> datetime.datetime | None:
    return core_models.parse_timestamp(value) if isinstance(value, str) else value


def duration(start: Any, end: Any, now: datetime.datetime) -> str:
    """`2d3h`, `1h2m`, `3m4s`, `12s`, as `argo get` shows them; empty before the start."""
    begun, ended = _time(start), _time(end) or now
    if begun is None:
        return ""
    seconds = max(0, int((ended - begun).total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h"
    if hours:
        return f"{hours}h{minutes}m"
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


def nodes_of(body: Mapping[str, Any], now: datetime.datetime) -> tuple[topology.Graph, list[Node]]:
    """The graph and one node per task of an Observatory (a manifest, or an object with status);
    raise topology.GraphError for a spec that is no DAG."""
    spec = models.ObservatorySpec.model_validate(body.get("spec") or {})
    graph = topology.build(spec.tasks)
    recorded = {t.get("name"): t for t in (body.get("status") or {}).get("tasks") or []}
    nodes = []
    for task in spec.tasks:
        entry = recorded.get(task.name) or {}
        nodes.append(
            Node(
                name=task.name,
                phase=entry.get("phase") or "Pending",
                duration=duration(entry.get("startTime"), entry.get("completionTime"), now),
                attempts=int(entry.get("attempts") or 0),
                pod=entry.get("podName") or "",
                message=entry.get("message") or "",
                deps=tuple(dict.fromkeys(task.dependencies)),
            )
        )
    return graph, nodes


# --- layout -----------------------------------------------------------------------------------------


def _order(graph: topology.Graph) -> list[list[int]]:
    """Tasks per layer, ordered by barycentre sweeps (down by dependencies, up by dependents)."""
    layers: list[list[int]] = [[] for _ in range(max(graph.layer, default=-1) + 1)]
    for i in range(len(graph)):
        layers[graph.layer[i]].append(i)
    position = {i: float(k) for layer in layers for k, i in enumerate(layer)}
    for sweep in range(SWEEPS):
        downward = sweep % 2 == 0
        near = graph.deps if downward else graph.dependents
        for layer in layers[1:] if downward else list(reversed(layers[:-1])):
            centre = {i: sum(position[j] for j in near[i]) / len(near[i]) if near[i] else position[i] for i in layer}
            layer.sort(key=lambda i: (centre[i], position[i]))
            for k, i in enumerate(layer):
                position[i] = float(k)
    return layers


def layout(graph: topology.Graph, nodes: Sequence[Node], title: str = "", max_row: int = MAX_ROW) -> Layout:
    """Boxes placed top to bottom by layer; a wide layer wraps onto rows of at most `max_row`."""
    by_name = {n.name: n for n in nodes}
    layers = _order(graph)
    rows_of = [[layer[k : k + max_row] for k in range(0, len(layer), max_row)] or [[]] for layer in layers]
    widest = max((len(row) for rows in rows_of for row in rows), default=1)
    width = 2 * MARGIN + widest * BOX_W + (widest - 1) * GAP_X
    boxes: dict[str, Box] = {}
    y = MARGIN + HEADER
    for number, rows in enumerate(rows_of):
        for row in rows:
            row_width = len(row) * BOX_W + (len(row) - 1) * GAP_X
            x = (width - row_width) // 2
            for i in row:
                name = graph.names[i]
                boxes[name] = Box(by_name.get(name, Node(name)), x, y, number)
                x += BOX_W + GAP_X
            y += BOX_H + ROW_GAP
        y += LAYER_GAP - ROW_GAP
    height = y - LAYER_GAP + MARGIN
    return Layout(boxes, width, max(height, MARGIN * 2 + HEADER + BOX_H), title)


def _short(text: str, limit: int = NAME_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _subtitle(node: Node) -> str:
    parts = [node.phase]
    if node.duration:
        parts.append(node.duration)
    if node.attempts > 1:
        parts.append(f"{node.attempts} tries")
    return " · ".join(parts)


# --- SVG --------------------------------------------------------------------------------------------


def svg(plan: Layout) -> str:
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{plan.width}" height="{plan.height}" '
        f'viewBox="0 0 {plan.width} {plan.height}" font-family="Helvetica, Arial, sans-serif">',
        f'<rect width="{plan.width}" height="{plan.height}" fill="#ffffff"/>',
        f'<text x="{MARGIN}" y="{MARGIN + 14}" font-size="16" font-weight="bold" fill="#33404d">'
        f"{escape(plan.title)}</text>",
        '<g fill="none" stroke="#8fa4b1" stroke-width="1.2">',
    ]
    for source, target in plan.edges():
        x1, y1 = source.x + BOX_W // 2, source.y + BOX_H
        x2, y2 = target.x + BOX_W // 2, target.y
        bend = max(16, (y2 - y1) // 2)
        out.append(f'<path d="M{x1},{y1} C{x1},{y1 + bend} {x2},{y2 - bend} {x2},{y2}"/>')
    out.append("</g>")
    for box in plan.boxes.values():
        fill, ink = COLOURS.get(box.node.phase, COLOURS["Pending"])
        name = box.node.name
        tip = box.node.name + (f": {box.node.message}" if box.node.message else "")
        out += [
            f"<g><title>{escape(tip)}</title>",
            f'<rect x="{box.x}" y="{box.y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" stroke="#33404d" '
            'stroke-opacity="0.25"/>',
            f'<text x="{box.x + 10}" y="{box.y + 18}" font-size="13" fill="{ink}">{escape(_short(name))}</text>',
            f'<text x="{box.x + 10}" y="{box.y + 35}" font-size="11" fill="{ink}">{escape(_subtitle(box.node))}</text>',
            "</g>",
        ]
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --- PNG --------------------------------------------------------------------------------------------


def png(plan: Layout, path: pathlib.Path) -> None:
    """Draw with Pillow's own fonts (FreeType is in its wheels): no system package needed."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (plan.width, plan.height), "#ffffff")
    draw = ImageDraw.Draw(image)
    title_font, name_font, small_font = (ImageFont.load_default(size=s) for s in (16, 13, 11))
    draw.text((MARGIN, MARGIN), plan.title, fill="#33404d", font=title_font)
    for source, target in plan.edges():
        x1, y1 = source.x + BOX_W // 2, source.y + BOX_H
        x2, y2 = target.x + BOX_W // 2, target.y
        middle = (y1 + y2) // 2
        draw.line([(x1, y1), (x1, middle), (x2, middle), (x2, y2)], fill="#8fa4b1", width=1)
    for box in plan.boxes.values():
        fill, ink = COLOURS.get(box.node.phase, COLOURS["Pending"])
        draw.rounded_rectangle((box.x, box.y, box.x + BOX_W, box.y + BOX_H), radius=6, fill=fill, outline="#c2ccd4")
        draw.text((box.x + 10, box.y + 6), _short(box.node.name), fill=ink, font=name_font)
        draw.text((box.x + 10, box.y + 25), _subtitle(box.node).replace("·", "-"), fill=ink, font=small_font)
    image.save(path, format="PNG")


# --- the terminal ------------------------------------------------------------------------------------


def tree(body: Mapping[str, Any], graph: topology.Graph, nodes: Sequence[Node], now: datetime.datetime) -> str:
    """`argo get`: the workflow's summary, then its tasks under it in topological order."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    phase = status.get("phase") or "Pending"
    header = [
        ("Name:", meta.get("name", "")),
        ("Namespace:", meta.get("namespace", "")),
        ("Status:", phase),
        ("Progress:", status.get("progress") or f"0/{len(nodes)}"),
        ("Started:", status.get("startTime") or ""),
        ("Duration:", duration(status.get("startTime"), status.get("completionTime"), now)),
        ("Message:", status.get("message") or ""),
    ]
    lines = [f"{label:<12} {value}" for label, value in header if value]
    by_name = {n.name: n for n in nodes}
    ordered = [by_name[graph.names[i]] for i in sorted(graph.order, key=lambda i: (graph.layer[i], i))]
    rows = [(f" {SYMBOLS.get(phase, '◷')} {meta.get('name', '')}", "", "", "")]
    for k, node in enumerate(ordered):
        branch = "└─" if k == len(ordered) - 1 else "├─"
        tries = f" ({node.attempts} attempts)" if node.attempts > 1 else ""
        rows.append((f" {branch}{SYMBOLS.get(node.phase, '◷')} {node.name}", node.pod, node.duration,
                     node.message + tries))  # fmt: skip
    widths = [max(len(r[c]) for r in [("STEP", "PODNAME", "DURATION", "MESSAGE"), *rows]) for c in range(3)]
    table = [("STEP", "PODNAME", "DURATION", "MESSAGE"), *rows]
    lines.append("")
    for row in table:
        lines.append("  ".join(cell.ljust(widths[c]) if c < 3 else cell for c, cell in enumerate(row)).rstrip())
    return "\n".join(lines) + "\n"
