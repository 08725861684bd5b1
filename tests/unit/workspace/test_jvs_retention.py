"""The retention rules one by one (pure): keepMinSnapshots, keepMinAge, keepTags, the newest Ready
snapshot and the workspace's currentSnapshot never removed, snapshots not Ready left alone,
oldest removed first, and the optional hourly/daily/weekly rule."""

from __future__ import annotations

import datetime

from roadie.workspace.engine import retention

NOW = datetime.datetime(2025, 6, 15, 12, 0, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
HOUR = datetime.timedelta(hours=1)


def _snaps(count: int, step: datetime.timedelta = DAY, **tags: str) -> list[retention.Candidate]:
    """`count` snapshots, the newest `step` ago, each `step` older than the next."""
    return [
        retention.Candidate(f"s{i:02d}", NOW - step * (count - i), frozenset(filter(None, [tags.get(f"s{i:02d}")])))
        for i in range(count)
    ]


def test_the_oldest_go_first_while_more_than_keep_min_remain() -> None:
    snaps = _snaps(10)
    assert retention.select(snaps, 7, HOUR, [], NOW) == ["s00", "s01", "s02"]


def test_nothing_goes_while_keep_min_or_fewer_remain() -> None:
    assert retention.select(_snaps(5), 5, HOUR, [], NOW) == []
    assert retention.select(_snaps(5), 10, HOUR, [], NOW) == []


def test_younger_than_keep_min_age_is_kept() -> None:
    snaps = _snaps(10, step=HOUR)  # from 10 hours ago to 1 hour ago
    plan = retention.plan(snaps, 0, datetime.timedelta(hours=5, minutes=30), [], NOW)
    assert plan.delete == ["s00", "s01", "s02", "s03", "s04"]
    assert plan.keep["s05"] == "younger than keepMinAge"


def test_a_kept_tag_protects_a_snapshot_which_still_counts_among_those_remaining() -> None:
    snaps = _snaps(6, s00="release", s02="nightly")
    plan = retention.plan(snaps, 2, HOUR, ["release"], NOW)
    assert plan.delete == ["s01", "s02", "s03", "s04"]  # s00 (tagged) and s05 (newest) remain: 2
    assert plan.keep["s00"] == "tagged release (keepTags)"


def test_the_newest_ready_and_the_current_snapshot_are_never_removed() -> None:
    snaps = _snaps(5)
    plan = retention.plan(snaps, 0, datetime.timedelta(0), [], NOW, current="s01")
    assert plan.delete == ["s00", "s02", "s03"]
    assert plan.keep == {"s01": "the workspace's current snapshot", "s04": "the newest Ready snapshot"}


def test_snapshots_not_ready_are_neither_counted_nor_removed() -> None:
    snaps = _snaps(5)
    snaps.append(retention.Candidate("running", NOW, ready=False))
    snaps.insert(0, retention.Candidate("failed", NOW - 30 * DAY, ready=False))
    plan = retention.plan(snaps, 3, HOUR, [], NOW)
    assert plan.delete == ["s00", "s01"]
    assert "running" not in plan.keep and "failed" not in plan.delete


def test_hourly_daily_weekly_keep_the_newest_of_each_period() -> None:
    # Every 20 minutes for 3 weeks: what survives is exactly what the rule names.
    snaps = _snaps(3 * 7 * 72, step=datetime.timedelta(minutes=20))
    gfs = retention.Gfs(hourly=3, daily=2, weekly=2)
    plan = retention.plan(snaps, 0, datetime.timedelta(0), [], NOW, gfs)
    kept = sorted(plan.keep, key=lambda i: int(i[1:]))
    times = {s.id: s.created_at for s in snaps}
    hours = {(times[i].date(), times[i].hour) for i in kept}
    assert len(kept) <= 3 + 2 + 2
    newest = times[kept[-1]]
    for back in range(3):  # the newest snapshot of each of the last three hours
        hour = (newest - back * HOUR).replace(minute=0, second=0, microsecond=0)
        assert (hour.date(), hour.hour) in hours
    days = {times[i].date() for i in kept}
    assert {newest.date(), (newest - DAY).date()} <= days
    assert len({times[i].isocalendar()[:2] for i in kept}) >= 2
    assert all(why.endswith(("(hourly)", "(daily)", "(weekly)")) or "newest Ready" in why for why in plan.keep.values())


def test_gfs_only_adds_protection() -> None:
    snaps = _snaps(48, step=HOUR)
    without = set(retention.select(snaps, 0, datetime.timedelta(0), [], NOW))
    with_gfs = set(retention.select(snaps, 0, datetime.timedelta(0), [], NOW, retention.Gfs(hourly=10)))
    assert with_gfs < without and len(without - with_gfs) == 9  # the newest is kept either way


def test_naive_times_are_taken_as_utc() -> None:
    naive = [retention.Candidate("old", datetime.datetime(2025, 1, 1)), retention.Candidate("new", NOW)]
    assert retention.select(naive, 0, DAY, [], NOW) == ["old"]
