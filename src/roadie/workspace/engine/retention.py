"""Which snapshots a retention policy removes (pure: the controller and `roadie jvs gc` both ask).

The rules, the Workspace's `retentionPolicy`: a snapshot is removed only while more than
`keepMinSnapshots` remain, only once it is older than `keepMinAge`, and never while it carries a
tag in `keepTags`; the newest Ready snapshot and the workspace's `currentSnapshot` are never
removed. Beyond JVS, a grandfather-father-son rule (as restic's `--keep-hourly/daily/weekly`):
in each of the last N hours, days and ISO weeks that have snapshots, the newest one is kept.
Every rule only keeps; removal goes oldest first. Snapshots that are not Ready are neither
counted nor removed (one in progress must not be touched; a failed one holds no data).
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Hashable, Iterable, Sequence


@dataclasses.dataclass(frozen=True)
class Candidate:
    id: str
    created_at: datetime.datetime
    tags: frozenset[str] = frozenset()
    ready: bool = True


@dataclasses.dataclass(frozen=True)
class Gfs:
    """Keep the newest snapshot of each of the last `hourly` hours, `daily` days, `weekly` weeks."""

    hourly: int = 0
    daily: int = 0
    weekly: int = 0


@dataclasses.dataclass
class Plan:
    delete: list[str] = dataclasses.field(default_factory=list)
    keep: dict[str, str] = dataclasses.field(default_factory=dict)  # id -> the rule that keeps it


def _utc(moment: datetime.datetime) -> datetime.datetime:
    return moment.astimezone(datetime.UTC) if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


_BUCKETS: dict[str, Callable[[datetime.datetime], Hashable]] = {
    "hourly": lambda t: (t.date(), t.hour),
    "daily": lambda t: t.date(),
    "weekly": lambda t: t.isocalendar()[:2],
}


def _gfs(ready: Sequence[Candidate], gfs: Gfs) -> dict[str, str]:
    kept: dict[str, str] = {}
    for rule, bucket in _BUCKETS.items():
        wanted = getattr(gfs, rule)
        seen: set[Hashable] = set()
        for snap in reversed(ready):  # newest first: the first of each bucket is its newest
            if len(seen) >= wanted:
                break
            key = bucket(_utc(snap.created_at))
            if key not in seen:
                seen.add(key)
                kept.setdefault(snap.id, f"the newest of its {rule.removesuffix('ly').replace('dai', 'day')} ({rule})")
    return kept


def plan(
    snapshots: Iterable[Candidate],
    keep_min: int,
    keep_min_age: datetime.timedelta,
    keep_tags: Iterable[str],
    now: datetime.datetime,
    gfs: Gfs | None = None,
    *,
    current: str | None = None,
) -> Plan:
    """The decision for every Ready snapshot, with the rule that keeps each kept one."""
    ready = sorted((s for s in snapshots if s.ready), key=lambda s: (_utc(s.created_at), s.id))
    protected_tags = set(keep_tags)
    result = Plan()
    reasons = _gfs(ready, gfs) if gfs else {}
    if ready:
        reasons[ready[-1].id] = "the newest Ready snapshot"
    if current:
        reasons[current] = "the workspace's current snapshot"
    remaining = len(ready)
    for snap in ready:
        why = reasons.get(snap.id)
        tagged = sorted(protected_tags & snap.tags)
        if why is None and tagged:
            why = f"tagged {tagged[0]} (keepTags)"
        if why is None and _utc(now) - _utc(snap.created_at) < keep_min_age:
            why = "younger than keepMinAge"
        if why is None and remaining <= keep_min:
            why = f"only {remaining} remain (keepMinSnapshots {keep_min})"
        if why is None:
            result.delete.append(snap.id)
            remaining -= 1
        else:
            result.keep[snap.id] = why
    return result


def select(
    snapshots: Iterable[Candidate],
    keep_min: int,
    keep_min_age: datetime.timedelta,
    keep_tags: Iterable[str],
    now: datetime.datetime,
    gfs: Gfs | None = None,
    *,
    current: str | None = None,
) -> list[str]:
    """The IDs to delete, oldest first."""
    return plan(snapshots, keep_min, keep_min_age, keep_tags, now, gfs, current=current).delete
