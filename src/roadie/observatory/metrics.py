"""Prometheus metrics of workflows, on the operator's one registry: what users of a workflow
engine watch (how many runs and tasks end how, how long tasks take, how long a ready task waits
for its pod, how many run now).

Counted from transitions between the status the operator wrote last and the one it writes now,
so a restarted operator, which starts from the stored status, does not count a task twice.
"""

from __future__ import annotations

import prometheus_client

from roadie.core import metrics as core_metrics

REGISTRY = core_metrics.REGISTRY
#: Task durations and waits: from a second-long test task to an hour-long job.
DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)

WORKFLOWS = prometheus_client.Counter(
    "roadie_observatory_workflows_total", "Workflow runs ended, by outcome.", ["outcome"], registry=REGISTRY
)
TASKS = prometheus_client.Counter(
    "roadie_observatory_tasks_total",
    "Tasks ended (Succeeded, Failed, Skipped), by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
ATTEMPTS = prometheus_client.Counter(
    "roadie_observatory_task_attempts_total",
    "Task attempts (pods) started; attempt > 1 is a retry.",
    ["retry"],
    registry=REGISTRY,
)
TASK_SECONDS = prometheus_client.Histogram(
    "roadie_observatory_task_duration_seconds",
    "Time from a task attempt's pod being created to its end, by outcome of the attempt.",
    ["outcome"],
    buckets=DURATION_BUCKETS,
    registry=REGISTRY,
)
QUEUE_WAIT = prometheus_client.Histogram(
    "roadie_observatory_task_queue_wait_seconds",
    "Time from a task being ready (dependencies succeeded) to its pod being created.",
    buckets=WAIT_BUCKETS,
    registry=REGISTRY,
)

_running: dict[str, int] = {}
RUNNING = prometheus_client.Gauge(
    "roadie_observatory_running_tasks", "Task pods Pending or Running, over every workflow.", registry=REGISTRY
)
RUNNING.set_function(lambda: sum(_running.values()))


def set_running(uid: str, count: int) -> None:
    if count:
        _running[uid] = count
    else:
        _running.pop(uid, None)


def forget(uid: str) -> None:
    _running.pop(uid, None)
