"""Leader election on a `coordination.k8s.io/v1` Lease: of several operator replicas exactly one
reconciles, and another takes over when it dies or stops.

The protocol is client-go's leaderelection (what controller-runtime's `--leader-elect` runs):
- a candidate reads the Lease and writes itself in as holder only when the Lease has no holder or
  has expired; every write carries the resourceVersion it read, so when two candidates write at
  once the API server lets exactly one through (409 for the other);
- expiry is timed by the candidate's own clock from the moment it saw the Lease last change, never
  from the holder's `renewTime`, so clocks that disagree between nodes cannot shorten a lease;
- the leader renews every retry period; when it has not renewed for the renew deadline (shorter
  than the lease) it stops leading, before any standby may take over; it stops at once when it
  sees another holder;
- on a clean stop the leader releases the Lease (no holder, a one-second duration: client-go's
  ReleaseOnCancel), so a standby takes over at once instead of waiting the lease out.

Candidates also watch the Lease, so a standby sees each renewal (and a release) as it happens
rather than at its next poll: after a SIGKILL it takes over when the last renewal's lease runs out
(at most the lease duration later), after a clean stop as soon as it sees the release. The Lease
is written through a client of its own, outside the reconciles' rate limit and connection pool,
so a busy operator still renews on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import logging
import os
import pathlib
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

import lightkube
from lightkube.core.exceptions import ApiError
from lightkube.models.coordination_v1 import LeaseSpec
from lightkube.resources.coordination_v1 import Lease
from lightkube.types import PatchType

from roadie.core import metrics

log = logging.getLogger(__name__)

NAME = "roadie-leader"
DEFAULT_NAMESPACE = "roadie-system"
#: controller-runtime's defaults: a standby may take over 15 s after the last renewal it saw; the
#: leader gives up 10 s after its last renewal; every wait between tries is 2 s
LEASE_DURATION = 15.0
RENEW_DEADLINE = 10.0
RETRY_PERIOD = 2.0
#: a standby's polls are spread over [1, 1 + JITTER] retry periods (client-go's JitterFactor)
JITTER = 1.2


def identity(env: Mapping[str, str] | None = None) -> str:
    """Who holds the Lease: the pod's name (downward API), or host and process id outside a pod."""
    env = os.environ if env is None else env
    return env.get("POD_NAME") or f"{socket.gethostname()}_{os.getpid()}"


def namespace(env: Mapping[str, str] | None = None) -> str:
    """Where the Lease lives: the pod's own namespace (downward API), else roadie-system."""
    env = os.environ if env is None else env
    return env.get("POD_NAMESPACE") or DEFAULT_NAMESPACE


class LeadershipLostError(Exception):
    """The Lease was lost (not renewed in time, or taken): the process must stop reconciling."""


class ConflictError(Exception):
    """Another writer got there first: the Lease exists already, or changed since it was read."""


@dataclasses.dataclass(frozen=True)
class Record:
    """The Lease's spec as the election reads it (client-go's LeaderElectionRecord)."""

    holder: str
    lease_duration: int
    acquire_time: datetime.datetime | None = None
    renew_time: datetime.datetime | None = None
    transitions: int = 0
    resource_version: str = ""


class Store(Protocol):
    """Where the record lives: the Lease on the API server, or a fake in tests."""

    async def get(self) -> Record | None: ...

    async def create(self, record: Record) -> Record: ...

    async def update(self, record: Record) -> Record:
        """Write `record` if the stored one is still at `record.resource_version` (else ConflictError)."""
        ...

    def watch(self) -> AsyncIterator[Record | None]: ...


def _older(a: Record, b: Record) -> bool:
    """Was `a` written before `b`? resourceVersions are etcd revisions (compared as numbers when
    they are numbers; otherwise the later observation wins)."""
    if a.resource_version.isdigit() and b.resource_version.isdigit():
        return int(a.resource_version) < int(b.resource_version)
    return True


class Elector:
    def __init__(
        self,
        store: Store,
        holder: str,
        *,
        lease_duration: float = LEASE_DURATION,
        renew_deadline: float = RENEW_DEADLINE,
        retry_period: float = RETRY_PERIOD,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime.datetime] = lambda: datetime.datetime.now(datetime.UTC),
    ) -> None:
        self.store = store
        self.identity = holder
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self.wall = wall
        #: the Lease as last seen, and when (this process's monotonic clock) it last changed
        self.observed: Record | None = None
        self.observed_at = 0.0
        self._changed = asyncio.Event()

    # -- the state machine ---------------------------------------------------------------------
    @property
    def leading(self) -> bool:
        return self.observed is not None and self.observed.holder == self.identity

    def observe(self, record: Record | None) -> None:
        """Take in the Lease as read, written or watched; an older version than one seen is ignored
        (a watch event may arrive after the response to this process's own write)."""
        current = self.observed
        if record is not None and current is not None and record.resource_version == current.resource_version:
            return
        if record is not None and current is not None and not _older(current, record):
            return
        if record != current:
            self.observed = record
            self.observed_at = self.clock()
            self._changed.set()

    def expires_in(self) -> float:
        """Seconds until the observed Lease of another holder runs out (0 or less: it is free)."""
        seen = self.observed
        if seen is None or not seen.holder:
            return 0.0
        return self.observed_at + seen.lease_duration - self.clock()

    async def try_acquire_or_renew(self) -> bool:
        """One round of client-go's tryAcquireOrRenew: create the Lease, renew it, or take it
        over once it is free or expired. True when this process holds it afterwards."""
        now = self.wall()
        current = await self.store.get()
        if current is None:
            mine = Record(self.identity, int(self.lease_duration), now, now, 0)
            try:
                self.observe(await self.store.create(mine))
            except ConflictError:
                return False
            return True
        self.observe(current)
        held = current.holder == self.identity
        if not held and current.holder and self.expires_in() > 0:
            return False
        wanted = Record(
            holder=self.identity,
            lease_duration=int(self.lease_duration),
            acquire_time=current.acquire_time if held else now,
            renew_time=now,
            transitions=current.transitions if held else current.transitions + 1,
            resource_version=current.resource_version,
        )
        try:
            self.observe(await self.store.update(wanted))
        except ConflictError:
            return False
        return True

    async def release(self) -> bool:
        """Give the Lease up on a clean stop (no holder, one second left), so a standby takes over
        at once. False when it was no longer ours to give."""
        seen = self.observed
        if seen is None or not self.leading:
            return False
        now = self.wall()
        released = Record("", 1, now, now, seen.transitions, seen.resource_version)
        try:
            self.observe(await self.store.update(released))
        except ConflictError:
            return False
        metrics.LEADER.set(0)
        log.info("leader election: released the lease")
        return True

    # -- the loops -----------------------------------------------------------------------------
    async def _attempt(self, within: float) -> bool:
        """One try, bounded by `within` seconds; a failure of any kind (the API server unreachable, slow or
        refusing) is a failed try: the deadlines decide what it means."""
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), within)
        except Exception as error:
            log.warning("leader election: could not read or write the lease: %s: %s", type(error).__name__, error)
        return False

    async def _wait_change(self, seconds: float) -> bool:
        """Wait for the Lease to change (True) or `seconds` to pass (False)."""
        if seconds <= 0:
            return False
        try:
            await asyncio.wait_for(self._changed.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def acquire(self) -> None:
        """Stand by until this process holds the Lease: poll every retry period (spread by jitter),
        and try at once when the watch shows the Lease released or the observed lease runs out."""
        log.info("leader election: %s standing by for the lease", self.identity)
        while not await self._attempt(self.renew_deadline):
            next_poll = self.clock() + self.retry_period * (1 + random.random() * JITTER)
            while True:
                self._changed.clear()
                now = self.clock()
                left = self.expires_in()
                until = min(next_poll, now + left) if left > 0 else next_poll
                if not await self._wait_change(until - now):
                    break  # time to poll, or the observed lease ran out
                if self.expires_in() <= 0:
                    break  # released, or deleted, while we watched
        metrics.LEADER.set(1)
        log.info("leader election: %s acquired the lease", self.identity)

    async def keep(self) -> None:
        """Renew the Lease every retry period; raise LeadershipLostError when it has not been renewed for
        the renew deadline, or another holder is seen."""
        renewed = self.clock()
        while True:
            pause_until = self.clock() + self.retry_period
            while self.leading and (left := pause_until - self.clock()) > 0:
                self._changed.clear()
                await self._wait_change(left)
            while True:
                if not self.leading:
                    holder = self.observed.holder if self.observed else "nobody"
                    self._lost(f"the lease is held by {holder or 'nobody'} now")
                remaining = renewed + self.renew_deadline - self.clock()
                if remaining <= 0:
                    self._lost(f"not renewed for {self.renew_deadline:g}s")
                if await self._attempt(remaining):
                    renewed = self.clock()
                    break
                if self.leading:
                    await asyncio.sleep(min(self.retry_period, max(0.0, renewed + self.renew_deadline - self.clock())))

    def _lost(self, why: str) -> None:
        metrics.LEADER.set(0)
        log.error("leader election: %s lost the lease (%s)", self.identity, why)
        raise LeadershipLostError(why)

    async def watch(self) -> None:
        """Feed every change of the Lease to `observe`, watching again after an error (said once
        per kind of error: without the watch, takeovers wait for the next poll)."""
        said = ""
        while True:
            try:
                async for record in self.store.watch():
                    self.observe(record)
                    said = ""
            except asyncio.CancelledError:
                raise
            except Exception as error:
                text = f"{type(error).__name__}: {error}"
                log.log(logging.DEBUG if text == said else logging.WARNING, "leader election: watch failed: %s", text)
                said = text
            await asyncio.sleep(self.retry_period)


# -- the Lease on the API server ---------------------------------------------------------------
def _record(lease: Any) -> Record:
    spec = lease.spec or LeaseSpec()
    return Record(
        holder=spec.holderIdentity or "",
        lease_duration=spec.leaseDurationSeconds or int(LEASE_DURATION),
        acquire_time=spec.acquireTime,
        renew_time=spec.renewTime,
        transitions=spec.leaseTransitions or 0,
        resource_version=lease.metadata.resourceVersion or "",
    )


def _time(value: datetime.datetime | None) -> str | None:
    """A MicroTime as the API server writes it (microseconds, UTC, `Z`)."""
    if value is None:
        return None
    return value.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _spec(record: Record) -> dict[str, Any]:
    return {
        "holderIdentity": record.holder,
        "leaseDurationSeconds": record.lease_duration,
        "acquireTime": _time(record.acquire_time),
        "renewTime": _time(record.renew_time),
        "leaseTransitions": record.transitions,
    }


class LeaseStore:
    """The Lease `name` in `namespace`. Updates are JSON merge patches carrying the resourceVersion
    read, which the API server checks as a precondition exactly as it does for an update (409 when
    it moved), so the operator's RBAC grants `patch`, as everywhere else, and no `update`."""

    def __init__(self, client: lightkube.AsyncClient, namespace: str, name: str = NAME) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name

    @classmethod
    def connect(cls, kubeconfig: pathlib.Path | None, namespace: str, name: str = NAME) -> LeaseStore:
        config = lightkube.KubeConfig.from_file(kubeconfig) if kubeconfig else None
        return cls(lightkube.AsyncClient(config=config, field_manager="roadie-leader-election"), namespace, name)

    async def get(self) -> Record | None:
        try:
            return _record(await self.client.get(Lease, self.name, namespace=self.namespace))
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise

    async def create(self, record: Record) -> Record:
        lease = Lease.from_dict({"metadata": {"name": self.name, "namespace": self.namespace}, "spec": _spec(record)})
        try:
            return _record(await self.client.create(lease))
        except ApiError as error:
            if error.status.code == 409:
                raise ConflictError(str(error)) from error
            raise

    async def update(self, record: Record) -> Record:
        patch = {"metadata": {"resourceVersion": record.resource_version}, "spec": _spec(record)}
        try:
            done = await self.client.patch(
                Lease, self.name, patch, namespace=self.namespace, patch_type=PatchType.MERGE
            )
        except ApiError as error:
            if error.status.code in (404, 409):
                raise ConflictError(str(error)) from error
            raise
        return _record(done)

    async def watch(self) -> AsyncIterator[Record | None]:
        stream = self.client.watch(Lease, namespace=self.namespace, fields={"metadata.name": self.name})
        async for kind, lease in stream:
            yield None if kind == "DELETED" else _record(lease)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.close()
