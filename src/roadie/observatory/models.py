"""The Observatory API, as the original operator defined it, plus Roadie's optional additions with
the names Argo Workflows gives them (`retryStrategy`, `activeDeadlineSeconds`, `failFast`, ...) and
CronJob's for schedules (`concurrencyPolicy`, `startingDeadlineSeconds`, history limits).

Every list and string carries a maximum: the API server estimates the cost of the CEL rules below
from them, and refuses the CRD if the worst case could exceed its budget. With them, a workflow of
up to `MAX_TASKS` tasks is validated in the API server. `deploy/crds/` is generated from here.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

import pydantic

from roadie.core import api, cron, models

#: The most tasks one workflow may hold; the CEL cost estimates and the status size are measured at it.
MAX_TASKS = 2000
#: The most dependencies one task may name. The API server's estimate of the dependency rule is
#: about 6 per (task, dependency) pair at the maxima: 2,000 x 500 x 6 = 6M of its 10M budget.
#: A join over a wider fan-out joins in two levels.
MAX_DEPENDENCIES = 500
MAX_ARGS = 256
MAX_ENV = 256
MAX_ARG_LENGTH = 4096
MAX_TASK_NAME = 63
#: A task name is a label value (the operator selects a task's pods by it) and reads well in a graph.
TASK_NAME = r"^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$"
ENV_NAME = r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"

Phase = Literal["Pending", "Running", "Succeeded", "Failed"]
TaskPhase = Literal["Pending", "Running", "Succeeded", "Failed", "Skipped"]
ConcurrencyPolicy = Literal["Allow", "Forbid", "Replace"]

TaskName = pydantic.constr(min_length=1, max_length=MAX_TASK_NAME, pattern=TASK_NAME)
Arg = pydantic.constr(max_length=MAX_ARG_LENGTH)
LabelValue = pydantic.constr(max_length=63)
AnnotationValue = pydantic.constr(max_length=8192)
Duration = Annotated[models.Duration, pydantic.Field(max_length=32)]


def _cel(*rules: tuple[str, str]) -> dict[str, Any]:
    return {"x-kubernetes-validations": [{"rule": rule, "message": message} for rule, message in rules]}


class EnvVar(models.ApiModel):
    name: str = pydantic.Field(min_length=1, max_length=256, pattern=ENV_NAME, description="Variable name.")
    value: str = pydantic.Field(default="", max_length=32768, description="Its value.")


class Backoff(models.ApiModel):
    """Argo's retry backoff: the n-th retry waits `duration x factor^(n-1)`, at most `maxDuration`."""

    duration: Duration = pydantic.Field(description="Wait before the first retry, such as 10s or 2m.")
    factor: int = pydantic.Field(default=2, ge=1, le=100, description="Each further wait is this many times longer.")
    maxDuration: Duration | None = pydantic.Field(default=None, description="The longest wait; unset: no cap.")


class RetryStrategy(models.ApiModel):
    limit: int = pydantic.Field(
        ge=0, le=100, description="Retries after the first attempt fails (required: Argo's unset means forever)."
    )
    backoff: Backoff | None = pydantic.Field(
        default=None, description="Wait between attempts; unset: the next attempt starts at once."
    )


class Resources(models.ApiModel):
    requests: dict[str, models.Quantity] | None = pydantic.Field(
        default=None, max_length=16, description="What the scheduler reserves for the task's pod."
    )
    limits: dict[str, models.Quantity] | None = pydantic.Field(
        default=None, max_length=16, description="What the task's pod may use at most."
    )


class TaskMetadata(models.ApiModel):
    """Labels and annotations copied onto each pod of the task (Argo's template `metadata`)."""

    labels: dict[str, LabelValue] = pydantic.Field(default_factory=dict, max_length=64)  # type: ignore[valid-type]
    annotations: dict[str, AnnotationValue] = pydantic.Field(  # type: ignore[valid-type]
        default_factory=dict, max_length=64
    )


#: Rules on each task (`self` is one task). An omitted list is absent in CEL, not empty: `has()` first.
EACH_TASK_RULES: tuple[tuple[str, str], ...] = (
    ("!has(self.dependencies) || !(self.name in self.dependencies)", "a task cannot depend on itself"),
)


class Task(models.ApiModel):
    model_config = pydantic.ConfigDict(json_schema_extra=_cel(*EACH_TASK_RULES))

    name: str = pydantic.Field(
        min_length=1,
        max_length=MAX_TASK_NAME,
        pattern=TASK_NAME,
        description="Unique within the workflow; names the task's pods and is what dependencies refer to.",
    )
    image: str = pydantic.Field(min_length=1, max_length=512, description="Container image to run.")
    command: list[Arg] = pydantic.Field(  # type: ignore[valid-type]
        default_factory=list, max_length=MAX_ARGS, description="Entrypoint; unset: the image's."
    )
    args: list[Arg] = pydantic.Field(  # type: ignore[valid-type]
        default_factory=list, max_length=MAX_ARGS, description="Arguments to the entrypoint."
    )
    dependencies: list[TaskName] = pydantic.Field(  # type: ignore[valid-type]
        default_factory=list,
        max_length=MAX_DEPENDENCIES,
        description="Tasks that must have Succeeded before this one starts.",
    )
    env: list[EnvVar] = pydantic.Field(default_factory=list, max_length=MAX_ENV, description="Environment variables.")
    # Roadie additions, Argo's names
    retryStrategy: RetryStrategy | None = pydantic.Field(
        default=None, description="Roadie addition: retry a failed task (Argo's retryStrategy)."
    )
    activeDeadlineSeconds: int | None = pydantic.Field(
        default=None, ge=1, description="Roadie addition: an attempt running longer fails (DeadlineExceeded)."
    )
    resources: Resources | None = pydantic.Field(
        default=None, description="Roadie addition: requests and limits of the task's container."
    )
    metadata: TaskMetadata | None = pydantic.Field(
        default=None, description="Roadie addition: labels and annotations for the task's pods."
    )

    @property
    def retry_limit(self) -> int:
        return self.retryStrategy.limit if self.retryStrategy else 0


#: Rules on `spec.tasks`, the list. Names are unique by the list type (a map keyed by name), so a
#: name is a key: `self.exists(...)` would cost tasks² per check, a map lookup costs one, and the
#: map is built once per evaluation inside a one-element list (CEL in Kubernetes has no `bind`).
TASK_RULES: tuple[tuple[str, str], ...] = (
    (
        "[self.transformMapEntry(i, t, {t.name: true})]"
        ".all(names, self.all(t, !has(t.dependencies) || t.dependencies.all(d, d in names)))",
        "every dependency must name a task of this workflow",
    ),
)


class ObservatorySpec(models.ApiModel):
    tasks: list[Task] = pydantic.Field(
        min_length=1,
        max_length=MAX_TASKS,
        description="The workflow's tasks: a directed acyclic graph through their dependencies.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
            **_cel(*TASK_RULES),
        },
    )
    schedule: str | None = pydantic.Field(
        default=None,
        max_length=cron.MAX_LENGTH,
        pattern=cron.PATTERN,
        description="Cron schedule (5 fields or @daily, ...): this object becomes a schedule creating runs.",
    )
    suspend: bool = pydantic.Field(
        default=False, description="Start no new task (running ones finish); on a schedule, start no new run."
    )
    maxConcurrent: int = pydantic.Field(
        default=10, ge=1, le=10000, description="Most task pods of this workflow Pending or Running at once."
    )
    # Roadie additions, Argo's names
    failFast: bool = pydantic.Field(
        default=False, description="Roadie addition: after a task fails, start no other task."
    )
    activeDeadlineSeconds: int | None = pydantic.Field(
        default=None, ge=1, description="Roadie addition: a run lasting longer fails (DeadlineExceeded)."
    )
    ttlSecondsAfterFinished: int | None = pydantic.Field(
        default=None, ge=0, description="Roadie addition: delete a finished run this many seconds after it ends."
    )
    # Roadie additions for schedules, CronJob's semantics
    timezone: str | None = pydantic.Field(
        default=None,
        max_length=64,
        pattern=cron.ZONE_PATTERN,
        description="Roadie addition: IANA time zone of the schedule (such as Europe/Berlin); unset: UTC.",
    )
    concurrencyPolicy: ConcurrencyPolicy = pydantic.Field(
        default="Allow",
        description="Roadie addition: a tick while a run is active: Allow another, Forbid (skip it), Replace.",
    )
    startingDeadlineSeconds: int | None = pydantic.Field(
        default=None, ge=0, description="Roadie addition: a missed tick older than this is not run."
    )
    successfulRunsHistoryLimit: int = pydantic.Field(
        default=3, ge=0, le=1000, description="Roadie addition: succeeded runs kept."
    )
    failedRunsHistoryLimit: int = pydantic.Field(
        default=1, ge=0, le=1000, description="Roadie addition: failed runs kept."
    )

    @property
    def is_schedule(self) -> bool:
        return self.schedule is not None


#: Rules across the spec. CEL on the spec cannot see the status, so "cannot change once started" is
#: written as "cannot change once created" for a run: the operator starts a run as soon as it sees it.
SPEC_RULES: tuple[api.CelRule, ...] = (
    api.CelRule(
        "has(self.schedule) == has(oldSelf.schedule)",
        "schedule cannot be added or removed: a workflow and a schedule are different things; create a new object",
    ),
    api.CelRule(
        "has(self.schedule) || self.tasks == oldSelf.tasks",
        "tasks cannot change once the workflow exists (suspend and maxConcurrent can); create a new workflow",
    ),
)


class TaskStatus(models.ApiModel):
    name: str
    phase: TaskPhase = "Pending"
    startTime: datetime.datetime | None = pydantic.Field(default=None, description="When its first pod was created.")
    completionTime: datetime.datetime | None = None
    message: str | None = None
    # Roadie additions
    reason: str | None = pydantic.Field(default=None, description="Why it failed or was skipped, in one word.")
    attempts: int | None = pydantic.Field(default=None, description="Pods started for this task so far.")
    podName: str | None = pydantic.Field(default=None, description="The pod of the latest attempt.")
    readyTime: datetime.datetime | None = pydantic.Field(
        default=None, description="When every dependency had Succeeded (queue wait is startTime - readyTime)."
    )
    exitCode: int | None = pydantic.Field(default=None, description="Exit code of the latest finished attempt.")
    retryTime: datetime.datetime | None = pydantic.Field(
        default=None, description="When the next attempt starts, after a failed one."
    )


class RunReference(models.ApiModel):
    name: str
    uid: str | None = None


class ObservatoryStatus(models.ApiModel):
    phase: Phase | None = None
    tasks: list[TaskStatus] = pydantic.Field(default_factory=list)
    startTime: datetime.datetime | None = None
    completionTime: datetime.datetime | None = None
    lastScheduleTime: datetime.datetime | None = None
    conditions: list[models.Condition] = pydantic.Field(default_factory=list)
    # Roadie additions
    progress: str | None = pydantic.Field(default=None, description="Succeeded tasks of all, such as 3/5.")
    message: str | None = None
    observedGeneration: int | None = None
    active: list[RunReference] = pydantic.Field(default_factory=list, description="Runs of this schedule running.")
    nextScheduleTime: datetime.datetime | None = None


API = api.Api(
    group="workflow.seventh-horizon.io",
    version="v1alpha1",
    kind="Observatory",
    plural="observatories",
    spec=ObservatorySpec,
    status=ObservatoryStatus,
    short_names=("obs",),
    spec_rules=SPEC_RULES,
    printer_columns=(
        api.PrinterColumn("Phase", ".status.phase"),
        api.PrinterColumn("Progress", ".status.progress", description="Succeeded tasks of all."),
        api.PrinterColumn("Started", ".status.startTime", "date"),
        api.PrinterColumn("Finished", ".status.completionTime", "date"),
        api.PrinterColumn("Schedule", ".spec.schedule"),
        api.PrinterColumn("Suspend", ".spec.suspend", "boolean", priority=1),
        api.PrinterColumn("Last Schedule", ".status.lastScheduleTime", "date", priority=1),
        api.PrinterColumn("Message", ".status.message", priority=1),
        api.AGE,
    ),
)
