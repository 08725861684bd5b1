"""The local cluster's stand-ins for containers: kwok's stages finish task pods, and the executor
really runs the Workspace engine's pods.

Observatory's tests trust a `restartPolicy: Never` pod to end Succeeded after its annotated delay, or
Failed with its annotated exit code; Workspace's trust a pod labelled as the snapshot engine to run
its command for real, with its claim's folder in place of the mount path, and to report the exit
code and termination message as a kubelet would. Each of those behaviours is checked here without
the operator, so that an operator test failing points at the operator.
"""

from __future__ import annotations

import pathlib
import time

import lightkube
import pytest
from lightkube.models.batch_v1 import JobSpec
from lightkube.models.core_v1 import (
    Container,
    ContainerStateTerminated,
    EnvVar,
    PersistentVolumeClaimSpec,
    PersistentVolumeClaimVolumeSource,
    PodSpec,
    PodTemplateSpec,
    Volume,
    VolumeMount,
    VolumeResourceRequirements,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.batch_v1 import Job
from lightkube.resources.core_v1 import PersistentVolume, PersistentVolumeClaim, Pod
from tests.cluster.conftest import gone, wait_for

from roadie.devcluster import cluster, podexec, processes

IMAGE = "registry.invalid/roadie/task:1"  # never pulled: kwok or the executor plays the kubelet
COMPLETE = "pod-complete.stage.kwok.x-k8s.io"
FAIL = "pod-container-running-failed.stage.kwok.x-k8s.io"
ENGINE = podexec.parse_selector(podexec.DEFAULT_SELECTOR)


def task_pod(name: str, namespace: str, annotations: dict[str, str] | None = None) -> Pod:
    return Pod(
        metadata=ObjectMeta(name=name, namespace=namespace, annotations=annotations),
        spec=PodSpec(containers=[Container(name="task", image=IMAGE)], restartPolicy="Never"),
    )


def pod_in(kube: lightkube.Client, name: str, namespace: str, *phases: str) -> Pod | None:
    pod = kube.get(Pod, name, namespace=namespace)
    return pod if pod.status is not None and pod.status.phase in phases else None


def test_a_never_pod_completes_after_its_annotated_delay(kube: lightkube.Client, namespace: str) -> None:
    kube.create(task_pod("slow", namespace, {f"{COMPLETE}/delay": "3s"}))
    kube.create(task_pod("default", namespace))

    wait_for("the pod to run", lambda: pod_in(kube, "slow", namespace, "Running"), timeout=30, interval=0.05)
    running_at = time.monotonic()
    pod = wait_for("the pod to succeed", lambda: pod_in(kube, "slow", namespace, "Succeeded"), timeout=30, interval=0.1)
    took = time.monotonic() - running_at

    assert 2.5 <= took < 8, took
    (state,) = pod.status.containerStatuses
    assert state.state.terminated.exitCode == 0
    wait_for("the unannotated pod to succeed", lambda: pod_in(kube, "default", namespace, "Succeeded"), timeout=15)


def test_a_never_pod_asked_to_fail_ends_failed_with_its_exit_code(kube: lightkube.Client, namespace: str) -> None:
    asked = {FAIL: "true", f"{FAIL}/exit-code": "7", f"{FAIL}/delay": "2s"}
    kube.create(task_pod("doomed", namespace, asked))

    wait_for("the pod to run", lambda: pod_in(kube, "doomed", namespace, "Running"), timeout=30, interval=0.05)
    running_at = time.monotonic()
    pod = wait_for("the pod to end", lambda: pod_in(kube, "doomed", namespace, "Succeeded", "Failed"), timeout=30)
    took = time.monotonic() - running_at

    assert pod.status.phase == "Failed"
    (state,) = pod.status.containerStatuses
    assert state.state.terminated.exitCode == 7
    assert 1.5 <= took < 8, took


def test_a_pod_that_restarts_keeps_running(kube: lightkube.Client, namespace: str) -> None:
    kube.create(
        Pod(
            metadata=ObjectMeta(name="server", namespace=namespace),
            spec=PodSpec(containers=[Container(name="s", image=IMAGE)]),
        )
    )
    wait_for("the pod to run", lambda: pod_in(kube, "server", namespace, "Running"), timeout=30)

    time.sleep(2.5)  # past the Never pods' default delay: nothing may end this one

    assert pod_in(kube, "server", namespace, "Running") is not None


def claim(kube: lightkube.Client, namespace: str, name: str = "data") -> pathlib.Path:
    """A bound claim of the default class, and the folder the provisioner keeps for its volume."""
    kube.create(
        PersistentVolumeClaim(
            metadata=ObjectMeta(name=name, namespace=namespace),
            spec=PersistentVolumeClaimSpec(
                accessModes=["ReadWriteOnce"], resources=VolumeResourceRequirements(requests={"storage": "1Gi"})
            ),
        )
    )
    bound = wait_for(
        "the claim to bind",
        lambda: (c := kube.get(PersistentVolumeClaim, name, namespace=namespace)).spec.volumeName and c,
        timeout=30,
    )
    volume = kube.get(PersistentVolume, bound.spec.volumeName)
    return pathlib.Path(volume.spec.hostPath.path)


def engine_spec(script: str, **container: object) -> PodSpec:
    return PodSpec(
        restartPolicy="Never",
        containers=[
            Container(
                name="engine",
                image=IMAGE,
                command=["sh", "-c", script],
                volumeMounts=[VolumeMount(name="data", mountPath="/workspace")],
                **container,  # type: ignore[arg-type]
            )
        ],
        volumes=[Volume(name="data", persistentVolumeClaim=PersistentVolumeClaimVolumeSource(claimName="data"))],
    )


#: Writes the shell's pid, then sleeps in its place; `$$$$` is how a pod's command writes `$$`.
SLEEPER = "echo $$$$ > /workspace/pid; exec sleep 300"


def engine_pod(name: str, namespace: str, script: str, **container: object) -> Pod:
    return Pod(
        metadata=ObjectMeta(name=name, namespace=namespace, labels=ENGINE), spec=engine_spec(script, **container)
    )


def terminated(pod: Pod) -> ContainerStateTerminated:
    """The one container's terminated state."""
    assert pod.status is not None and pod.status.containerStatuses
    (state,) = pod.status.containerStatuses
    assert state.state is not None and state.state.terminated is not None
    return state.state.terminated


def finished(kube: lightkube.Client, name: str, namespace: str, timeout: float = 60) -> Pod:
    found: Pod = wait_for(
        f"{name} to finish", lambda: pod_in(kube, name, namespace, "Succeeded", "Failed"), timeout=timeout, interval=0.1
    )
    return found


def test_the_executor_runs_the_command_on_the_claims_folder(kube: lightkube.Client, namespace: str) -> None:
    folder = claim(kube, namespace)
    script = (
        'mkdir -p /workspace/out && echo "from $POD" > /workspace/out/file && printf snap-42 > /dev/termination-log'
        " && command -v roadie > /workspace/which"
    )
    kube.create(
        engine_pod(
            "publish", namespace, script, env=[EnvVar(name="POD", value="$(NAME)"), EnvVar(name="NAME", value="x")]
        )
    )

    pod = finished(kube, "publish", namespace)

    assert (folder / "out" / "file").read_text() == "from $(NAME)\n"  # $(NAME) defined only after POD: kept
    assert (folder / "which").read_text().strip() == str(podexec.roadie_executable())
    assert pod.status.phase == "Succeeded"
    assert pod.status.startTime is not None
    state = terminated(pod)
    assert (state.exitCode, state.reason, state.message) == (0, "Completed", "snap-42")
    assert state.startedAt is not None and state.finishedAt is not None and state.finishedAt >= state.startedAt
    assert not pathlib.Path("/dev/termination-log").exists()  # the container's path, never the machine's


def test_the_executor_reports_a_failure_and_kwok_leaves_the_pod_alone(kube: lightkube.Client, namespace: str) -> None:
    claim(kube, namespace)
    kube.create(
        engine_pod(
            "broken",
            namespace,
            "sleep 2; echo 'corrupt chunk 9' >&2; exit 4",
            terminationMessagePolicy="FallbackToLogsOnError",
        )
    )

    pod = finished(kube, "broken", namespace)

    assert pod.status.phase == "Failed"  # kwok would have ended it Succeeded after a second
    assert terminated(pod).exitCode == 4
    assert terminated(pod).message == "corrupt chunk 9\n"


def test_the_executor_runs_roadie_and_completes_a_job(kube: lightkube.Client, namespace: str) -> None:
    claim(kube, namespace)
    spec = engine_spec("unused")
    spec.containers[0].command = ["roadie", "cluster", "--help"]  # the roadie beside the running Python
    template = PodTemplateSpec(metadata=ObjectMeta(labels=ENGINE), spec=spec)
    kube.create(
        Job(metadata=ObjectMeta(name="engine", namespace=namespace), spec=JobSpec(backoffLimit=0, template=template))
    )

    def complete() -> bool:
        status = kube.get(Job, "engine", namespace=namespace).status
        return status is not None and bool(status.succeeded or status.failed)

    wait_for("the Job to finish", complete, timeout=60)
    status = kube.get(Job, "engine", namespace=namespace).status
    assert status is not None and (status.succeeded, status.failed) == (1, None)


def test_deleting_a_running_pod_kills_its_process(kube: lightkube.Client, namespace: str) -> None:
    folder = claim(kube, namespace)
    kube.create(engine_pod("long", namespace, SLEEPER))
    wait_for(
        "the process to start", lambda: (folder / "pid").is_file() and (folder / "pid").read_text().strip(), timeout=60
    )
    pid = int((folder / "pid").read_text())
    assert pod_in(kube, "long", namespace, "Running") is not None

    kube.delete(Pod, "long", namespace=namespace)

    wait_for("the pod to go", gone(lambda: kube.get(Pod, "long", namespace=namespace)), timeout=45)
    assert not alive(pid)


def test_a_pod_past_its_deadline_is_stopped_and_failed(kube: lightkube.Client, namespace: str) -> None:
    claim(kube, namespace)
    pod = engine_pod("late", namespace, "exec sleep 300")
    assert pod.spec is not None
    pod.spec.activeDeadlineSeconds = 2
    kube.create(pod)

    done = finished(kube, "late", namespace, timeout=30)

    assert (done.status.phase, done.status.reason) == ("Failed", "DeadlineExceeded")
    assert terminated(done).exitCode == 137


def alive(pid: int) -> bool:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def test_a_restarted_executor_runs_no_pod_twice(
    kube: lightkube.Client, kubeconfig: pathlib.Path, namespace: str
) -> None:
    config = cluster.recorded(kubeconfig.parent.name, kubeconfig.parent.parent)
    if config is None or config.kubeconfig != kubeconfig:
        pytest.skip("restarts the local cluster's executor; the suite runs against another cluster")
    folder = claim(kube, namespace)
    kube.create(engine_pod("once", namespace, "echo run >> /workspace/runs"))
    finished(kube, "once", namespace)
    kube.create(engine_pod("cut", namespace, SLEEPER))
    wait_for(
        "the long process to start",
        lambda: (folder / "pid").is_file() and (folder / "pid").read_text().strip(),
        timeout=60,
    )
    pid = int((folder / "pid").read_text())

    assert processes.stop(config.state, "pod-executor")
    assert not alive(pid)  # no process outlives the executor
    cluster.up(config, report=lambda _: None)

    cut = finished(kube, "cut", namespace, timeout=30)
    assert cut.status.phase == "Failed"
    assert terminated(cut).reason == "ContainerStatusUnknown"
    time.sleep(1.5)  # time enough for a wrong second run of "once"
    assert (folder / "runs").read_text() == "run\n"
    assert pod_in(kube, "once", namespace, "Succeeded") is not None
