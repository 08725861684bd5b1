"""Pure builders: a task's Pod for one attempt, and a schedule's run (an Observatory without
`schedule`). No API calls here.

A Pod per (run, task, attempt), not a Job: a Job's controller would add its own reaction time to
every step of the critical path, and a retry is a decision this operator makes anyway (with its
backoff and its deadline). Names are deterministic, so an operator restarted at any moment finds
what it started (a create of an existing name is a 409, never a second pod): exactly once.
Labels carry the workflow, task and attempt, so the operator watches only these pods (a
server-side label selector) and finds a task's pods without listing.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Any

from roadie.core import children as core_children
from roadie.core import labels, naming
from roadie.observatory import models

KIND = models.API.kind
WORKFLOW_LABEL = "roadie.dev/workflow"
TASK_LABEL = "roadie.dev/task"
ATTEMPT_LABEL = "roadie.dev/attempt"
SCHEDULE_LABEL = "roadie.dev/schedule"
SCHEDULED_AT = "roadie.dev/scheduled-at"
CONTAINER = "main"  # Argo's name for the task's container
#: The server-side selector of every task pod Roadie runs (for the operator's one pod watch).
POD_SELECTOR = f"{labels.NAME}={KIND.lower()},{labels.MANAGED_BY}={labels.MANAGER}"
#: Schedule-only fields: a run is the schedule's spec without them.
SCHEDULE_FIELDS = (
    "schedule",
    "timezone",
    "concurrencyPolicy",
    "startingDeadlineSeconds",
    "successfulRunsHistoryLimit",
    "failedRunsHistoryLimit",
)
_HASH = 6

WATCH = ("list", "watch")
#: What the reconcile does to each kind of child, from which the operator's RBAC is generated
#: (`roadie.rbac`): task pods are created once per attempt (never patched), read by name when a
#: create finds the name taken, deleted at a deadline; a schedule creates its runs and deletes
#: those beyond its history limits (the Observatory's own rights cover both but `create`).
ACCESS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "pods", (*WATCH, "create", "get", "delete")),
    (models.API.group, models.API.plural, ("create", "delete")),
)


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:_HASH]


@functools.lru_cache(maxsize=16384)  # every reconcile of a 1,000-task run names each task's pod
def pod_name(workflow: str, task: str, attempt: int) -> str:
    """`<workflow>-<task>-<hash>-<attempt>`, at most 63 characters, distinct for every (workflow,
    task) pair: the hash covers both names exactly, so `a` + `b-c` and `a-b` + `c` differ, and a
    shortened or cleaned-up name stays unique."""
    tail = f"-{_hash(workflow, task)}-{attempt}"
    head = re.sub(r"[^a-z0-9-]+", "-", f"{workflow}-{task}".lower())
    head = re.sub(r"-{2,}", "-", head)[: naming.MAX - len(tail)].strip("-") or "task"
    return f"{head}{tail}"


def task_labels(workflow: str, task: str, attempt: int | None = None) -> dict[str, str]:
    found = {WORKFLOW_LABEL: naming.label_value(workflow), TASK_LABEL: naming.label_value(task)}
    if attempt is not None:
        found[ATTEMPT_LABEL] = str(attempt)
    return found


def pod(run: Any, task: models.Task, attempt: int) -> dict[str, Any]:
    """The Pod of `task`'s `attempt` (1 for the first) in workflow `run` (its body)."""
    name, namespace = run["metadata"]["name"], run["metadata"].get("namespace")
    extra = task.metadata or models.TaskMetadata()
    meta = core_children.metadata(
        name=pod_name(name, task.name, attempt),
        namespace=namespace,
        kind=KIND,
        instance=name,
        component="task",
        parent=run,
    )
    # the task's own labels and annotations never replace the ones the operator selects by
    meta["labels"] = {**extra.labels, **meta["labels"], **task_labels(name, task.name, attempt)}
    meta["annotations"] = {**extra.annotations, **meta["annotations"]}
    env = [
        {"name": "OBSERVATORY_WORKFLOW", "value": name},
        {"name": "OBSERVATORY_TASK", "value": task.name},
        {"name": "OBSERVATORY_ATTEMPT", "value": str(attempt)},
        *({"name": e.name, "value": e.value} for e in task.env),  # later entries win: the task's
    ]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": task.image,
        "env": env,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if task.command:
        container["command"] = list(task.command)
    if task.args:
        container["args"] = list(task.args)
    if task.resources:
        amounts = {"requests": task.resources.requests, "limits": task.resources.limits}
        resources = {key: dict(value) for key, value in amounts.items() if value}
        if resources:
            container["resources"] = resources
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
    }
    if task.activeDeadlineSeconds:
        spec["activeDeadlineSeconds"] = task.activeDeadlineSeconds
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def run(schedule: Any, spec: models.ObservatorySpec, name: str, tick: str) -> dict[str, Any]:
    """A schedule's run at `tick` (RFC 3339): an Observatory with the schedule's tasks and none of
    its schedule fields, owned by it (deleting the schedule deletes its runs)."""
    parent_name, namespace = schedule["metadata"]["name"], schedule["metadata"].get("namespace")
    meta = core_children.metadata(
        name=name,
        namespace=namespace,
        kind=KIND,
        instance=parent_name,
        component="run",
        parent=schedule,
        extra_labels={SCHEDULE_LABEL: naming.label_value(parent_name)},
        annotations={SCHEDULED_AT: tick},
    )
    body = spec.model_dump(mode="json", exclude_none=True, exclude_defaults=True, exclude=set(SCHEDULE_FIELDS))
    body["suspend"] = False
    return {"apiVersion": models.API.api_version, "kind": KIND, "metadata": meta, "spec": body}
