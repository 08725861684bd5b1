"""What a pod needs before its process can start, fetched from the API as the kubelet would.

The executor (`executor.py`) runs a pod's command locally; before that, the objects the pod refers
to must be read: ConfigMaps and Secrets for its environment and volumes, and for each claim the
PersistentVolume the provisioner made, whose folder stands in for the mount. A missing object is
worth waiting for (`PodError`); a volume of a kind with no local folder is not (`permanent`).
"""

from __future__ import annotations

import base64
import os
import pathlib
from collections.abc import Mapping

import lightkube
from lightkube.core.exceptions import ApiError
from lightkube.models.core_v1 import KeyToPath
from lightkube.resources.core_v1 import ConfigMap, PersistentVolume, PersistentVolumeClaim, Pod, Secret

from roadie.devcluster import podexec

#: Variables of this machine a process needs (a container gets them from its image).
INHERITED_ENV = ("PATH", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR")


async def prepare(
    api: lightkube.AsyncClient, pod: Pod, scratch: pathlib.Path, roadie: pathlib.Path | None
) -> podexec.Launch:
    meta = pod.metadata
    assert meta is not None and meta.namespace
    wanted_maps, wanted_secrets = podexec.referenced_objects(pod)
    config_maps = {name: await _config_map(api, meta.namespace, name) for name in wanted_maps}
    secrets = {name: await _secret(api, meta.namespace, name) for name in wanted_secrets}
    env = podexec.environment(
        pod,
        {name: data for name, data in config_maps.items() if data is not None},
        {name: {k: v.decode(errors="replace") for k, v in data.items()} for name, data in secrets.items() if data},
    )
    volumes = await _volumes(api, pod, scratch, config_maps, secrets)
    base = {name: os.environ[name] for name in INHERITED_ENV if name in os.environ}
    tools = str(podexec.roadie_executable().parent)  # `roadie` found from a shell too, as in the image
    base["PATH"] = os.pathsep.join([tools, *(part for part in base.get("PATH", "").split(os.pathsep) if part)])
    base["HOME"] = str(scratch / "home")
    (scratch / "home").mkdir(parents=True, exist_ok=True)
    return podexec.launch(pod, volumes, scratch, env, base, roadie)


async def _config_map(api: lightkube.AsyncClient, namespace: str, name: str) -> dict[str, str] | None:
    try:
        found = await api.get(ConfigMap, name, namespace=namespace)
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise
    return dict(found.data or {})


async def _secret(api: lightkube.AsyncClient, namespace: str, name: str) -> dict[str, bytes] | None:
    try:
        found = await api.get(Secret, name, namespace=namespace)
    except ApiError as error:
        if error.status.code == 404:
            return None
        raise
    return {key: base64.b64decode(value) for key, value in (found.data or {}).items()}


async def _volumes(
    api: lightkube.AsyncClient,
    pod: Pod,
    scratch: pathlib.Path,
    config_maps: Mapping[str, dict[str, str] | None],
    secrets: Mapping[str, dict[str, bytes] | None],
) -> dict[str, pathlib.Path]:
    """Each mounted volume's local folder: a claim's is its volume's, as the provisioner made it."""
    assert pod.spec is not None and pod.metadata is not None
    mounted = {mount.name for mount in podexec.the_container(pod).volumeMounts or []}
    found: dict[str, pathlib.Path] = {}
    for volume in pod.spec.volumes or []:
        if volume.name not in mounted:
            continue
        local = scratch / "volumes" / volume.name
        if volume.persistentVolumeClaim:
            claim = volume.persistentVolumeClaim.claimName
            found[volume.name] = await _claim_folder(api, str(pod.metadata.namespace), claim)
        elif volume.hostPath:
            found[volume.name] = pathlib.Path(volume.hostPath.path)
        elif volume.configMap or volume.secret:
            name = str(volume.configMap.name if volume.configMap else volume.secret.secretName)
            data: Mapping[str, str | bytes] | None = (config_maps if volume.configMap else secrets).get(name)
            optional = (volume.configMap or volume.secret).optional
            if data is None and not optional:
                raise podexec.PodError(f"{'configmap' if volume.configMap else 'secret'} {name!r} not found")
            items = (volume.configMap or volume.secret).items
            write_files(local, data or {}, items)
            found[volume.name] = local
        elif volume.emptyDir is not None or volume.projected is not None or volume.downwardAPI is not None:
            local.mkdir(parents=True, exist_ok=True)  # projected and downward API: an empty folder
            found[volume.name] = local
        else:
            raise podexec.PodError(f"volume {volume.name!r} is of a kind the executor cannot provide", permanent=True)
    return found


async def _claim_folder(api: lightkube.AsyncClient, namespace: str, claim: str) -> pathlib.Path:
    try:
        pvc = await api.get(PersistentVolumeClaim, claim, namespace=namespace)
    except ApiError as error:
        if error.status.code == 404:
            raise podexec.PodError(f"persistentvolumeclaim {claim!r} not found") from error
        raise
    if pvc.spec is None or not pvc.spec.volumeName:
        raise podexec.PodError(f"persistentvolumeclaim {claim!r} is not bound")
    volume = await api.get(PersistentVolume, pvc.spec.volumeName)
    spec = volume.spec
    host = spec.hostPath.path if spec and spec.hostPath else None
    path = host or (spec.local.path if spec and spec.local else None)
    if not path:
        raise podexec.PodError(f"volume {pvc.spec.volumeName!r} has no hostPath or local path", permanent=True)
    return pathlib.Path(path)


def write_files(folder: pathlib.Path, data: Mapping[str, str | bytes], items: list[KeyToPath] | None) -> None:
    """A ConfigMap or Secret volume: a file per key, or per listed item at its path."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [(item.key, item.path) for item in items] if items else [(key, key) for key in data]
    for key, relative in wanted:
        if key not in data:
            continue
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        value = data[key]
        target.write_bytes(value.encode() if isinstance(value, str) else value)
