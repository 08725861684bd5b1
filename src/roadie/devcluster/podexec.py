"""How the local executor turns a Pod into a local process, and the process's end into the Pod's status.

The executor (`executor.py`) stands in for the kubelet of a few pods: it runs their container's
command on this machine, each volume's local folder in place of its mount path. The translation a
kubelet would make (mounts, environment, `$(VAR)` references, the termination message, the status
it reports) lives here as pure functions over lightkube's models, so that it is checked in
milliseconds without a cluster; the executor does the watching, the API calls and the processes.
"""

from __future__ import annotations

import dataclasses
import datetime
import pathlib
import re
import sys
from collections.abc import Mapping, Sequence

from lightkube.models.core_v1 import Container
from lightkube.resources.core_v1 import Pod

#: Pods the executor runs, and that kwok's stages (`stages/kwok-stages.yaml`) leave alone.
DEFAULT_SELECTOR = "app.kubernetes.io/component=snapshot-engine"
DEFAULT_TERMINATION_PATH = "/dev/termination-log"
#: The kubelet's limits: a termination message is cut at 4096 bytes; logs used in its place, at
#: 80 lines or 2048 bytes.
MAX_MESSAGE_BYTES = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
#: The container ID scheme, so that a restarted executor knows which Running pods it had started.
CONTAINER_ID_SCHEME = "roadie-executor://"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"
LOST_MESSAGE = "The container could not be located when the pod was terminated"


class PodError(Exception):
    """The pod cannot be started as it stands; `permanent` when waiting will not help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclasses.dataclass(frozen=True)
class Mount:
    """A path inside the container and the local folder or file standing in for it."""

    path: str
    local: pathlib.Path


@dataclasses.dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    cwd: pathlib.Path
    termination_file: pathlib.Path


def parse_selector(text: str) -> dict[str, str]:
    """`a=b,c==d` as a dict: the executor selects by label equality only."""
    labels: dict[str, str] = {}
    for term in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = term.replace("==", "=").partition("=")
        if not sep or not key.strip():
            raise ValueError(f"selector term {term!r} is not key=value")
        labels[key.strip()] = value.strip()
    return labels


def roadie_executable() -> pathlib.Path:
    """The `roadie` installed beside the running Python, which a container's `roadie` stands for."""
    return pathlib.Path(sys.executable).parent / "roadie"


def the_container(pod: Pod) -> Container:
    assert pod.spec is not None
    if len(pod.spec.containers) != 1 or pod.spec.initContainers:
        raise PodError("the local executor runs pods of exactly one container and no init container", permanent=True)
    return pod.spec.containers[0]


def termination_path(container: Container) -> str:
    return container.terminationMessagePath or DEFAULT_TERMINATION_PATH


def mounts(container: Container, volumes: Mapping[str, pathlib.Path], termination_file: pathlib.Path) -> list[Mount]:
    """Each mount path with its local stand-in, longest path first so `/a/b` wins over `/a`."""
    found = [Mount(termination_path(container), termination_file)]
    for mount in container.volumeMounts or []:
        if mount.name not in volumes:
            raise PodError(f"volume {mount.name!r} is mounted but not defined", permanent=True)
        local = volumes[mount.name] / mount.subPath if mount.subPath else volumes[mount.name]
        found.append(Mount(mount.mountPath.rstrip("/") or "/", local))
    return sorted(found, key=lambda m: len(m.path), reverse=True)


def substitute(text: str, found: Sequence[Mount]) -> str:
    """Replace each mount path wherever it stands as a whole path: not preceded by a path character
    and not followed by a name character, so `/data` is replaced in `--out=/data/x` and `> /data;`
    but not in `/database` or `/srv/data`."""
    for mount in found:
        if mount.path == "/":
            continue
        pattern = r"(?<![\w./-])" + re.escape(mount.path) + r"(?![\w.-])"
        local = str(mount.local).replace("\\", "\\\\")
        text = re.sub(pattern, local, text)
    return text


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion: a defined variable is replaced, `$$` is a `$`, the rest stays."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env[name] if name in env else match.group(0)

    return _REFERENCE.sub(one, text)


def referenced_objects(pod: Pod) -> tuple[set[str], set[str]]:
    """The ConfigMaps and Secrets the container's environment and the pod's volumes read."""
    container = the_container(pod)
    config_maps: set[str] = set()
    secrets: set[str] = set()
    for source in container.envFrom or []:
        if source.configMapRef:
            config_maps.add(str(source.configMapRef.name))
        if source.secretRef:
            secrets.add(str(source.secretRef.name))
    for var in container.env or []:
        if var.valueFrom and var.valueFrom.configMapKeyRef:
            config_maps.add(str(var.valueFrom.configMapKeyRef.name))
        if var.valueFrom and var.valueFrom.secretKeyRef:
            secrets.add(str(var.valueFrom.secretKeyRef.name))
    for volume in (pod.spec.volumes if pod.spec else None) or []:
        if volume.configMap:
            config_maps.add(str(volume.configMap.name))
        if volume.secret:
            secrets.add(str(volume.secret.secretName))
    return config_maps, secrets


def _field(pod: Pod, path: str) -> str:
    meta = pod.metadata
    assert meta is not None and pod.spec is not None
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.nodeName,
        "spec.serviceAccountName": pod.spec.serviceAccountName,
        "status.podIP": pod.status.podIP if pod.status else None,
        "status.hostIP": pod.status.hostIP if pod.status else None,
    }
    if path in simple:
        return simple[path] or ""
    keyed = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
    if keyed:
        values = (meta.labels if keyed.group(1) == "labels" else meta.annotations) or {}
        return values.get(keyed.group(2), "")
    raise PodError(f"fieldRef {path!r} is not supported by the local executor", permanent=True)


def environment(
    pod: Pod,
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    """The container's environment as the kubelet computes it (envFrom, then env in order, each
    value expanded against the variables before it). A missing object or key is an error unless
    marked optional; the kubelet keeps such a pod waiting, and so does the executor."""
    container = the_container(pod)
    env: dict[str, str] = {}
    for source in container.envFrom or []:
        ref = source.configMapRef or source.secretRef
        if ref is None:
            continue
        table = config_maps if source.configMapRef else secrets
        ref_name = str(ref.name)
        if ref_name not in table:
            if ref.optional:
                continue
            raise PodError(f"{'configmap' if source.configMapRef else 'secret'} {ref_name!r} not found")
        for key, value in table[ref_name].items():
            env[f"{source.prefix or ''}{key}"] = value
    for var in container.env or []:
        if var.valueFrom is None:
            env[var.name] = expand(var.value or "", env)
            continue
        value_from = var.valueFrom
        if value_from.fieldRef:
            env[var.name] = _field(pod, value_from.fieldRef.fieldPath)
            continue
        key_ref = value_from.configMapKeyRef or value_from.secretKeyRef
        if key_ref is None:
            raise PodError(
                f"env {var.name!r}: only fieldRef, configMapKeyRef and secretKeyRef work here", permanent=True
            )
        table = config_maps if value_from.configMapKeyRef else secrets
        kind = "configmap" if value_from.configMapKeyRef else "secret"
        key_name = str(key_ref.name)
        if key_name in table and key_ref.key in table[key_name]:
            env[var.name] = table[key_name][key_ref.key]
        elif not key_ref.optional:
            raise PodError(f"{kind} {key_ref.name!r} has no key {key_ref.key!r}")
    return env


def launch(
    pod: Pod,
    volumes: Mapping[str, pathlib.Path],
    scratch: pathlib.Path,
    env: Mapping[str, str],
    base_env: Mapping[str, str],
    roadie: pathlib.Path | None = None,
) -> Launch:
    """The process to start for `pod`: its command and args expanded, every mount path replaced by
    its local folder (in the arguments, the environment and the working directory), `roadie` as the
    command resolved to the one beside the running Python."""
    container = the_container(pod)
    if not container.command:
        raise PodError("no image entrypoint to fall back on here: the container needs a command", permanent=True)
    termination_file = scratch / "termination-log"
    found = mounts(container, volumes, termination_file)
    pod_env = {name: substitute(value, found) for name, value in env.items()}
    argv = [substitute(expand(part, env), found) for part in [*container.command, *(container.args or [])]]
    if argv[0] == "roadie":
        argv[0] = str(roadie or roadie_executable())
    cwd = pathlib.Path(substitute(container.workingDir, found)) if container.workingDir else scratch / "work"
    assert pod.metadata is not None
    full_env = {**base_env, "HOSTNAME": str(pod.metadata.name), "TMPDIR": str(scratch / "tmp"), **pod_env}
    return Launch(argv=argv, env=full_env, cwd=cwd, termination_file=termination_file)


def exit_code(returncode: int) -> int:
    """A process killed by signal N reports -N to Python and 128+N in a container's status."""
    return 128 - returncode if returncode < 0 else returncode


def termination_message(text: bytes, log_tail: bytes, *, failed: bool, fallback_to_logs: bool) -> str:
    """The message the kubelet would report: the file's content, else (FallbackToLogsOnError, on
    failure) the end of the log."""
    message = text[:MAX_MESSAGE_BYTES]
    if not message.strip() and failed and fallback_to_logs:
        lines = log_tail.splitlines(keepends=True)[-FALLBACK_LOG_LINES:]
        message = b"".join(lines)[-FALLBACK_LOG_BYTES:]
    return message.decode(errors="replace")


def timestamp(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(now: str, ready: bool, reason: str | None = None) -> list[dict[str, object]]:
    value = "True" if ready else "False"
    extra = {"reason": reason} if reason else {}
    return [
        {"type": "PodReadyToStartContainers", "status": value, "lastTransitionTime": now},
        {"type": "Initialized", "status": "True", "lastTransitionTime": now},
        {"type": "Ready", "status": value, "lastTransitionTime": now, **extra},
        {"type": "ContainersReady", "status": value, "lastTransitionTime": now, **extra},
    ]


def _container_status(
    container: Container, state: Mapping[str, object], *, ready: bool, pid: int | None
) -> dict[str, object]:
    status: dict[str, object] = {
        "name": container.name,
        "image": container.image or "",
        "imageID": "",
        "ready": ready,
        "started": ready,
        "restartCount": 0,
        "state": state,
    }
    if pid is not None:
        status["containerID"] = f"{CONTAINER_ID_SCHEME}{pid}"
    return status


def running_status(pod: Pod, started: datetime.datetime, pid: int) -> dict[str, object]:
    """A strategic-merge patch of the status: the pod Running, its container started."""
    container = the_container(pod)
    now = timestamp(started)
    return {
        "status": {
            "phase": "Running",
            "startTime": now,
            "conditions": _conditions(now, True),
            "containerStatuses": [_container_status(container, {"running": {"startedAt": now}}, ready=True, pid=pid)],
        }
    }


def waiting_status(pod: Pod, reason: str, message: str) -> dict[str, object]:
    """The pod stays Pending, its container waiting, as the kubelet shows a config error."""
    container = the_container(pod)
    waiting = _container_status(container, {"waiting": {"reason": reason, "message": message}}, ready=False, pid=None)
    return {"status": {"phase": "Pending", "containerStatuses": [waiting]}}


def terminated_status(
    pod: Pod,
    *,
    started: datetime.datetime,
    finished: datetime.datetime,
    code: int,
    message: str = "",
    pid: int | None = None,
    signal_number: int | None = None,
    reason: str | None = None,
    pod_reason: str | None = None,
    pod_message: str | None = None,
) -> dict[str, object]:
    """A strategic-merge patch of the status: Succeeded on exit code 0, else Failed."""
    container = the_container(pod)
    phase = "Succeeded" if code == 0 and pod_reason is None else "Failed"
    terminated: dict[str, object] = {
        "exitCode": code,
        "reason": reason or ("Completed" if code == 0 else "Error"),
        "startedAt": timestamp(started),
        "finishedAt": timestamp(finished),
    }
    if message:
        terminated["message"] = message
    if signal_number:
        terminated["signal"] = signal_number
    now = timestamp(finished)
    status: dict[str, object] = {
        "phase": phase,
        "startTime": timestamp(started),
        "conditions": _conditions(now, False, "PodCompleted" if phase == "Succeeded" else "PodFailed"),
        "containerStatuses": [_container_status(container, {"terminated": terminated}, ready=False, pid=pid)],
    }
    if pod_reason:
        status["reason"] = pod_reason
        status["message"] = pod_message or ""
    return {"status": status}


def started_by_an_executor(pod: Pod) -> bool:
    """The pod shows a container this executor (an earlier run of it) started."""
    statuses = (pod.status.containerStatuses if pod.status else None) or []
    return any((s.containerID or "").startswith(CONTAINER_ID_SCHEME) for s in statuses)


def finished(pod: Pod) -> bool:
    return pod.status is not None and pod.status.phase in ("Succeeded", "Failed")
