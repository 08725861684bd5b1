"""The steps every kind's reconcile ends with, written once: the status write, the events for a
phase change, the wait-or-rest decision, and the expiry of an object whose time is up.

Each kind computes its new status purely; `finish` then writes it (once, only if it changed),
announces the transition a user wants in `kubectl describe`, and tells the work queue whether
the object waits on something (come back on its child's events, with a capped backoff as a net)
or rests until the next change.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection
from typing import Any

from lightkube.core.exceptions import ApiError
from lightkube.types import CascadeType

from roadie.core import api as api_mod
from roadie.core import background, children, client, events, models
from roadie.core import status as status_writer
from roadie.core.controller import WAIT, Controller

Body = dict[str, Any]
PhaseMessage = Callable[[dict[str, Any]], str]


async def announce_phase(
    body: Body, old: dict[str, Any], new: dict[str, Any], message: PhaseMessage | None = None
) -> None:
    """An event named after the new phase when the phase changes (Warning for Failed), posted in
    the background as client-go's recorder does: the reconcile that changed the phase is done once
    its status is written, and a worker waiting on an event's round trip is one not reconciling
    the next object (a thousand new Workshops post two thousand of them)."""
    phase = new.get("phase")
    if not phase or old.get("phase") == phase:
        return
    kind = events.WARNING if phase == "Failed" else events.NORMAL
    text = new.get("message") or (message(new) if message else "") or f"phase is now {phase}"
    events.emit_soon(body, kind, phase, text)


async def finish(
    api: api_mod.Api,
    body: Body,
    old: dict[str, Any],
    new: dict[str, Any],
    *,
    waiting_phases: Collection[str],
    message: PhaseMessage | None = None,
    again: float | None = None,
) -> float | None:
    """Write the status, announce a phase change, and say when to come back: WAIT while the
    phase is one that waits on children, else `again` (a deadline the kind knows) or never."""
    await status_writer.write(api, body, new)
    await announce_phase(body, old, new, message)
    return WAIT if new.get("phase") in waiting_phases else again


def schedule(
    controller: Controller, body: Body, now: datetime.datetime, deadlines: dict[str, datetime.datetime | None]
) -> None:
    """Wake the object at each deadline still ahead (`expiry` always: it may be due now)."""
    meta = body["metadata"]
    for purpose, when in deadlines.items():
        if when is None:
            controller.cancel(meta.get("namespace"), meta["name"], purpose)
        elif purpose == "expiry" or when > now:
            controller.at(meta.get("namespace"), meta["name"], purpose, when)


async def expire(
    api: api_mod.Api,
    body: Body,
    old: dict[str, Any],
    new: dict[str, Any],
    expires_at: datetime.datetime | None,
    what: str,
    *,
    foreground: bool = True,
) -> bool:
    """The object's time is up: delete it, then say so (status and an `Expired` event, once); its
    children go with it through their owner references. True if this call deleted it.

    The delete goes first, and the status and the event follow in the background
    (`core.background`), because the delete is the moment a user (and the expiry's deadline)
    counts: when many fall due in one second, the deletes take the client's rate limit first. A
    foreground deletion keeps the object, with its status, until its children are gone; one
    already gone (a background deletion) has nothing left to write a status to."""
    meta = body["metadata"]
    deleted = False
    if not meta.get("deletionTimestamp"):
        options = {"cascade": CascadeType.FOREGROUND} if foreground else {}
        deleted = await children.delete(client.resource(api), meta["name"], meta.get("namespace"), **options)
    if old.get("phase") != new.get("phase"):
        stamp = models.timestamp(expires_at) if expires_at else "now"

        async def say_so() -> None:
            try:
                await status_writer.write(api, body, new)
            except ApiError as error:
                if error.status.code != 404:
                    raise
            await events.emit(body, events.NORMAL, "Expired", f"{what} ran out at {stamp}; deleting it")

        background.soon(say_so, f"the expiry status of {meta['name']}")
    return deleted
