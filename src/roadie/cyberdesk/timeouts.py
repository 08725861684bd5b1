"""A desktop's timeout as arithmetic on times, with no clock and no cluster: when it expires, when
to warn, when to halt and delete, and what is due at a given moment.

The deadline is `startedAt + timeoutMs`: a desktop's time counts from when it first ran, not
from when it was asked for, so a slow boot does not eat into it. Until it has run, the deadline
is counted from its creation instead, so a desktop that never manages to start still ends (with
the same `timeoutMs`) rather than holding its VM forever; once it runs, the later deadline wins.
Everything here is a function of the spec and of times the status keeps (`startedAt`,
`haltedAt`), so a restarted operator computes the same deadlines and schedules them again.

The end runs in two steps: at the deadline the VM is halted (`runStrategy: Halted`, a graceful
guest shutdown), then it is deleted as soon as it has stopped, or at the latest a grace period
after the halt. Once halted, a desktop stays timed out: raising `timeoutMs` then changes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime


@dataclasses.dataclass(frozen=True)
class Timing:
    """The operator's settings for ending desktops."""

    #: The warning (event, condition, webhook `expiring`) comes this long before the deadline.
    warning: datetime.timedelta = datetime.timedelta(minutes=5)
    #: A halted VM that has not stopped after this long is deleted anyway.
    grace: datetime.timedelta = datetime.timedelta(minutes=2)


@dataclasses.dataclass(frozen=True)
class Deadlines:
    expires_at: datetime.datetime
    warn_at: datetime.datetime
    #: True when counted from `startedAt`; False while the desktop has never run (from creation).
    from_start: bool


def timeout(timeout_ms: int) -> datetime.timedelta:
    return datetime.timedelta(milliseconds=timeout_ms)


def deadlines(
    *,
    timeout_ms: int,
    created_at: datetime.datetime,
    started_at: datetime.datetime | None,
    warning: datetime.timedelta,
) -> Deadlines:
    """When the desktop expires and when to warn; the warning never comes before the desktop's
    time began (a warning longer than the timeout warns at once)."""
    origin = started_at or created_at
    expires_at = origin + timeout(timeout_ms)
    return Deadlines(
        expires_at=expires_at, warn_at=max(origin, expires_at - warning), from_start=started_at is not None
    )


def in_warning_window(now: datetime.datetime, due: Deadlines) -> bool:
    return due.warn_at <= now < due.expires_at


def delete_at(halted_at: datetime.datetime, timing: Timing) -> datetime.datetime:
    return halted_at + timing.grace


@dataclasses.dataclass(frozen=True)
class Step:
    """What a reconcile at `now` has to do about the timeout, and when to look again."""

    warn: bool = False
    halt: bool = False
    delete: bool = False
    #: The next moment something will be due (schedule a reconcile then); None: nothing more.
    next_at: datetime.datetime | None = None


def step(
    *,
    now: datetime.datetime,
    due: Deadlines,
    timing: Timing,
    warned: bool,
    halted_at: datetime.datetime | None,
    vm_exists: bool,
    vm_stopped: bool,
) -> Step:
    """The timeout's work at `now`.

    `warned`: the warning for the current deadline was given (the `ExpiringSoon` condition is
    True); it goes back to False when `timeoutMs` is raised out of the window, so a moved
    deadline warns again. `halted_at`: when the VM was halted for the timeout (status
    `haltedAt`). `vm_stopped`: the halted VM has no running VMI any more.
    """
    if halted_at is not None:
        if not vm_exists:
            return Step()
        deletion = delete_at(halted_at, timing)
        if vm_stopped or now >= deletion:
            return Step(delete=True)
        return Step(next_at=deletion)
    if now >= due.expires_at:
        return Step(halt=True, next_at=now + timing.grace)
    if now >= due.warn_at:
        return Step(warn=not warned, next_at=due.expires_at)
    return Step(next_at=due.warn_at)


def remaining(now: datetime.datetime, due: Deadlines) -> datetime.timedelta:
    """Time left before the deadline (zero once passed), for messages and webhook payloads."""
    return max(datetime.timedelta(0), due.expires_at - now)
