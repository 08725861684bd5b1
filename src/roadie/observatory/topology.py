"""A workflow's tasks as a graph: indexes, edges both ways, a topological order and the order in
which ready tasks start, computed once per spec.

The API server already refuses duplicate names, unknown dependencies and self-dependencies (CEL);
`build` checks them again (a manifest read from a file never met the API server) and finds what
CEL cannot: a cycle through several tasks, named in order.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping, Sequence

from roadie.observatory import models


class GraphError(ValueError):
    """A spec that is not a DAG of known tasks; `field` is the path of what to fix."""

    def __init__(self, message: str, field: str = "spec.tasks", cycle: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.field = field
        self.cycle = tuple(cycle)


@dataclasses.dataclass(frozen=True)
class Graph:
    """The tasks by index (spec order), their edges both ways, and orders computed once per spec."""

    names: tuple[str, ...]
    index: Mapping[str, int]
    deps: tuple[tuple[int, ...], ...]
    dependents: tuple[tuple[int, ...], ...]
    #: a topological order (dependencies first), stable with respect to spec order
    order: tuple[int, ...]
    #: longest path from a root: 0 for tasks without dependencies
    layer: tuple[int, ...]
    #: ready tasks start in this order: longest chain of dependents first, then spec order
    priority: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.names)

    def layers(self) -> list[list[str]]:
        """Tasks grouped by longest-path layer, each layer in spec order."""
        grouped: list[list[str]] = [[] for _ in range(max(self.layer, default=-1) + 1)]
        for i, name in enumerate(self.names):
            grouped[self.layer[i]].append(name)
        return grouped


def _cycle(names: Sequence[str], deps: Sequence[Sequence[int]], left: set[int]) -> list[str]:
    """A cycle among `left` (tasks Kahn's algorithm could not order), following dependencies, starting
    at the earliest task in spec order: every such task has a dependency that is also left."""
    start = min(left)
    seen: dict[int, int] = {}
    path: list[int] = []
    current = start
    while current not in seen:
        seen[current] = len(path)
        path.append(current)
        current = next(d for d in deps[current] if d in left)
    loop = path[seen[current] :]
    first = loop.index(min(loop))
    loop = loop[first:] + loop[:first]
    return [names[i] for i in [*loop, loop[0]]]


def build(tasks: Sequence[models.Task]) -> Graph:
    """The graph of `tasks`; GraphError names the first problem (and the cycle, if any)."""
    index: dict[str, int] = {}
    for i, task in enumerate(tasks):
        if task.name in index:
            raise GraphError(f"two tasks are named {task.name!r}", f"spec.tasks[{i}].name")
        index[task.name] = i
    deps: list[tuple[int, ...]] = []
    dependents: list[list[int]] = [[] for _ in tasks]
    for i, task in enumerate(tasks):
        mine: list[int] = []
        for dep in dict.fromkeys(task.dependencies):  # a dependency named twice is one edge
            if dep == task.name:
                raise GraphError(f"task {task.name!r} depends on itself", f"spec.tasks[{i}].dependencies")
            if dep not in index:
                raise GraphError(
                    f"task {task.name!r} depends on {dep!r}, which is no task of this workflow",
                    f"spec.tasks[{i}].dependencies",
                )
            mine.append(index[dep])
            dependents[index[dep]].append(i)
        deps.append(tuple(mine))
    waiting = [len(d) for d in deps]
    queue = collections.deque(i for i, n in enumerate(waiting) if n == 0)
    order: list[int] = []
    layer = [0] * len(tasks)
    while queue:
        i = queue.popleft()
        order.append(i)
        for j in dependents[i]:
            layer[j] = max(layer[j], layer[i] + 1)
            waiting[j] -= 1
            if waiting[j] == 0:
                queue.append(j)
    if len(order) < len(tasks):
        cycle = _cycle([t.name for t in tasks], deps, set(range(len(tasks))) - set(order))
        raise GraphError(f"dependency cycle: {' -> '.join(cycle)} (each depends on the next)", cycle=cycle)
    height = [0] * len(tasks)  # longest chain of dependents below each task
    for i in reversed(order):
        for j in dependents[i]:
            height[i] = max(height[i], height[j] + 1)
    return Graph(
        names=tuple(t.name for t in tasks),
        index=index,
        deps=tuple(deps),
        dependents=tuple(tuple(d) for d in dependents),
        order=tuple(order),
        layer=tuple(layer),
        priority=tuple(sorted(range(len(tasks)), key=lambda i: (-height[i], i))),
    )
