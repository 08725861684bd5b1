"""The local control plane behaves as a real cluster where Roadie depends on it.

Roadie's cluster tests trust this cluster to roll out Deployments, bind claims, run Jobs to the
end, fail pods on demand, cascade deletions and validate custom resources by their schema; if
any of that silently stopped working, operator tests would fail (or worse, pass) for reasons
that have nothing to do with the operator. Each behaviour is checked here on its own, without
the operator, in a namespace of its own. The last tests cover the cluster's own lifecycle:
`down` leaves nothing behind, `up` twice is a no-op, and `roadie cluster status` tells the truth.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap
import uuid

import lightkube
import pytest
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.batch_v1 import JobSpec
from lightkube.models.core_v1 import (
    Container,
    PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource,
    PodSpec,
    PodTemplateSpec,
    Volume,
    VolumeMount,
    VolumeResourceRequirements,
)
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta, OwnerReference
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import ConfigMap, Namespace, PersistentVolumeClaim, Pod
from tests.cluster.conftest import gone, wait_for

from roadie.devcluster import binaries, cluster, processes

IMAGE = "registry.invalid/roadie/app:1"  # kwok plays the kubelet: nothing is ever pulled
FAILED_STAGE = "pod-container-running-failed.stage.kwok.x-k8s.io"
KUBECTL = pathlib.Path(sys.executable).with_name("kubectl")

# A cluster of its own for the lifecycle test, on ports apart from the `roadie` and `test` ones.
DOWNTEST = cluster.ClusterConfig(name="downtest", port_base=16800, node_count=1)

local_only = pytest.mark.skipif(
    bool(os.environ.get("ROADIE_TEST_KUBECONFIG")),
    reason="checks the local control plane's own lifecycle; the suite runs against another cluster",
)


def container(name: str = "app") -> Container:
    return Container(name=name, image=IMAGE)


def phase(kube: lightkube.Client, pod: str, namespace: str) -> str | None:
    status = kube.get(Pod, pod, namespace=namespace).status
    return status.phase if status else None


def test_deployment_becomes_available(kube: lightkube.Client, namespace: str) -> None:
    labels = {"app": "web"}
    kube.create(
        Deployment(
            metadata=ObjectMeta(name="web", namespace=namespace),
            spec=DeploymentSpec(
                replicas=3,
                selector=LabelSelector(matchLabels=labels),
                template=PodTemplateSpec(metadata=ObjectMeta(labels=labels), spec=PodSpec(containers=[container()])),
            ),
        )
    )

    def available() -> bool:
        status = kube.get(Deployment, "web", namespace=namespace).status
        return status is not None and status.availableReplicas == 3

    wait_for("3 available replicas", available, timeout=60)
    pods = list(kube.list(Pod, namespace=namespace, labels=labels))
    assert len(pods) == 3
    assert all(pod.spec is not None and pod.spec.nodeName for pod in pods)  # the scheduler placed each


def test_claim_of_the_default_class_binds_and_a_pod_mounts_it(kube: lightkube.Client, namespace: str) -> None:
    kube.create(
        PersistentVolumeClaim(
            metadata=ObjectMeta(name="data", namespace=namespace),
            spec=PersistentVolumeClaimSpec(
                accessModes=["ReadWriteOnce"],
                resources=VolumeResourceRequirements(requests={"storage": "2Gi"}),
            ),  # no storageClassName: admission fills in the default class
        )
    )

    def bound() -> PersistentVolumeClaim | None:
        found = kube.get(PersistentVolumeClaim, "data", namespace=namespace)
        return found if found.status is not None and found.status.phase == "Bound" else None

    claim = wait_for("the claim to bind", bound, timeout=60)
    assert claim.spec.storageClassName == "standard"
    assert claim.status.capacity == {"storage": "2Gi"}

    kube.create(
        Pod(
            metadata=ObjectMeta(name="user", namespace=namespace),
            spec=PodSpec(
                containers=[
                    Container(name="app", image=IMAGE, volumeMounts=[VolumeMount(name="data", mountPath="/data")])
                ],
                volumes=[
                    Volume(name="data", persistentVolumeClaim=PersistentVolumeClaimVolumeSource(claimName="data"))
                ],
            ),
        )
    )

    wait_for("the pod mounting the claim to run", lambda: phase(kube, "user", namespace) == "Running", timeout=60)


def test_job_completes(kube: lightkube.Client, namespace: str) -> None:
    kube.create(
        Job(
            metadata=ObjectMeta(name="once", namespace=namespace),
            spec=JobSpec(
                backoffLimit=0,
                template=PodTemplateSpec(spec=PodSpec(containers=[container()], restartPolicy="Never")),
            ),
        )
    )

    def complete() -> bool:
        status = kube.get(Job, "once", namespace=namespace).status
        conditions = (status.conditions or []) if status else []
        return any(c.type == "Complete" and c.status == "True" for c in conditions)

    wait_for("the Job to complete", complete, timeout=60)
    status = kube.get(Job, "once", namespace=namespace).status
    assert status is not None
    assert status.succeeded == 1
    assert not status.failed


def test_pod_labelled_for_failure_fails_with_the_chosen_exit_code(kube: lightkube.Client, namespace: str) -> None:
    kube.create(
        Pod(
            metadata=ObjectMeta(
                name="doomed",
                namespace=namespace,
                labels={FAILED_STAGE: "true"},
                annotations={f"{FAILED_STAGE}/exit-code": "3"},
            ),
            spec=PodSpec(containers=[container()], restartPolicy="Never"),
        )
    )

    def failed() -> Pod | None:
        pod = kube.get(Pod, "doomed", namespace=namespace)
        return pod if pod.status is not None and pod.status.phase == "Failed" else None

    pod = wait_for("the pod to fail", failed, timeout=60)
    (state,) = pod.status.containerStatuses
    assert state.state.terminated is not None
    assert state.state.terminated.exitCode == 3


def test_deleting_a_namespace_deletes_its_contents_and_itself(kube: lightkube.Client, namespace: str) -> None:
    kube.create(ConfigMap(metadata=ObjectMeta(name="settings", namespace=namespace), data={"a": "1"}))
    kube.create(Pod(metadata=ObjectMeta(name="worker", namespace=namespace), spec=PodSpec(containers=[container()])))
    wait_for("the pod to run", lambda: phase(kube, "worker", namespace) == "Running", timeout=60)

    kube.delete(Namespace, namespace)

    wait_for("the namespace to go", gone(lambda: kube.get(Namespace, namespace)), timeout=60)
    assert list(kube.list(ConfigMap, namespace=namespace)) == []
    assert list(kube.list(Pod, namespace=namespace)) == []


def test_dependent_is_garbage_collected_with_its_owner(kube: lightkube.Client, namespace: str) -> None:
    owner = kube.create(ConfigMap(metadata=ObjectMeta(name="owner", namespace=namespace)))
    assert owner.metadata is not None and owner.metadata.uid
    reference = OwnerReference(apiVersion="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid)
    kube.create(ConfigMap(metadata=ObjectMeta(name="dependent", namespace=namespace, ownerReferences=[reference])))
    kube.create(ConfigMap(metadata=ObjectMeta(name="bystander", namespace=namespace)))

    kube.delete(ConfigMap, "owner", namespace=namespace)

    wait_for(
        "the dependent to be collected",
        gone(lambda: kube.get(ConfigMap, "dependent", namespace=namespace)),
        timeout=60,
    )
    assert kube.get(ConfigMap, "bystander", namespace=namespace).metadata is not None


def kubectl(kubeconfig: pathlib.Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KUBECTL), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_crd_from_a_file_is_served_and_validated_by_its_schema(
    kube: lightkube.Client, kubeconfig: pathlib.Path, namespace: str, tmp_path: pathlib.Path
) -> None:
    crd_group = f"t{uuid.uuid4().hex[:8]}.roadie.test"  # CRDs are cluster-wide: a group of this run's own
    manifest = tmp_path / "widgets.yaml"
    manifest.write_text(
        textwrap.dedent(
            f"""\
            apiVersion: apiextensions.k8s.io/v1
            kind: CustomResourceDefinition
            metadata:
              name: widgets.{crd_group}
            spec:
              group: {crd_group}
              scope: Namespaced
              names: {{plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}}
              versions:
              - name: v1
                served: true
                storage: true
                schema:
                  openAPIV3Schema:
                    type: object
                    properties:
                      spec:
                        type: object
                        required: [size]
                        properties:
                          size: {{type: integer, minimum: 1}}
            """
        )
    )
    crd_name = f"widgets.{crd_group}"
    try:
        applied = kubectl(kubeconfig, "apply", "-f", str(manifest))
        assert applied.returncode == 0, applied.stderr
        assert f"{crd_name} created" in applied.stdout

        def established() -> bool:
            status = kube.get(CustomResourceDefinition, crd_name).status
            conditions = (status.conditions or []) if status else []
            return any(c.type == "Established" and c.status == "True" for c in conditions)

        wait_for("the CRD to be established", established, timeout=30)
        widget = create_namespaced_resource(crd_group, "v1", "Widget", "widgets")

        wait_for("widgets to be served", lambda: list(kube.list(widget, namespace=namespace)) == [], timeout=30)
        kube.create(widget(metadata=ObjectMeta(name="good", namespace=namespace), spec={"size": 2}))
        assert kube.get(widget, "good", namespace=namespace)["spec"] == {"size": 2}
        listed = kubectl(kubeconfig, "get", f"widgets.{crd_group}", "-n", namespace, "-o", "name")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == [f"widget.{crd_group}/good"]

        with pytest.raises(ApiError) as raised:
            kube.create(widget(metadata=ObjectMeta(name="bad", namespace=namespace), spec={"size": "three"}))
        assert raised.value.status.code == 422
        message = raised.value.status.message or ""
        assert "Invalid value" in message
        assert "spec.size" in message
        assert "must be of type integer" in message

        with pytest.raises(ApiError) as too_small:
            kube.create(widget(metadata=ObjectMeta(name="tiny", namespace=namespace), spec={"size": 0}))
        assert "should be greater than or equal to 1" in (too_small.value.status.message or "")
    finally:
        kubectl(kubeconfig, "delete", "--ignore-not-found", "--wait=false", "-f", str(manifest))


def test_status_json_reports_the_api_ready(kubeconfig: pathlib.Path) -> None:
    if os.environ.get("ROADIE_TEST_KUBECONFIG"):
        pytest.skip("the suite runs against another cluster; `roadie cluster status` knows only its own")
    name = kubeconfig.parent.name
    proc = subprocess.run(
        [sys.executable, "-m", "roadie", "cluster", "status", "--name", name, "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["name"] == name
    assert info["api_ready"] is True
    assert info["kubeconfig"] == str(kubeconfig)
    assert info["server"] == lightkube.KubeConfig.from_file(kubeconfig).get().cluster.server
    for component in cluster.COMPONENTS:
        assert info["components"][component]["running"] is True, component


def cluster_processes(state: pathlib.Path) -> dict[int, tuple[str, str]]:
    """Processes still running (not zombies) whose command line mentions `state`: pid -> (exe, cmdline).

    Every component names a file under its cluster's state folder on its command line (a data
    directory, certificates, a kubeconfig), so this finds them without trusting the pid files.
    """
    found: dict[int, tuple[str, str]] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            stat = (entry / "stat").read_text()
            exe = os.readlink(entry / "exe")
        except OSError:
            continue
        if stat.rsplit(")", 1)[-1].split()[0] == "Z" or str(state) not in cmdline:
            continue
        found[int(entry.name)] = (exe, cmdline)
    return found


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@local_only
def test_up_twice_is_a_no_op_and_down_leaves_nothing_running() -> None:
    config = DOWNTEST
    bins = binaries.resolve(report=lambda _: None)
    try:
        kubeconfig = cluster.up(config, report=lambda _: None)
        assert cluster.is_up(config)
        assert kubeconfig == config.kubeconfig
        pids = {name: processes.find(config.state, name) for name in cluster.COMPONENTS}
        assert all(pids.values()), pids
        running = cluster_processes(config.state)
        in_bins = {pid for pid, (exe, _) in running.items() if pathlib.Path(exe).parent == bins}
        assert {found.pid for found in pids.values() if found} <= set(running)
        assert len(in_bins) == 5  # etcd, kube-apiserver, controller-manager, scheduler, kwok

        assert cluster.up(config, report=lambda _: None) == kubeconfig
        assert {name: processes.find(config.state, name) for name in cluster.COMPONENTS} == pids
    finally:
        stopped = cluster.down(config, report=lambda _: None)

    assert set(cluster.COMPONENTS) <= set(stopped)
    left = cluster_processes(config.state)
    assert {pid: info for pid, info in left.items() if pathlib.Path(info[0]).parent == bins} == {}
    assert left == {}  # not the provisioner either, which runs from Python, not from `bins`
    assert {name: port for name, port in config.ports().items() if port_open(port)} == {}
    assert not cluster.is_up(config)
    assert cluster.down(config, report=lambda _: None) == []
