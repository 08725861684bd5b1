"""Task pods created beside a run's reconciles rather than inside them.

Only one reconcile of a run goes at a time (the work queue's rule), so a reconcile that waited
for its pods' creates (tens of milliseconds each on a busy API server) kept every slot freed
meanwhile waiting for it: in a thousand-task run the reconciles went back to back and a finished
pod's successor waited for the reconcile before. So a reconcile hands its starts over and returns;
the creates go on here, a few at a time, and the next reconcile can decide while they are in
flight. What keeps it level-based and safe:

- an attempt is counted as started (`unseen`: Pending, in the task's slot, never gone) before its
  create is sent, and until the cache shows its pod, so no later decision starts it twice; pod
  names are deterministic per attempt, and creating one that exists is a 409, never a second run;
- a create the API server refuses (400, 403, 422, or a pod of that name someone else owns) ends
  the attempt: it is no longer counted, the refusal is reported by the next reconcile, which
  finds the attempt's pod missing and judges it failed, as it did when the reconcile waited;
- a create that failed for a reason that may pass (a dropped connection, a 5xx, throttling) stays
  counted and is sent again by the next reconcile, which is asked for after `RETRY` seconds;
- a run's status is written only once every create sent before it has ended and none waits to be
  sent again (`settled`): a status that records an attempt is never stored before its pod exists,
  so an operator killed at any moment restarts from a status whose attempts have pods.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from lightkube.core.exceptions import ApiError

from roadie.core import children as core_children
from roadie.core import events
from roadie.observatory import status

log = logging.getLogger(__name__)
#: Seconds before a create that failed for a passing reason is sent again.
RETRY = 1.0
Manifest = dict[str, Any]
Create = Callable[[Manifest, Any], Awaitable[bool]]
#: Ask for a reconcile of the run (`body`) after so many seconds.
Wake = Callable[[dict[str, Any], float], None]


@dataclasses.dataclass
class Run:
    """One run's creates: attempts counted as started and not seen yet, creates in flight, those
    to send again, refusals not reported yet, and the slots its creates share."""

    slots: asyncio.Semaphore
    unseen: dict[str, int] = dataclasses.field(default_factory=dict)
    flying: dict[str, asyncio.Task[None]] = dataclasses.field(default_factory=dict)
    again: dict[str, Manifest] = dataclasses.field(default_factory=dict)
    refused: list[str] = dataclasses.field(default_factory=list)


async def _create_if_absent(manifest: Manifest, parent: Any) -> bool:
    return await core_children.create_if_absent(manifest, parent=parent)


class Starter:
    def __init__(self, wake: Wake, *, slots: int, create: Create = _create_if_absent) -> None:
        self._wake, self._slots, self._create = wake, slots, create
        self.runs: dict[str, Run] = {}

    def unseen(self, uid: str, latest: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
        """Attempts created (or being created) whose pods the cache does not show yet: they count
        as Pending, never as gone; forgotten once the cache shows the pod."""
        run = self.runs.get(uid)
        if run is None:
            return {}
        for task, attempt in list(run.unseen.items()):
            pod = latest.get(task)
            if pod is not None and status.attempt_of(pod) >= attempt:
                del run.unseen[task]
                run.again.pop(task, None)
        self._drop_if_idle(uid)
        return dict(run.unseen)

    def start(self, uid: str, body: dict[str, Any], task: str, attempt: int, manifest: Manifest) -> None:
        """Count the attempt as started now, and create its pod in the background."""
        run = self.runs.get(uid)
        if run is None:
            run = self.runs[uid] = Run(asyncio.Semaphore(self._slots))
        run.unseen[task] = attempt
        run.again.pop(task, None)
        self._send(uid, run, body, task, attempt, manifest)

    def retry(self, uid: str, body: dict[str, Any]) -> None:
        """Send again the creates that failed for a passing reason (their attempts still count)."""
        run = self.runs.get(uid)
        if run is None:
            return
        for task, manifest in list(run.again.items()):
            if task not in run.flying and task in run.unseen:
                del run.again[task]
                self._send(uid, run, body, task, run.unseen[task], manifest)

    def refused(self, uid: str) -> list[str]:
        """The refusals since the last call (reported once, in the next status's message)."""
        run = self.runs.get(uid)
        if run is None or not run.refused:
            return []
        found, run.refused = run.refused, []
        self._drop_if_idle(uid)
        return found

    async def settled(self, uid: str) -> bool:
        """Wait for the run's creates in flight; True when no create waits to be sent again, so
        that every attempt counted as started has its pod (or was refused)."""
        run = self.runs.get(uid)
        while run is not None and run.flying:
            await asyncio.wait(list(run.flying.values()))
        return run is None or not run.again

    def forget(self, uid: str) -> None:
        """The run is gone: what is in flight ends on its own (its pods go with the run)."""
        self.runs.pop(uid, None)

    def _send(self, uid: str, run: Run, body: dict[str, Any], task: str, attempt: int, manifest: Manifest) -> None:
        job = asyncio.get_running_loop().create_task(self._one(uid, run, body, task, attempt, manifest))
        run.flying[task] = job

    async def _one(self, uid: str, run: Run, body: dict[str, Any], task: str, attempt: int, manifest: Manifest) -> None:
        name = manifest["metadata"]["name"]
        try:
            async with run.slots:
                await self._create(manifest, body)
        except asyncio.CancelledError:
            raise
        except core_children.ForeignObjectError as error:
            await self._refuse(uid, run, body, task, attempt, "PodConflict", str(error))
        except ApiError as error:
            if error.status.code in core_children.REJECTED:
                text = f"the API server refused pod {name} of task {task}: {error.status.message}"
                await self._refuse(uid, run, body, task, attempt, "PodRejected", text)
            else:
                self._later(run, body, task, manifest, error)
        except Exception as error:
            self._later(run, body, task, manifest, error)
        finally:
            if run.flying.get(task) is asyncio.current_task():
                del run.flying[task]

    async def _refuse(
        self, uid: str, run: Run, body: dict[str, Any], task: str, attempt: int, reason: str, text: str
    ) -> None:
        if run.unseen.get(task) == attempt:
            del run.unseen[task]
        run.refused.append(text)
        self._wake(body, 0.0)
        await events.emit(body, events.WARNING, reason, text)

    def _later(self, run: Run, body: dict[str, Any], task: str, manifest: Manifest, error: Exception) -> None:
        log.info("create of pod %s failed (sent again in %.0fs): %s", manifest["metadata"]["name"], RETRY, error)
        run.again[task] = manifest
        self._wake(body, RETRY)

    def _drop_if_idle(self, uid: str) -> None:
        run = self.runs.get(uid)
        if run is not None and not (run.unseen or run.flying or run.again or run.refused):
            del self.runs[uid]
