"""The Lease election's state machine, on a fake Lease store and a fake clock.

Two replicas that both believe they lead reconcile the same objects twice and fight over them;
a standby that never takes over leaves the cluster without an operator. These tests walk the
transitions client-go's leaderelection defines: acquiring a free Lease, renewing it, waiting out a
held one (timed by the standby's own clock from when it saw the Lease change, so a skewed or stale
`renewTime` cannot shorten it), taking over an expired one, releasing it on a clean stop, and
losing a race to another writer. The loops are then run in real (short) time: a standby takes over
as soon as the watch shows a release, and a leader that cannot renew gives up at its deadline.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time
from collections.abc import AsyncIterator

import pytest

from roadie.core import leader, metrics
from roadie.core.leader import ConflictError, Elector, Record

EPOCH = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def wall(self) -> datetime.datetime:
        return EPOCH + datetime.timedelta(seconds=self.now)


class FakeStore:
    """One Lease with a resourceVersion that moves on every write, as the API server keeps it."""

    def __init__(self) -> None:
        self.record: Record | None = None
        self.version = 0
        self.failing = False
        self.before_write: list[Record] = []  # another writer's records, written just before ours
        self.changes: asyncio.Queue[Record | None] = asyncio.Queue()

    def _store(self, record: Record) -> Record:
        self.version += 1
        self.record = dataclasses.replace(record, resource_version=str(self.version))
        self.changes.put_nowait(self.record)
        return self.record

    async def get(self) -> Record | None:
        if self.failing:
            raise OSError("the API server is unreachable")
        return self.record

    async def create(self, record: Record) -> Record:
        if self.failing:
            raise OSError("the API server is unreachable")
        if self.record is not None:
            raise ConflictError("exists")
        return self._store(record)

    async def update(self, record: Record) -> Record:
        if self.failing:
            raise OSError("the API server is unreachable")
        while self.before_write:
            self._store(self.before_write.pop(0))
        if self.record is None or record.resource_version != self.record.resource_version:
            raise ConflictError("the object has been modified")
        return self._store(record)

    async def watch(self) -> AsyncIterator[Record | None]:
        while True:
            yield await self.changes.get()


def elector(store: FakeStore, name: str, clock: Clock) -> Elector:
    return Elector(store, name, clock=clock, wall=clock.wall)


async def test_the_first_candidate_creates_the_lease_and_leads() -> None:
    store, clock = FakeStore(), Clock()
    a = elector(store, "a", clock)
    assert await a.try_acquire_or_renew()
    assert a.leading
    assert store.record is not None
    assert (store.record.holder, store.record.lease_duration, store.record.transitions) == ("a", 15, 0)
    assert store.record.acquire_time == store.record.renew_time == EPOCH


async def test_renewing_moves_renew_time_and_keeps_the_acquisition() -> None:
    store, clock = FakeStore(), Clock()
    a = elector(store, "a", clock)
    await a.try_acquire_or_renew()
    clock.now = 2.0
    assert await a.try_acquire_or_renew()
    assert store.record is not None
    assert store.record.acquire_time == EPOCH
    assert store.record.renew_time == EPOCH + datetime.timedelta(seconds=2)
    assert store.record.transitions == 0
    assert store.version == 2


async def test_a_held_lease_is_left_alone_until_it_expires_by_the_standbys_clock() -> None:
    store, clock = FakeStore(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    await a.try_acquire_or_renew()
    clock.now = 1.0
    assert not await b.try_acquire_or_renew()  # b sees the Lease first at t=1
    clock.now = 15.9
    assert not await b.try_acquire_or_renew()
    assert store.record is not None and store.record.holder == "a"
    clock.now = 16.1  # 15 s after b first saw it: a never renewed
    assert await b.try_acquire_or_renew()
    assert store.record.holder == "b"
    assert store.record.transitions == 1
    assert store.record.acquire_time == clock.wall()
    assert b.leading


async def test_each_renewal_seen_restarts_the_standbys_wait() -> None:
    store, clock = FakeStore(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    await a.try_acquire_or_renew()
    await b.try_acquire_or_renew()
    for moment in (2.0, 4.0, 6.0, 8.0, 10.0):
        clock.now = moment
        await a.try_acquire_or_renew()
        assert not await b.try_acquire_or_renew()
    clock.now = 24.9
    assert not await b.try_acquire_or_renew()
    assert round(b.expires_in(), 3) == 0.1
    clock.now = 25.1
    assert await b.try_acquire_or_renew()


async def test_an_old_renew_time_does_not_shorten_the_wait() -> None:
    """A standby that starts long after the last renewal (or whose clock runs ahead of the
    leader's) still waits a full lease from its own first sight of the Lease."""
    store, clock = FakeStore(), Clock()
    stale = Record("a", 15, EPOCH - datetime.timedelta(hours=1), EPOCH - datetime.timedelta(hours=1), 3)
    store._store(stale)
    clock.now = 100.0
    b = elector(store, "b", clock)
    assert not await b.try_acquire_or_renew()
    clock.now = 114.0
    assert not await b.try_acquire_or_renew()
    clock.now = 115.5
    assert await b.try_acquire_or_renew()
    assert store.record is not None and store.record.transitions == 4


async def test_release_frees_the_lease_for_a_standby_at_once() -> None:
    store, clock = FakeStore(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    clock.now = 1.0
    assert await a.release()
    assert store.record is not None
    assert (store.record.holder, store.record.lease_duration) == ("", 1)
    assert not a.leading
    assert metrics.REGISTRY.get_sample_value("roadie_leader") == 0
    assert await b.try_acquire_or_renew()  # no wait: nobody holds it
    assert store.record.holder == "b" and store.record.transitions == 1


async def test_release_of_a_lease_not_held_writes_nothing() -> None:
    store, clock = FakeStore(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    await a.try_acquire_or_renew()
    await b.try_acquire_or_renew()
    version = store.version
    assert not await b.release()
    assert store.version == version


async def test_a_write_that_lost_the_race_is_refused_and_leaves_the_winner() -> None:
    store, clock = FakeStore(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    await a.try_acquire_or_renew()
    await a.release()
    store.before_write.append(Record("c", 15, clock.wall(), clock.wall(), 2))
    assert not await b.try_acquire_or_renew()
    assert store.record is not None and store.record.holder == "c"
    assert not b.leading
    assert not await a.try_acquire_or_renew()  # c holds it now, for a full lease


async def test_two_first_candidates_create_only_one_lease() -> None:
    store, clock = FakeStore(), Clock()
    a, b = elector(store, "a", clock), elector(store, "b", clock)
    results = await asyncio.gather(a.try_acquire_or_renew(), b.try_acquire_or_renew())
    assert sorted(results) == [False, True]
    assert store.version == 1


async def test_an_older_version_seen_after_a_newer_one_is_ignored() -> None:
    store, clock = FakeStore(), Clock()
    a = elector(store, "a", clock)
    a.observe(Record("a", 15, EPOCH, EPOCH, 0, "7"))
    a.observe(Record("b", 15, EPOCH, EPOCH, 1, "5"))  # a watch event from before a's write
    assert a.leading
    a.observe(Record("b", 15, EPOCH, EPOCH, 1, "9"))
    assert not a.leading


# -- the loops, in real (short) time ------------------------------------------------------------
def fast(store: FakeStore, name: str) -> Elector:
    return Elector(store, name, lease_duration=2.0, renew_deadline=1.0, retry_period=0.2)


async def test_a_standby_takes_over_as_soon_as_it_sees_the_release() -> None:
    store = FakeStore()
    a, b = fast(store, "a"), fast(store, "b")
    b.retry_period = 5.0  # so only the watch, not a poll, can wake it in time
    await a.acquire()
    watching = asyncio.create_task(b.watch())
    standby = asyncio.create_task(b.acquire())
    await asyncio.sleep(0.1)
    assert not standby.done()
    released = time.monotonic()
    await a.release()
    await asyncio.wait_for(standby, 1.0)
    assert time.monotonic() - released < 0.2
    assert store.record is not None and store.record.holder == "b"
    watching.cancel()


async def test_a_standby_takes_over_when_the_last_renewal_it_saw_runs_out() -> None:
    store = FakeStore()
    a, b = fast(store, "a"), fast(store, "b")
    b.retry_period = 5.0  # it wakes at the lease's end, not at a poll
    await a.acquire()
    await b.try_acquire_or_renew()
    seen = time.monotonic()
    await asyncio.wait_for(b.acquire(), 3.0)
    assert 1.95 < time.monotonic() - seen < 2.3
    assert b.leading


async def test_a_leader_that_cannot_renew_gives_up_at_its_deadline() -> None:
    store = FakeStore()
    a = fast(store, "a")
    await a.acquire()
    assert metrics.REGISTRY.get_sample_value("roadie_leader") == 1
    keeping = asyncio.create_task(a.keep())
    await asyncio.sleep(0.5)
    assert not keeping.done()  # renewing every 0.2 s
    store.failing = True
    failed = time.monotonic()
    with pytest.raises(leader.LeadershipLostError, match="not renewed"):
        await asyncio.wait_for(keeping, 3.0)
    assert time.monotonic() - failed < 1.0 + 0.2 + 0.1  # the deadline counts from the last renewal
    assert metrics.REGISTRY.get_sample_value("roadie_leader") == 0


async def test_a_leader_that_sees_another_holder_stops_at_once() -> None:
    store = FakeStore()
    a = fast(store, "a")
    await a.acquire()
    watching = asyncio.create_task(a.watch())
    keeping = asyncio.create_task(a.keep())
    await asyncio.sleep(0.3)
    assert store.record is not None
    store._store(dataclasses.replace(store.record, holder="intruder"))
    taken = time.monotonic()
    with pytest.raises(leader.LeadershipLostError, match="intruder"):
        await asyncio.wait_for(keeping, 2.0)
    assert time.monotonic() - taken < 0.1
    watching.cancel()


def test_identity_and_namespace_come_from_the_downward_api() -> None:
    assert leader.identity({"POD_NAME": "roadie-7d9f-abcde"}) == "roadie-7d9f-abcde"
    outside = leader.identity({})
    assert outside.endswith(f"_{__import__('os').getpid()}") and len(outside) > 2
    assert leader.namespace({"POD_NAMESPACE": "platform"}) == "platform"
    assert leader.namespace({}) == "roadie-system"
