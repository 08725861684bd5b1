"""Cyberdesk against the local control plane: KubeVirt's real CRDs with the virt-controller
stand-in moving instances through their phases, the operator running as a process of this module
(its own settings: a real PostgreSQL sink, short warnings, a warm pool in one namespace), and the
row read back from the database."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import pathlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import asyncpg
import lightkube
import pytest
import yaml
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace, Secret
from lightkube.types import PatchType
from tests.cluster.conftest import OperatorProcess, gone, instead_of, wait_for, wait_for_events
from tests.support import postgres

from roadie.core import models
from roadie.cyberdesk import default_template
from roadie.devcluster import vmlifecycle

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "samples"
Cyberdesk = create_namespaced_resource("cyberdesk.io", "v1alpha1", "Cyberdesk", "cyberdesks")
VM = create_namespaced_resource("kubevirt.io", "v1", "VirtualMachine", "virtualmachines")
VMI = create_namespaced_resource("kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances")
StartCyberdeskOperator = create_namespaced_resource(
    "cyberdesk.io", "v1alpha1", "StartCyberdeskOperator", "startcyberdeskoperators"
)
POOL_NAMESPACE = f"t-cd-pool-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def pg() -> Iterator[postgres.PostgresServer]:
    with postgres.server() as server:
        yield server


@pytest.fixture(scope="module")
def cd_operator(
    kube: lightkube.Client,
    kubeconfig: pathlib.Path,
    operator: OperatorProcess,
    pg: postgres.PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The shared operator stopped, and one with Cyberdesk's sink and pool settings in its place."""
    kube.create(Namespace(metadata=ObjectMeta(name=POOL_NAMESPACE, labels={"roadie.dev/test": "true"})))
    env = {
        "ROADIE_CYBERDESK_POSTGRES_URL": pg.url,
        "ROADIE_CYBERDESK_CREATE_TABLE": "true",
        "ROADIE_CYBERDESK_EXPIRY_WARNING": "2s",
        "ROADIE_CYBERDESK_STOP_GRACE": "5s",
        "ROADIE_CYBERDESK_POOL_SIZE": "1",
        "ROADIE_CYBERDESK_POOL_NAMESPACES": POOL_NAMESPACE,
    }
    log = tmp_path_factory.mktemp("cyberdesk") / "operator.log"
    with instead_of(operator, OperatorProcess(kubeconfig, log, ["--controllers", "cyberdesk"], env)) as own:
        own.start()
        yield own
    with contextlib.suppress(ApiError):
        kube.delete(Namespace, POOL_NAMESPACE)


# -- helpers ---------------------------------------------------------------------------------
def desk(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "cyberdesk.io/v1alpha1",
        "kind": "Cyberdesk",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"timeoutMs": 3_600_000, **spec},
    }


def create(kube: lightkube.Client, doc: dict[str, Any]) -> None:
    kube.create(codecs.from_dict(copy.deepcopy(doc)))


def status(kube: lightkube.Client, namespace: str, name: str) -> dict[str, Any]:
    return dict(kube.get(Cyberdesk, name, namespace=namespace).get("status") or {})


def phase_is(kube: lightkube.Client, namespace: str, name: str, phase: str) -> Any:
    def check() -> Any:
        found = status(kube, namespace, name)
        return found if found.get("phase") == phase else None

    return check


def vm(kube: lightkube.Client, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = kube.get(VM, name, namespace=namespace).to_dict()
    return found


def row(pg: postgres.PostgresServer, name: str) -> str | None:
    async def read() -> str | None:
        conn = await asyncpg.connect(pg.url)
        try:
            with contextlib.suppress(asyncpg.UndefinedTableError):
                value = await conn.fetchval("SELECT status FROM cyberdesk_instances WHERE name = $1", name)
                return str(value) if value is not None else None
            return None
        finally:
            await conn.close()

    try:
        return asyncio.run(read())
    except OSError:
        return None  # the database is down


# -- tests -----------------------------------------------------------------------------------
def test_the_example_runs_with_an_owned_labelled_vm(
    kube: lightkube.Client, cd_operator: OperatorProcess, namespace: str, pg: postgres.PostgresServer
) -> None:
    doc = yaml.safe_load((SAMPLES / "cyberdesk-example.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    name = doc["metadata"]["name"]
    create(kube, doc)
    found = wait_for("the example Running", phase_is(kube, namespace, name, "Running"), 30)
    assert found["vmName"] == f"cyberdesk-{name}" and found["ipAddress"] and found["nodeName"]
    assert found["startedAt"] and found["expiresAt"] and found["template"] == default_template.NAME
    machine = vm(kube, namespace, found["vmName"])
    owner = kube.get(Cyberdesk, name, namespace=namespace)
    (ref,) = machine["metadata"]["ownerReferences"]
    assert ref["uid"] == owner.metadata.uid and ref["controller"] is True
    assert {"app": "cyberdesk", "cyberdesk-instance": name, "managed-by": "roadie"}.items() <= machine["metadata"][
        "labels"
    ].items()
    instance = kube.get(VMI, found["vmName"], namespace=namespace).to_dict()
    assert instance["metadata"]["labels"]["cyberdesk-instance"] == name
    wait_for("the row says running", lambda: row(pg, name) == "running", 20)


def test_the_template_renders_every_variable_and_refuses_injection(
    kube: lightkube.Client, cd_operator: OperatorProcess, namespace: str
) -> None:
    template_name = f"t-vars-{uuid.uuid4().hex[:6]}"
    text = default_template.TEMPLATE.replace(
        "  labels:\n    app: cyberdesk\n",
        "  annotations:\n    vm: ${vm_name}\n    ns: ${namespace}\n    desk: ${cyberdesk_name}\n"
        "    by: ${managed_by}\n    data: ${user_data_base64}\n    mixed: 'desk ${cyberdesk_name} costs $$5'\n"
        "  labels:\n    app: cyberdesk\n",
        1,
    )
    kube.create(ConfigMap(metadata=ObjectMeta(name=template_name, namespace="cyberdesk-system"), data={"t": text}))
    hostile = b"#cloud-config\nevil: true\n---\nkind: Secret\n'}: {x: y\n"
    kube.create(
        Secret(
            metadata=ObjectMeta(name="ud", namespace=namespace),
            data={"userdata": base64.b64encode(hostile).decode()},
        )
    )
    name = "desk.evil-name"
    create(kube, desk(namespace, name, template=template_name, userDataSecretRef={"name": "ud"}))
    found = wait_for("it runs", phase_is(kube, namespace, name, "Running"), 30)
    machine = vm(kube, namespace, found["vmName"])  # hashed: a dotted name is not a DNS label
    annotations = machine["metadata"]["annotations"]
    assert annotations["desk"] == name and annotations["ns"] == namespace and annotations["by"] == "roadie"
    assert annotations["vm"].startswith("cyberdesk-desk")
    assert annotations["mixed"] == f"desk {name} costs $5"
    assert base64.b64decode(annotations["data"]) == hostile
    assert "evil" not in annotations and "x" not in annotations
    assert set(machine["spec"]) == set(yaml.safe_load(text)["spec"]), "the VM has keys its template has not"


def test_an_unknown_variable_fails_naming_it(
    kube: lightkube.Client, cd_operator: OperatorProcess, namespace: str
) -> None:
    template_name = f"t-unknown-{uuid.uuid4().hex[:6]}"
    text = default_template.TEMPLATE.replace("cores: 1", "cores: ${cpu_count}")
    kube.create(ConfigMap(metadata=ObjectMeta(name=template_name, namespace="cyberdesk-system"), data={"t": text}))
    create(kube, desk(namespace, "unknown", template=template_name))
    found = wait_for("Failed", phase_is(kube, namespace, "unknown", "Failed"), 20)
    (cond,) = [c for c in found["conditions"] if c["type"] == "Provisioned"]
    assert cond["status"] == "False" and cond["reason"] == "UnknownVariable" and "${cpu_count}" in cond["message"]
    with pytest.raises(ApiError):
        vm(kube, namespace, "cyberdesk-unknown")


def halted_at(kube: lightkube.Client, namespace: str, name: str) -> float | None:
    """The first moment the VM is seen halted, or already gone: the stand-in stops a halted VM at
    once and the operator then deletes it, which on a loaded machine can all happen between two
    looks (the moment seen is then later than the halt, so the bound checked stays honest)."""
    try:
        spec = vm(kube, namespace, name).get("spec") or {}
    except ApiError as error:
        if error.status.code == 404:
            return time.time()
        raise
    return time.time() if spec.get("runStrategy") == "Halted" else None


def expires(found: dict[str, Any]) -> float:
    moment = models.parse_timestamp(found["expiresAt"])
    assert moment is not None
    return moment.timestamp()


def test_the_timeout_halts_then_deletes_on_time(
    kube: lightkube.Client, cd_operator: OperatorProcess, namespace: str, pg: postgres.PostgresServer
) -> None:
    name = f"timeout-{uuid.uuid4().hex[:6]}"
    create(kube, desk(namespace, name, timeoutMs=5000))
    found = wait_for("Running", phase_is(kube, namespace, name, "Running"), 30)
    deadline = expires(found)
    seen = wait_for("the VM halted", lambda: halted_at(kube, namespace, found["vmName"]), 20, interval=0.05)
    assert -0.05 <= seen - deadline < 1.0, f"halted {seen - deadline:.2f}s after the deadline"
    wait_for("the VM deleted", gone(lambda: vm(kube, namespace, found["vmName"])), 20)
    final = wait_for("TimedOut", phase_is(kube, namespace, name, "TimedOut"), 20)
    assert final["timedOut"] is True and final["haltedAt"]
    wait_for_events(kube, namespace, {"ExpiringSoon", "TimedOut", "VMDeleted"}, name=name)
    wait_for("the row says completed", lambda: row(pg, name) == "completed", 20)


def test_a_failed_vmi_makes_the_row_say_error(
    kube: lightkube.Client, cd_operator: OperatorProcess, namespace: str, pg: postgres.PostgresServer
) -> None:
    name = f"fails-{uuid.uuid4().hex[:6]}"
    create(kube, desk(namespace, name))
    found = wait_for("Running", phase_is(kube, namespace, name, "Running"), 30)
    patch = {"metadata": {"annotations": {vmlifecycle.FAIL_ANNOTATION: "true"}}}
    kube.patch(VM, found["vmName"], patch, namespace=namespace, patch_type=PatchType.MERGE)
    wait_for("Failed", phase_is(kube, namespace, name, "Failed"), 30)
    wait_for("the row says error", lambda: row(pg, name) == "error", 20)


def test_rows_catch_up_after_the_database_returns(
    kube: lightkube.Client, cd_operator: OperatorProcess, namespace: str, pg: postgres.PostgresServer
) -> None:
    name = f"db-down-{uuid.uuid4().hex[:6]}"
    pg.stop()
    try:
        create(kube, desk(namespace, name))
        wait_for("Running while the database is down", phase_is(kube, namespace, name, "Running"), 30)
    finally:
        pg.start()
    wait_for("the row catches up", lambda: row(pg, name) == "running", 40)


def test_a_desktop_claims_a_warm_vm(kube: lightkube.Client, cd_operator: OperatorProcess) -> None:
    def warm() -> list[str]:
        vms = kube.list(VM, namespace=POOL_NAMESPACE, labels={"cyberdesk.io/pool": default_template.NAME})
        names = [str(v.metadata.name) for v in vms if v.metadata is not None]
        running = []
        for found in names:
            with contextlib.suppress(ApiError):
                if (kube.get(VMI, found, namespace=POOL_NAMESPACE).get("status") or {}).get("phase") == "Running":
                    running.append(found)
        return running

    (pooled,) = wait_for("a warm VM running", warm, 30)
    name = f"warm-{uuid.uuid4().hex[:6]}"
    started = time.monotonic()
    create(kube, desk(POOL_NAMESPACE, name))
    found = wait_for("Running", phase_is(kube, POOL_NAMESPACE, name, "Running"), 30, interval=0.05)
    took = time.monotonic() - started
    assert found["vmName"] == pooled, "the desktop got a new VM instead of the warm one"
    machine = vm(kube, POOL_NAMESPACE, pooled)
    assert machine["metadata"]["ownerReferences"][0]["name"] == name
    assert machine["metadata"]["labels"]["cyberdesk-instance"] == name
    assert "cyberdesk.io/pool" not in machine["metadata"]["labels"]
    instance = kube.get(VMI, pooled, namespace=POOL_NAMESPACE).to_dict()
    assert instance["metadata"]["labels"]["cyberdesk-instance"] == name
    assert took < 3.0, f"a warm claim took {took:.1f}s"
    wait_for("the pool refilled", lambda: [v for v in warm() if v != pooled], 30)
    kube.delete(Cyberdesk, name, namespace=POOL_NAMESPACE)
    wait_for("the claimed VM deleted with it", gone(lambda: vm(kube, POOL_NAMESPACE, pooled)), 30)


def test_a_restarted_operator_recreates_nothing_and_keeps_time(
    kube: lightkube.Client, cd_operator: OperatorProcess, namespace: str
) -> None:
    name = f"restart-{uuid.uuid4().hex[:6]}"
    create(kube, desk(namespace, name, timeoutMs=12_000))
    found = wait_for("Running", phase_is(kube, namespace, name, "Running"), 30)
    uid = vm(kube, namespace, found["vmName"])["metadata"]["uid"]
    cd_operator.kill()
    cd_operator.start()
    assert vm(kube, namespace, found["vmName"])["metadata"]["uid"] == uid
    seen = wait_for("the VM halted", lambda: halted_at(kube, namespace, found["vmName"]), 30, interval=0.05)
    assert -0.05 <= seen - expires(found) < 1.0, f"halted {seen - expires(found):.2f}s after the deadline"
    assert status(kube, namespace, name)["startedAt"] == found["startedAt"]


def test_deleting_the_cyberdesk_removes_the_vm(
    kube: lightkube.Client, cd_operator: OperatorProcess, namespace: str
) -> None:
    name = f"bye-{uuid.uuid4().hex[:6]}"
    create(kube, desk(namespace, name))
    found = wait_for("Running", phase_is(kube, namespace, name, "Running"), 30)
    kube.delete(Cyberdesk, name, namespace=namespace)
    wait_for("the VM gone", gone(lambda: vm(kube, namespace, found["vmName"])), 30)


def test_start_cyberdesk_operator_says_it_is_not_needed(
    kube: lightkube.Client, cd_operator: OperatorProcess, namespace: str
) -> None:
    doc = yaml.safe_load((SAMPLES / "start-cyberdesk-operator.yaml").read_text())
    doc["metadata"]["namespace"] = namespace
    kube.create(codecs.from_dict(doc))

    def answered() -> dict[str, Any] | None:
        found = kube.get(StartCyberdeskOperator, doc["metadata"]["name"], namespace=namespace).get("status") or {}
        return found if found.get("phase") == "NotNeeded" else None

    found = wait_for("NotNeeded", answered, 20)
    assert "starts nothing" in found["message"]
    assert not list(kube.list(VM, namespace=namespace)), "it must create nothing"
