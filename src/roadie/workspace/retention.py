"""The retention policy over Snapshot objects: the engine's pure rules (`engine.retention`) applied
to what the API holds, and the moment the decision can next change (a kept snapshot ages past
`keepMinAge`), so the Workspace is woken exactly then instead of being polled."""

from __future__ import annotations

import datetime
from typing import Any

from roadie.core import durations, models
from roadie.workspace import models as ws_models
from roadie.workspace.engine import layout
from roadie.workspace.engine import retention as rules


def _created(st: dict[str, Any]) -> datetime.datetime | None:
    """The snapshot's creation time to the millisecond, from its ID (`createdAt` has whole
    seconds, and two snapshots taken in one second must still be told apart: which is newest
    decides which the policy keeps)."""
    snapshot_id = str(st.get("snapshotID") or "")
    if snapshot_id[:13].isdigit():
        return layout.id_time(snapshot_id)
    return models.parse_timestamp(st.get("createdAt"))


def decide(
    snapshots: list[dict[str, Any]],
    policy: ws_models.RetentionPolicy,
    now: datetime.datetime,
    *,
    current: str | None = None,
) -> tuple[list[dict[str, Any]], datetime.datetime | None]:
    """(the Snapshot objects to delete, when to look again). Candidates are named by object name;
    only Ready ones with a creation time count."""
    by_name = {s["metadata"]["name"]: s for s in snapshots}
    candidates = []
    current_name = None
    for name, snap in by_name.items():
        st = snap.get("status") or {}
        made = _created(st)
        if made is None:
            continue
        if current and st.get("snapshotID") == current:
            current_name = name
        tags = frozenset((snap.get("spec") or {}).get("tags") or [])
        candidates.append(rules.Candidate(name, made, tags, ready=st.get("phase") == "Ready"))
    age = durations.parse(policy.keepMinAge)
    gfs = rules.Gfs(policy.keepHourly, policy.keepDaily, policy.keepWeekly)
    plan = rules.plan(candidates, policy.keepMinSnapshots, age, policy.keepTags, now, gfs, current=current_name)
    wake = None
    for candidate in candidates:
        moment = candidate.created_at + age
        if candidate.id in plan.keep and moment > now:
            wake = moment if wake is None or moment < wake else wake
    return [by_name[name] for name in plan.delete], wake
