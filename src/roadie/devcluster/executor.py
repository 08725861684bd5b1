"""The local cluster's kubelet for a few pods: it really runs them, as local processes.

kwok plays every pod's kubelet by moving its status along, and nothing runs. That is enough for an
operator, except where a pod's work is the point: the Workspace engine's Jobs read and write the
files of a volume, and no test could show that a snapshot holds its data unless the engine really
ran. This component watches the pods matching a label selector (kwok's stages leave those alone),
runs each one's container command with every volume's local folder in place of its mount path, and
reports the start, the exit code and the termination message in the pod's status, as a kubelet
would. It stands in for the kubelet of these pods only and is no part of the operator.

A restarted executor never runs a pod twice: it reads the pod's status first, and a pod it had
started before it stopped is reported Failed (`ContainerStatusUnknown`), as a kubelet reports a
container it lost.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import datetime
import logging
import os
import pathlib
import shutil
import signal
from collections.abc import Mapping
from typing import Any

import lightkube
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType

from roadie.devcluster import podexec, podinputs

log = logging.getLogger("roadie.executor")
FIELD_MANAGER = "roadie-devcluster-executor"
RETRY_SECONDS = 1.0


@dataclasses.dataclass
class Run:
    """One pod the executor has taken on, from waiting for a slot to its status written."""

    pod: Pod
    stop: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    grace: float = 30.0
    gone: bool = False  # removed from the API: nothing left to report to
    pid: int | None = None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Ask the kernel to kill the process if the executor dies without stopping it (SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class Executor:
    def __init__(
        self,
        api: lightkube.AsyncClient,
        state: pathlib.Path,
        selector: Mapping[str, str],
        max_processes: int,
        roadie: pathlib.Path | None = None,
    ) -> None:
        self.api = api
        self.state = state
        self.selector: dict[str, Any] = dict(selector)
        self.slots = asyncio.Semaphore(max_processes)
        self.roadie = roadie
        self.runs: dict[str, Run] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def scratch(self, pod: Pod) -> pathlib.Path:
        meta = pod.metadata
        assert meta is not None
        return self.state / "executor" / f"{meta.namespace}_{meta.name}_{meta.uid}"

    def log_file(self, pod: Pod) -> pathlib.Path:
        meta = pod.metadata
        assert meta is not None
        return self.state / "logs" / "pods" / f"{meta.namespace}_{meta.name}_{meta.uid}.log"

    async def serve(self) -> None:
        """Watch the selected pods for ever; a broken watch is started again (events replay as ADDED)."""
        while True:
            try:
                async for op, pod in self.api.watch(Pod, namespace="*", labels=self.selector):
                    await self.handle(op, pod)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the pod watch failed; watching again")
                await asyncio.sleep(RETRY_SECONDS)

    async def handle(self, op: str, pod: Pod) -> None:
        meta, spec = pod.metadata, pod.spec
        assert meta is not None and spec is not None and meta.uid
        run = self.runs.get(meta.uid)
        if op == "DELETED":
            if run is not None:
                run.gone = True
                run.grace = 0
                run.stop.set()
            else:
                shutil.rmtree(self.scratch(pod), ignore_errors=True)
            return
        if meta.deletionTimestamp:
            if run is not None:
                run.grace = float(meta.deletionGracePeriodSeconds or 0)
                run.stop.set()
            elif spec.nodeName and not podexec.finished(pod):
                await self._confirm_deletion(pod)  # as a kubelet does once nothing runs
            return
        if run is not None or podexec.finished(pod) or not spec.nodeName:
            return
        if podexec.started_by_an_executor(pod):  # started before this executor did: lost
            await self._report_lost(pod)
            return
        run = Run(pod, grace=float(spec.terminationGracePeriodSeconds or 30))
        self.runs[meta.uid] = run
        task = asyncio.create_task(self._run(run), name=f"pod {meta.namespace}/{meta.name}")
        self._tasks.add(task)
        uid = meta.uid
        task.add_done_callback(lambda done: self._finished(uid, done))

    def _finished(self, uid: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.runs.pop(uid, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("running a pod failed", exc_info=task.exception())

    def kill_all(self) -> None:
        """On shutdown: no process may outlive the executor (a restart reports their pods lost)."""
        for run in self.runs.values():
            if run.pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(run.pid, signal.SIGKILL)

    async def _run(self, run: Run) -> None:
        if not await self._take_slot(run):  # deleted while it waited: nothing ran, nothing to stop
            if not run.gone:
                await self._confirm_deletion(run.pod)
            return
        try:
            pod = await self._fresh(run.pod)
            if pod is None or run.gone or podexec.finished(pod) or podexec.started_by_an_executor(pod):
                return
            if run.stop.is_set():
                await self._confirm_deletion(pod)
                return
            launch = await self._prepare_until_ready(run, pod)
            if launch is not None:
                await self._execute(run, pod, launch)
        finally:
            self.slots.release()

    async def _take_slot(self, run: Run) -> bool:
        """Wait for one of the `max_processes` slots, or for the pod's deletion; True with a slot."""
        acquiring = asyncio.ensure_future(self.slots.acquire())
        stopping = asyncio.ensure_future(run.stop.wait())
        await asyncio.wait({acquiring, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if acquiring.done() and not acquiring.cancelled():
            if not run.stop.is_set():
                return True
            self.slots.release()
        acquiring.cancel()
        return False

    async def _prepare_until_ready(self, run: Run, pod: Pod) -> podexec.Launch | None:
        """The launch, once every object the pod needs is there; the pod shows why it waits meanwhile."""
        while not run.stop.is_set():
            try:
                return await podinputs.prepare(self.api, pod, self.scratch(pod), self.roadie)
            except podexec.PodError as error:
                if error.permanent:
                    await self._report_start_error(pod, str(error))
                    return None
                await self._patch_status(pod, podexec.waiting_status(pod, "CreateContainerConfigError", str(error)))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.stop.wait(), RETRY_SECONDS)
        if not run.gone:
            await self._confirm_deletion(pod)
        return None

    async def _execute(self, run: Run, pod: Pod, launch: podexec.Launch) -> None:
        assert pod.spec is not None
        for folder in (launch.cwd, pathlib.Path(launch.env["TMPDIR"]), self.log_file(pod).parent):
            folder.mkdir(parents=True, exist_ok=True)
        launch.termination_file.write_bytes(b"")
        started = now()
        with open(self.log_file(pod), "ab") as out:  # noqa: ASYNC230 - opening a local log does not block
            try:
                proc = await asyncio.create_subprocess_exec(
                    *launch.argv,
                    cwd=launch.cwd,
                    env=launch.env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            except OSError as error:
                await self._report_start_error(pod, f"failed to start {launch.argv[0]}: {error}")
                return
        run.pid = proc.pid
        log.info("started %s/%s as pid %d: %s", pod.metadata.namespace, pod.metadata.name, proc.pid, launch.argv)
        await self._patch_status(pod, podexec.running_status(pod, started, proc.pid))
        outcome = await self._wait(proc, run, pod.spec.activeDeadlineSeconds)
        if outcome != "exited":
            await self._terminate(proc, 0 if outcome == "deadline" else run.grace)
        returncode = proc.returncode if proc.returncode is not None else -signal.SIGKILL
        log.info("pid %d of %s ended: %s, return code %d", proc.pid, pod.metadata.name, outcome, returncode)
        if run.gone:
            return
        code = podexec.exit_code(returncode)
        container = podexec.the_container(pod)
        message = podexec.termination_message(
            _read(launch.termination_file, podexec.MAX_MESSAGE_BYTES),
            _tail(self.log_file(pod), podexec.FALLBACK_LOG_BYTES * 4),
            failed=code != 0,
            fallback_to_logs=container.terminationMessagePolicy == "FallbackToLogsOnError",
        )
        deadline = outcome == "deadline"
        await self._patch_status(
            pod,
            podexec.terminated_status(
                pod,
                started=started,
                finished=now(),
                code=code,
                message=message,
                pid=proc.pid,
                signal_number=-returncode if returncode < 0 else None,
                pod_reason="DeadlineExceeded" if deadline else None,
                pod_message=podexec.DEADLINE_MESSAGE if deadline else None,
            ),
        )
        if outcome == "stopped":
            await self._confirm_deletion(pod)

    async def _wait(self, proc: asyncio.subprocess.Process, run: Run, deadline: int | None) -> str:
        waiting = asyncio.ensure_future(proc.wait())
        stopping = asyncio.ensure_future(run.stop.wait())
        done, _ = await asyncio.wait({waiting, stopping}, timeout=deadline, return_when=asyncio.FIRST_COMPLETED)
        for future in (waiting, stopping):
            future.cancel()
        if waiting in done:
            return "exited"
        return "stopped" if stopping in done else "deadline"

    async def _terminate(self, proc: asyncio.subprocess.Process, grace: float) -> None:
        """SIGTERM to the process group, SIGKILL after the grace period, as a container runtime does."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
        try:
            await asyncio.wait_for(proc.wait(), timeout=grace if grace > 0 else None)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def _fresh(self, pod: Pod) -> Pod | None:
        """The pod as the API has it now, unless it was replaced by another of the same name."""
        meta = pod.metadata
        assert meta is not None
        try:
            current = await self.api.get(Pod, str(meta.name), namespace=meta.namespace)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise
        return current if current.metadata is not None and current.metadata.uid == meta.uid else None

    async def _patch_status(self, pod: Pod, body: dict[str, object]) -> None:
        meta = pod.metadata
        assert meta is not None
        try:
            await self.api.patch(
                Pod.Status,
                str(meta.name),
                body,
                namespace=meta.namespace,
                patch_type=PatchType.STRATEGIC,
            )
        except ApiError as error:
            if error.status.code != 404:
                log.error("status of %s/%s not written: %s", meta.namespace, meta.name, error.status.message)

    async def _report_start_error(self, pod: Pod, message: str) -> None:
        moment = now()
        log.warning("%s/%s cannot start: %s", pod.metadata.namespace, pod.metadata.name, message)
        failed = podexec.terminated_status(
            pod, started=moment, finished=moment, code=128, message=message, reason="StartError"
        )
        await self._patch_status(pod, failed)

    async def _report_lost(self, pod: Pod) -> None:
        started = (pod.status.startTime if pod.status else None) or now()
        lost = podexec.terminated_status(
            pod,
            started=started,
            finished=now(),
            code=137,
            message=podexec.LOST_MESSAGE,
            reason="ContainerStatusUnknown",
        )
        await self._patch_status(pod, lost)

    async def _confirm_deletion(self, pod: Pod) -> None:
        current = await self._fresh(pod)
        if current is None:
            return
        meta = current.metadata
        assert meta is not None
        with contextlib.suppress(ApiError):
            await self.api.delete(Pod, str(meta.name), namespace=meta.namespace, grace_period=0)
        shutil.rmtree(self.scratch(pod), ignore_errors=True)


def _read(path: pathlib.Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit)
    except OSError:
        return b""


def _tail(path: pathlib.Path, limit: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - limit))
            return handle.read()
    except OSError:
        return b""


async def _main(args: argparse.Namespace) -> None:
    config = lightkube.KubeConfig.from_file(args.kubeconfig)
    api = lightkube.AsyncClient(config=config, field_manager=FIELD_MANAGER)
    executor = Executor(api, args.state, podexec.parse_selector(args.selector), args.max_processes)
    serving = asyncio.create_task(executor.serve())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, serving.cancel)
    try:
        await serving
    except asyncio.CancelledError:
        pass
    finally:
        executor.kill_all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", type=pathlib.Path, required=True)
    parser.add_argument("--state", type=pathlib.Path, required=True, help="the cluster's state folder")
    parser.add_argument("--selector", default=podexec.DEFAULT_SELECTOR, help="label selector of the pods to run")
    parser.add_argument("--max-processes", type=int, default=4, help="processes running at once; others wait")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("httpx", "httpx2"):  # a line per request would bury the log
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(_main(args))


if __name__ == "__main__":
    main()
