"""A stand-in for KubeVirt's virt-controller and virt-handler on the local cluster.

KubeVirt cannot run here: there is no hardware virtualisation and no container runtime. Its CRDs are
served (`kubevirt.py` installs the real ones), and this small controller does, through the API, what
KubeVirt would show an operator: for each VirtualMachine that should run it creates the
VirtualMachineInstance, moves it through Pending, Scheduling, Scheduled and Running (with a node and
an IP), stops it when the VM is halted, fails it when the VM's annotation asks, and keeps the VM's
status up to date. The rules are in `vmlifecycle.py`; this module watches and writes. No virtual
machine ever boots. It is no part of the operator.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import logging
import pathlib
import time
from typing import Any

import lightkube
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Node
from lightkube.types import PatchType

from roadie.devcluster import nodes as nodes_mod
from roadie.devcluster import vmlifecycle

log = logging.getLogger("roadie.virtcontroller")
FIELD_MANAGER = "roadie-devcluster-virt-controller"
VirtualMachine = create_namespaced_resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines")
VirtualMachineInstance = create_namespaced_resource(
    "kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances"
)
NODES_TTL = 30.0
Key = tuple[str, str]


class Controller:
    """Level-based: every event names a VM (an instance has its VM's name); one worker acts on it."""

    def __init__(self, api: lightkube.AsyncClient) -> None:
        self.api = api
        self.queue: asyncio.Queue[Key] = asyncio.Queue()
        self.queued: set[Key] = set()
        self._nodes: list[str] = []
        self._nodes_at = 0.0

    def enqueue(self, key: Key) -> None:
        if key not in self.queued:
            self.queued.add(key)
            self.queue.put_nowait(key)

    async def watch(self, resource: Any) -> None:
        while True:
            try:
                async for _, obj in self.api.watch(resource, namespace="*"):
                    meta = obj.metadata
                    self.enqueue((str(meta.namespace), str(meta.name)))
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the CRDs may not be served yet, or the API restarted
                log.warning("watching %s failed (%s); watching again", resource.__name__, error)
                await asyncio.sleep(1.0)

    async def work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key = await self.queue.get()
            self.queued.discard(key)
            try:
                again = await self.reconcile(key)
            except Exception:
                log.exception("reconciling %s/%s failed; trying again", *key)
                again = 1.0
            if again is not None:
                loop.call_later(again, self.enqueue, key)

    async def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        vm = await self._get(VirtualMachine, namespace, name)
        vmi = await self._get(VirtualMachineInstance, namespace, name)
        step = vmlifecycle.plan(vm, vmi, datetime.datetime.now(datetime.UTC), await self.node_names())
        if step.create is not None:
            try:
                await self.api.create(VirtualMachineInstance.from_dict(step.create))
                log.info("created the instance of %s/%s", namespace, name)
            except ApiError as error:
                if error.status.code != 409:
                    raise
                return 0.1  # an instance of that name is still there: look again
        if step.vmi_status is not None:
            patch: dict[str, Any] = {"status": step.vmi_status}
            if step.vmi_labels:
                patch["metadata"] = {"labels": step.vmi_labels}
            await self._patch_instance(namespace, name, patch)
            log.info("%s/%s is %s", namespace, name, step.vmi_status.get("phase"))
        if step.delete_vmi:
            try:
                await self.api.delete(VirtualMachineInstance, name, namespace=namespace)
                log.info("deleted the instance of %s/%s", namespace, name)
            except ApiError as error:
                if error.status.code != 404:
                    raise
        if step.vm_status is not None:
            await self._patch_vm_status(namespace, name, step.vm_status)
        return step.requeue

    async def node_names(self) -> list[str]:
        if time.monotonic() - self._nodes_at > NODES_TTL or not self._nodes:
            found = []
            async for node in self.api.list(Node):
                annotations = (node.metadata.annotations if node.metadata else None) or {}
                if annotations.get(nodes_mod.MANAGED_ANNOTATION) == nodes_mod.MANAGED_VALUE:
                    found.append(str(node.metadata.name))
            self._nodes, self._nodes_at = found, time.monotonic()
        return self._nodes

    async def _get(self, resource: Any, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = await self.api.get(resource, name, namespace=namespace)
        except ApiError as error:
            if error.status.code == 404:
                return None
            raise
        result: dict[str, Any] = found.to_dict()
        return result

    async def _patch_instance(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        try:
            await self.api.patch(VirtualMachineInstance, name, patch, namespace=namespace, patch_type=PatchType.MERGE)
        except ApiError as error:
            if error.status.code != 404:
                raise

    async def _patch_vm_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        try:
            await self.api.patch(
                VirtualMachine.Status, name, {"status": status}, namespace=namespace, patch_type=PatchType.MERGE
            )
        except ApiError as error:
            if error.status.code != 404:
                raise


async def _main(kubeconfig: pathlib.Path) -> None:
    api = lightkube.AsyncClient(config=lightkube.KubeConfig.from_file(kubeconfig), field_manager=FIELD_MANAGER)
    controller = Controller(api)
    await asyncio.gather(
        controller.watch(VirtualMachine),
        controller.watch(VirtualMachineInstance),
        controller.work(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", type=pathlib.Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    for noisy in ("httpx", "httpx2"):  # a line per request would bury the log
        logging.getLogger(noisy).setLevel(logging.WARNING)
    asyncio.run(_main(args.kubeconfig))


if __name__ == "__main__":
    main()
