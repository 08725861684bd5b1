"""A schedule's decision, as a CronJob's controller makes it (pure): which run to create at this
tick and under which name, which runs to delete (replaced, or beyond the history limits), and when
to look again.

- A run is named `<schedule>-<minutes since the epoch of its tick>` (CronJob's scheme; ticks are
  whole minutes), shortened with a hash when too long, so a restarted operator computes the same
  name for the same tick and a second create is a 409: each tick runs at most once.
- Missed ticks (the operator was down, or the schedule suspended) are caught up once: only the
  most recent, and only within `startingDeadlineSeconds` (`roadie.core.cron.due`).
- `Allow` lets runs overlap; `Forbid` holds a due tick while a run is active and starts it when that
  run finishes if it is still the latest tick and within the starting deadline (CronJob's
  behaviour); `Replace` deletes the active runs and starts the new one.
- `suspend` creates nothing and deletes nothing but what the history limits drop.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from roadie.core import cron, models, naming
from roadie.observatory import children
from roadie.observatory import models as obs_models

FINISHED = ("Succeeded", "Failed")


def run_name(schedule: str, tick: datetime.datetime) -> str:
    """`<schedule>-<minutes since the epoch>`: deterministic, at most 63 characters."""
    return naming.child_name(schedule, str(int(tick.timestamp()) // 60))


def problem(spec: obs_models.ObservatorySpec) -> str | None:
    """What makes the schedule unusable (the pattern in the CRD cannot see it all), or None."""
    if spec.schedule is None:
        return None
    try:
        cron.validate(spec.schedule)
    except cron.CronError as error:
        return f"spec.schedule: {error}"
    try:
        cron.zone(spec.timezone)
    except cron.CronError as error:
        return f"spec.timezone: {error}"
    return None


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What a schedule needs to know of one of its runs."""

    name: str
    phase: str | None = None
    scheduled: datetime.datetime | None = None
    completed: datetime.datetime | None = None

    @property
    def finished(self) -> bool:
        return self.phase in FINISHED

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> RunInfo:
        meta, status = body.get("metadata") or {}, body.get("status") or {}
        scheduled = (meta.get("annotations") or {}).get(children.SCHEDULED_AT) or meta.get("creationTimestamp")
        return cls(
            name=meta["name"],
            phase=status.get("phase"),
            scheduled=models.parse_timestamp(scheduled) if isinstance(scheduled, str) else scheduled,
            completed=models.parse_timestamp(status.get("completionTime")),
        )


def runs_of(bodies: Iterable[Mapping[str, Any]], schedule_uid: str) -> list[RunInfo]:
    """The runs among `bodies` that this schedule owns (by ownerReference uid)."""
    return [
        RunInfo.of(body)
        for body in bodies
        if any(ref.get("uid") == schedule_uid for ref in (body.get("metadata") or {}).get("ownerReferences") or [])
    ]


@dataclasses.dataclass(frozen=True)
class Create:
    name: str
    tick: datetime.datetime


@dataclasses.dataclass
class Decision:
    create: Create | None = None
    #: runs to delete: replaced active ones, then finished ones beyond the history limits
    delete: list[str] = dataclasses.field(default_factory=list)
    #: runs not finished after this decision (the created one included)
    active: list[str] = dataclasses.field(default_factory=list)
    #: the tick to record as lastScheduleTime (a run for it exists or is created now)
    last_schedule_time: datetime.datetime | None = None
    next_tick: datetime.datetime | None = None
    #: when to look again without any event: the next tick (None while suspended)
    next_due: datetime.datetime | None = None
    message: str = ""
    #: (reason, message) worth a Kubernetes event: a tick skipped or missed
    events: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def history_to_delete(spec: obs_models.ObservatorySpec, runs: Sequence[RunInfo]) -> list[str]:
    """Finished runs beyond the history limits, oldest first (by tick, then completion)."""
    doomed: list[str] = []
    for phase, keep in (("Succeeded", spec.successfulRunsHistoryLimit), ("Failed", spec.failedRunsHistoryLimit)):
        done = sorted(
            (r for r in runs if r.phase == phase),
            key=lambda r: (r.scheduled or r.completed or datetime.datetime.min.replace(tzinfo=datetime.UTC), r.name),
        )
        doomed += [r.name for r in done[: max(0, len(done) - keep)]]
    return doomed


def decide(
    spec: obs_models.ObservatorySpec,
    *,
    name: str,
    created: datetime.datetime,
    last_schedule_time: datetime.datetime | None,
    runs: Sequence[RunInfo],
    now: datetime.datetime,
) -> Decision:
    """The schedule's decision at `now`; raise cron.CronError when `problem(spec)` is not None."""
    assert spec.schedule is not None, "only a schedule has a schedule's decision"
    decision = Decision(delete=history_to_delete(spec, runs))
    active = [r.name for r in runs if not r.finished]
    due = cron.due(
        spec.schedule, now=now, last=last_schedule_time, created=created,
        starting_deadline_seconds=spec.startingDeadlineSeconds, tz=spec.timezone,
    )  # fmt: skip
    decision.next_tick = due.next
    decision.next_due = None if spec.suspend else due.next
    if spec.suspend:
        decision.active, decision.message = active, "suspended: no new run starts"
        return decision
    if due.too_late is not None:
        decision.events.append(
            ("MissedSchedule", f"missed the tick at {models.timestamp(due.too_late)}: later than "
                               f"startingDeadlineSeconds ({spec.startingDeadlineSeconds}s)")
        )  # fmt: skip
    if due.tick is None:
        decision.active = active
        return decision
    wanted = run_name(name, due.tick)
    if due.skipped_older:
        latest = models.timestamp(due.tick)
        decision.events.append(("MissedSchedule", f"ticks were missed; running only the latest, {latest}"))
    if any(r.name == wanted for r in runs):  # created before, not recorded: the same tick again
        decision.active, decision.last_schedule_time = active, due.tick
        return decision
    if active and spec.concurrencyPolicy == "Forbid":
        decision.active = active
        decision.message = f"tick {models.timestamp(due.tick)} waits: {active[0]} is still running (Forbid)"
        decision.events.append(("Forbidden", decision.message))
        return decision
    if active and spec.concurrencyPolicy == "Replace":
        decision.delete = active + decision.delete
        decision.events.append(("Replaced", f"deleted {', '.join(active)} for the tick {models.timestamp(due.tick)}"))
        active = []
    decision.create = Create(wanted, due.tick)
    decision.active = [*active, wanted]
    decision.last_schedule_time = due.tick
    return decision
