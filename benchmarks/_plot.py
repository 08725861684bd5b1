"""A run's picture, drawn with Pillow (already a dependency) rather than adding matplotlib: on the
left, curves over time (objects Ready, RSS...); on the right, each figure as a share of its goal,
so a bar past the line at 1.0 is a goal missed, whatever the units.
"""

from __future__ import annotations

import pathlib

from PIL import Image, ImageDraw

W, H, PAD = 1200, 520, 60
COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
Series = dict[str, list[tuple[float, float]]]
#: (label, value, goal, lower_is_better)
Bar = tuple[str, float, float, bool]


def render(path: pathlib.Path, title: str, lines: Series, bars: list[Bar], x_label: str = "seconds") -> None:
    image = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(image)
    draw.text((PAD, 15), title, fill="black")
    _lines(draw, (PAD, 50, W // 2 - 20, H - PAD), lines, x_label)
    _bars(draw, (W // 2 + 40, 50, W - 20, H - PAD), bars)
    image.save(path)


def _lines(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], lines: Series, x_label: str) -> None:
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline="black")
    points = [p for series in lines.values() for p in series]
    if not points:
        draw.text((x0 + 10, y0 + 10), "(no curve)", fill="grey")
        return
    xmax = max(p[0] for p in points) or 1.0
    ymax = max(p[1] for p in points) or 1.0
    draw.text((x0, y1 + 8), f"0 .. {xmax:.0f} {x_label}", fill="black")
    draw.text((x0 - 50, y0), f"{ymax:.0f}", fill="black")
    for i, (name, series) in enumerate(lines.items()):
        colour = COLOURS[i % len(COLOURS)]
        xy = [(x0 + (x / xmax) * (x1 - x0), y1 - (y / ymax) * (y1 - y0)) for x, y in sorted(series)]
        if len(xy) > 1:
            draw.line(xy, fill=colour, width=2)
        draw.text((x0 + 10, y0 + 10 + 14 * i), name, fill=colour)


def _bars(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], bars: list[Bar]) -> None:
    x0, y0, x1, y1 = box
    draw.text((x0, y0 - 20), "each figure / its goal (the line is the goal)", fill="black")
    if not bars:
        return
    scale = max(2.0, *(_share(b) for b in bars))
    goal_y = y1 - (1.0 / scale) * (y1 - y0)
    step = (x1 - x0) / len(bars)
    for i, bar in enumerate(bars):
        label, value, goal, _ = bar
        share = _share(bar)
        left = x0 + i * step + 6
        top = y1 - min(share, scale) / scale * (y1 - y0)
        colour = (44, 160, 44) if share <= 1.0 else (214, 39, 40)
        draw.rectangle((left, top, left + step - 12, y1), fill=colour)
        draw.text((left, y1 + 6), label[:22], fill="black")
        draw.text((left, y1 + 22), f"{value:.3g} / {goal:.3g}", fill="black")
    draw.line((x0, goal_y, x1, goal_y), fill="black", width=1)


def _share(bar: Bar) -> float:
    _, value, goal, lower = bar
    if goal == 0:
        return 0.0 if value == 0 else 2.0
    return value / goal if lower else (goal / value if value else 2.0)
