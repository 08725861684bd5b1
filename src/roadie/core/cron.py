"""Cron schedules as Kubernetes CronJobs read them: five fields (or `@daily` and its kin) in a time
zone, ticks exact to the second, and the catch-up rule for ticks missed while nobody was watching.

Shared by every kind that runs something on a schedule (Observatory's schedules, Workspace's
automatic snapshots), so it knows no kind. Tick arithmetic is croniter's, in wall time of the zone
(zoneinfo); two daylight-saving rules are made explicit here, as Vixie cron has them:

- a wall time the clocks skip (spring forward) runs at the first moment after the gap, once;
- a wall time that happens twice (fall back) runs once, at its first occurrence, for expressions
  with fixed hours; expressions whose hour field is `*` keep running by elapsed time (an hourly
  schedule runs in both of the repeated hours).

Catch-up is CronJob's: of all the ticks missed since the last run (or since creation), only the
most recent runs, at most once, and only if it is still within `startingDeadlineSeconds`.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import zoneinfo

import croniter as croniter_mod

UTC = datetime.UTC

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")

#: For CRD schemas: the shape of a five-field expression or a macro. It lets through what only a
#: parser can judge (minute 61, February 30th), which `validate` refuses.
PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|[0-9*/,-]+ +[0-9*/,-]+ +[0-9*/,?LW-]+ +([0-9*/,-]|[A-Za-z]{3})+ +([0-9*/,?L#-]|[A-Za-z]{3})+)$"
)
MAX_LENGTH = 128
ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"
_PATTERN = re.compile(PATTERN)
#: More than any daylight-saving shift: how far wall time and instants can disagree in order.
_SLACK = datetime.timedelta(hours=3)
_MAX_GAP_MINUTES = 24 * 60


class CronError(ValueError):
    """An expression or a time zone that cannot be used; the message says which and why."""


def validate(expr: str) -> None:
    """Raise CronError naming what is wrong with `expr`; return quietly when it is usable."""
    text = expr.strip()
    if not _PATTERN.match(text):
        raise CronError(
            f"invalid schedule {expr!r}: write five fields (minute hour day-of-month month day-of-week), "
            f"such as '*/15 * * * *', or one of {', '.join(MACROS)}"
        )
    if not croniter_mod.croniter.is_valid(text):
        raise CronError(f"invalid schedule {expr!r}: a field is out of range or malformed")
    try:
        croniter_mod.croniter(text, datetime.datetime(2000, 1, 1)).get_next(datetime.datetime)
    except croniter_mod.CroniterBadDateError as error:
        raise CronError(f"invalid schedule {expr!r}: it names a date that never comes") from error


def is_valid(expr: str) -> bool:
    try:
        validate(expr)
    except CronError:
        return False
    return True


def zone(name: str | None) -> datetime.tzinfo:
    """The time zone called `name` (IANA, such as `Europe/Berlin`); UTC when unset."""
    if not name:
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as error:
        raise CronError(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'") from error


def _fixed_hours(expr: str) -> bool:
    text = expr.strip()
    if text.startswith("@"):
        return text != "@hourly"
    return text.split()[1] != "*"


def _exists(wall: datetime.datetime, tz: datetime.tzinfo, fold: int) -> datetime.datetime | None:
    """The instant at which the clocks of `tz` show `wall` (with `fold`), or None if they never do."""
    moment = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
    return moment if moment.astimezone(tz).replace(tzinfo=None) == wall else None


def _instants(wall: datetime.datetime, tz: datetime.tzinfo, fixed: bool) -> list[datetime.datetime]:
    """The instants at which a tick at wall time `wall` runs: one, two (a repeated hour, for an
    expression with wildcard hours), or none (a skipped hour, for wildcard hours)."""
    first, second = _exists(wall, tz, 0), _exists(wall, tz, 1)
    if first is not None and second is not None:
        return [first] if first == second or fixed else [first, second]
    if first is not None or second is not None:
        return [first or second]  # type: ignore[list-item]
    if not fixed:
        return []
    for minutes in range(1, _MAX_GAP_MINUTES + 1):  # the first wall time after the gap
        after_gap = _exists(wall + datetime.timedelta(minutes=minutes), tz, 0)
        if after_gap is not None:
            return [after_gap.replace(second=0)]
    return []  # pragma: no cover - no zone skips more than a day


def _wall(moment: datetime.datetime, tz: datetime.tzinfo) -> datetime.datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


def _ticks(expr: str, wall_start: datetime.datetime) -> croniter_mod.croniter:
    validate(expr)
    return croniter_mod.croniter(expr.strip(), wall_start)


def _aware(moment: datetime.datetime) -> datetime.datetime:
    if moment.tzinfo is None:
        raise ValueError(f"a naive datetime {moment!r} has no meaning here; give it a time zone")
    return moment


def next_tick(expr: str, after: datetime.datetime, tz: str | None = None) -> datetime.datetime:
    """The first tick strictly after `after`, in UTC.

    croniter steps through wall times (naive, so it is never confused by an offset change); each
    wall time becomes its instants by the rules above. Wall time runs backwards in a repeated hour,
    so the search starts a little before `after` and takes the earliest instant found.
    """
    zone_info, fixed = zone(tz), _fixed_hours(expr)
    after = _aware(after)
    ticks = _ticks(expr, _wall(after, zone_info) - _SLACK)
    best: datetime.datetime | None = None
    while True:
        wall: datetime.datetime = ticks.get_next(datetime.datetime)
        if best is not None and wall > _wall(best, zone_info) + _SLACK:
            return best
        for moment in _instants(wall, zone_info, fixed):
            if moment > after and (best is None or moment < best):
                best = moment


def latest_tick(expr: str, at_or_before: datetime.datetime, tz: str | None = None) -> datetime.datetime:
    """The most recent tick at or before `at_or_before`, in UTC (the mirror of `next_tick`)."""
    zone_info, fixed = zone(tz), _fixed_hours(expr)
    moment = _aware(at_or_before)
    ticks = _ticks(expr, _wall(moment, zone_info) + _SLACK)
    best: datetime.datetime | None = None
    while True:
        wall: datetime.datetime = ticks.get_prev(datetime.datetime)
        if best is not None and wall < _wall(best, zone_info) - _SLACK:
            return best
        for found in _instants(wall, zone_info, fixed):
            if found <= moment and (best is None or found > best):
                best = found


@dataclasses.dataclass(frozen=True)
class Due:
    """What a schedule should do at `now`: run `tick` (at most one), and wake up again at `next`."""

    #: the tick to run now: the most recent one missed since the last run, or None
    tick: datetime.datetime | None
    #: the first tick after `now`: when to look again
    next: datetime.datetime
    #: a tick that was missed and is too late to run (past the starting deadline), for a warning
    too_late: datetime.datetime | None = None
    #: True when more than one tick was missed and only the most recent one runs
    skipped_older: bool = False


def due(
    expr: str,
    *,
    now: datetime.datetime,
    last: datetime.datetime | None,
    created: datetime.datetime,
    starting_deadline_seconds: int | None = None,
    tz: str | None = None,
) -> Due:
    """CronJob's decision: the one tick to run now, if any.

    Ticks are looked for after the last scheduled tick (`lastScheduleTime`), or after creation for
    a schedule that never ran. Of those at or before `now`, only the most recent runs; with a
    starting deadline, only if it is at most that many seconds old. So an operator that was down
    for a day runs a missed hourly schedule once, not 24 times.
    """
    now = _aware(now)
    earliest = _aware(last) if last is not None else _aware(created)
    upcoming = next_tick(expr, now, tz)
    candidate = latest_tick(expr, now, tz)
    if candidate <= earliest:
        return Due(tick=None, next=upcoming)
    skipped_older = next_tick(expr, earliest, tz) < candidate
    if starting_deadline_seconds is not None and now - candidate > datetime.timedelta(
        seconds=starting_deadline_seconds
    ):
        return Due(tick=None, next=upcoming, too_late=candidate, skipped_older=skipped_older)
    return Due(tick=candidate, next=upcoming, skipped_older=skipped_older)
