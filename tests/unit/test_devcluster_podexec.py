"""The executor's translation of a Pod into a local process, and of its end into the Pod's status.

The executor stands in for the kubelet of the Workspace engine's pods; if a mount path were
replaced inside an unrelated word, or `$(VAR)` expanded differently from the kubelet, the engine
would read or write the wrong folder and the cluster tests would fail far from the cause. So each
rule is checked here on lightkube's models, without a cluster.
"""

from __future__ import annotations

import datetime
import pathlib
import sys
import typing

import pytest
from lightkube.models.core_v1 import (
    ConfigMapEnvSource,
    ConfigMapKeySelector,
    Container,
    EnvFromSource,
    EnvVar,
    EnvVarSource,
    ObjectFieldSelector,
    PersistentVolumeClaimVolumeSource,
    PodSpec,
    PodStatus,
    SecretKeySelector,
    Volume,
    VolumeMount,
)
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Pod

from roadie.devcluster import podexec

T0 = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)


def pod(container: Container, *, volumes: list[Volume] | None = None) -> Pod:
    return Pod(
        metadata=ObjectMeta(name="engine-1", namespace="ws", uid="u-1", labels={"app": "engine"}),
        spec=PodSpec(containers=[container], volumes=volumes, nodeName="kwok-node-1"),
    )


def engine(**fields: object) -> Container:
    defaults: dict[str, object] = {
        "name": "engine",
        "image": "registry.invalid/roadie:1",
        "command": ["roadie", "engine", "publish"],
        "args": ["--root=/data/work", "--out", "/data"],
        "volumeMounts": [VolumeMount(name="data", mountPath="/data")],
    }
    return Container(**{**defaults, **fields})  # type: ignore[arg-type]


CLAIM = Volume(name="data", persistentVolumeClaim=PersistentVolumeClaimVolumeSource(claimName="ws-data"))


def test_selector_is_parsed_into_label_equalities() -> None:
    assert podexec.parse_selector(podexec.DEFAULT_SELECTOR) == {"app.kubernetes.io/component": "snapshot-engine"}
    assert podexec.parse_selector("a=b, c==d") == {"a": "b", "c": "d"}
    with pytest.raises(ValueError):
        podexec.parse_selector("a")


def test_a_mount_path_is_replaced_only_where_it_starts_a_path(tmp_path: pathlib.Path) -> None:
    mounts = [podexec.Mount("/data/cache", tmp_path / "c"), podexec.Mount("/data", tmp_path / "d")]

    assert podexec.substitute("/data", mounts) == str(tmp_path / "d")
    assert podexec.substitute("/data/x/y", mounts) == f"{tmp_path / 'd'}/x/y"
    assert podexec.substitute("/data/cache/z", mounts) == f"{tmp_path / 'c'}/z"
    assert podexec.substitute("--root=/data/w", mounts) == f"--root={tmp_path / 'd'}/w"
    assert podexec.substitute("a:/data,/data/b", mounts) == f"a:{tmp_path / 'd'},{tmp_path / 'd'}/b"
    replaced = podexec.substitute("echo > /data; cat /data/cache", mounts)
    assert replaced == f"echo > {tmp_path / 'd'}; cat {tmp_path / 'c'}"
    assert podexec.substitute('"/data"', mounts) == f'"{tmp_path / "d"}"'
    assert podexec.substitute("/database", mounts) == "/database"
    assert podexec.substitute("/srv/data", mounts) == "/srv/data"
    assert podexec.substitute("./data /data.bak", mounts) == "./data /data.bak"


def test_references_expand_as_the_kubelet_does() -> None:
    env = {"A": "1", "ROOT": "/data"}

    assert podexec.expand("$(A)-$(ROOT)/x", env) == "1-/data/x"
    assert podexec.expand("$(MISSING)", env) == "$(MISSING)"
    assert podexec.expand("$$(A) costs $$5", env) == "$(A) costs $5"


def test_launch_runs_the_roadie_beside_python_with_the_volume_folder_in_place(tmp_path: pathlib.Path) -> None:
    volume = tmp_path / "pv"
    container = engine(
        env=[EnvVar(name="ROOT", value="/data/root"), EnvVar(name="DERIVED", value="$(ROOT)/x")],
        workingDir="/data",
    )

    subject = pod(container, volumes=[CLAIM])
    launch = podexec.launch(subject, {"data": volume}, tmp_path / "scratch", {"ROOT": "/data/root"}, {})

    assert launch.argv == [
        str(pathlib.Path(sys.executable).parent / "roadie"),
        "engine",
        "publish",
        f"--root={volume}/work",
        "--out",
        str(volume),
    ]
    assert launch.env["ROOT"] == f"{volume}/root"
    assert launch.env["HOSTNAME"] == "engine-1"
    assert launch.cwd == volume
    assert launch.termination_file == tmp_path / "scratch" / "termination-log"


def test_sub_paths_and_the_termination_path_are_mapped(tmp_path: pathlib.Path) -> None:
    container = engine(
        command=["sh", "-c", "echo done > /tmp/msg"],
        args=None,
        terminationMessagePath="/tmp/msg",
        volumeMounts=[VolumeMount(name="data", mountPath="/work", subPath="team/a")],
    )

    launch = podexec.launch(pod(container, volumes=[CLAIM]), {"data": tmp_path / "pv"}, tmp_path / "s", {}, {})

    assert launch.argv == ["sh", "-c", f"echo done > {tmp_path / 's' / 'termination-log'}"]
    assert launch.cwd == tmp_path / "s" / "work"  # no workingDir: a folder of the pod's own
    found = podexec.mounts(container, {"data": tmp_path / "pv"}, launch.termination_file)
    assert podexec.Mount("/work", tmp_path / "pv" / "team" / "a") in found


def test_a_pod_the_executor_cannot_run_is_refused_for_good() -> None:
    two = pod(engine())
    assert two.spec is not None
    two.spec.containers.append(engine(name="sidecar"))

    with pytest.raises(podexec.PodError) as refused:
        podexec.the_container(two)
    assert refused.value.permanent
    with pytest.raises(podexec.PodError) as no_command:
        podexec.launch(pod(engine(command=None)), {"data": pathlib.Path("/x")}, pathlib.Path("/s"), {}, {})
    assert no_command.value.permanent


def test_environment_reads_fields_config_maps_and_secrets_in_order() -> None:
    container = engine(
        envFrom=[EnvFromSource(configMapRef=ConfigMapEnvSource(name="settings"), prefix="CFG_")],
        env=[
            EnvVar(name="NAME", valueFrom=EnvVarSource(fieldRef=ObjectFieldSelector(fieldPath="metadata.name"))),
            EnvVar(
                name="APP",
                valueFrom=EnvVarSource(fieldRef=ObjectFieldSelector(fieldPath="metadata.labels['app']")),
            ),
            EnvVar(name="KEY", valueFrom=EnvVarSource(secretKeyRef=SecretKeySelector(name="keys", key="k"))),
            EnvVar(name="MODE", valueFrom=EnvVarSource(configMapKeyRef=ConfigMapKeySelector(name="settings", key="m"))),
            EnvVar(name="BOTH", value="$(NAME)-$(CFG_m)"),
        ],
    )
    subject = pod(container)

    assert podexec.referenced_objects(subject) == ({"settings"}, {"keys"})
    env = podexec.environment(subject, {"settings": {"m": "fast"}}, {"keys": {"k": "s3cret"}})
    assert env == {
        "CFG_m": "fast",
        "NAME": "engine-1",
        "APP": "engine",
        "KEY": "s3cret",
        "MODE": "fast",
        "BOTH": "engine-1-fast",
    }


def test_a_missing_secret_keeps_the_pod_waiting_unless_optional() -> None:
    ref = SecretKeySelector(name="keys", key="k")
    container = engine(env=[EnvVar(name="KEY", valueFrom=EnvVarSource(secretKeyRef=ref))])

    with pytest.raises(podexec.PodError) as waiting:
        podexec.environment(pod(container), {}, {})
    assert not waiting.value.permanent
    ref.optional = True
    assert podexec.environment(pod(container), {}, {}) == {}


def test_exit_codes_of_signals_are_128_plus_the_signal() -> None:
    assert podexec.exit_code(0) == 0
    assert podexec.exit_code(3) == 3
    assert podexec.exit_code(-9) == 137


def test_termination_message_falls_back_to_the_log_only_when_asked_and_failed() -> None:
    log = b"".join(f"line {i}\n".encode() for i in range(200))

    assert podexec.termination_message(b"snapshot abc\n", log, failed=True, fallback_to_logs=True) == "snapshot abc\n"
    assert podexec.termination_message(b"", log, failed=True, fallback_to_logs=False) == ""
    assert podexec.termination_message(b"", log, failed=False, fallback_to_logs=True) == ""
    tail = podexec.termination_message(b"", log, failed=True, fallback_to_logs=True)
    assert tail.endswith("line 199\n") and tail.count("\n") == podexec.FALLBACK_LOG_LINES
    assert len(podexec.termination_message(b"x" * 10000, b"", failed=False, fallback_to_logs=False)) == 4096


def test_running_then_terminated_status_as_a_kubelet_reports_them() -> None:
    subject = pod(engine())

    running = podexec.running_status(subject, T0, 4242)["status"]
    assert isinstance(running, dict)
    assert running["phase"] == "Running"
    assert running["startTime"] == "2030-01-02T03:04:05Z"
    (container,) = running["containerStatuses"]
    assert container["state"] == {"running": {"startedAt": "2030-01-02T03:04:05Z"}}
    assert container["containerID"] == "roadie-executor://4242"

    done = podexec.terminated_status(
        subject, started=T0, finished=T0 + datetime.timedelta(seconds=3), code=3, message="boom", pid=4242
    )["status"]
    assert isinstance(done, dict)
    assert done["phase"] == "Failed"
    (container,) = done["containerStatuses"]
    assert container["state"]["terminated"] == {
        "exitCode": 3,
        "reason": "Error",
        "message": "boom",
        "startedAt": "2030-01-02T03:04:05Z",
        "finishedAt": "2030-01-02T03:04:08Z",
    }
    ok = podexec.terminated_status(subject, started=T0, finished=T0, code=0)["status"]
    assert isinstance(ok, dict) and ok["phase"] == "Succeeded"
    late = podexec.terminated_status(
        subject, started=T0, finished=T0, code=137, signal_number=9, pod_reason="DeadlineExceeded", pod_message="late"
    )["status"]
    assert isinstance(late, dict)
    assert (late["phase"], late["reason"]) == ("Failed", "DeadlineExceeded")
    assert late["containerStatuses"][0]["state"]["terminated"]["signal"] == 9


def test_a_pod_started_by_an_earlier_executor_is_recognised() -> None:
    subject = pod(engine())
    assert not podexec.started_by_an_executor(subject)

    status = podexec.running_status(subject, T0, 7)["status"]
    assert isinstance(status, dict)
    subject.status = typing.cast(PodStatus, PodStatus.from_dict(status))

    assert podexec.started_by_an_executor(subject)
    assert not podexec.finished(subject)
