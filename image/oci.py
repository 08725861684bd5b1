"""An OCI image layout packed from a root filesystem, with no container engine.

The image is built where no Docker or podman runs, so the packing is done here: one gzip layer
tar, a config, a manifest and an index, as the OCI image-spec lays them out. The layer is
deterministic (entries in byte order of their paths, one mtime, numeric owners only, no host user
names, gzip without a name or a time), so the same tree always packs to the same digest; the JSON
documents are canonical (sorted keys, no spaces) for the same reason.
"""

from __future__ import annotations

import dataclasses
import datetime
import gzip
import hashlib
import json
import os
import pathlib
import tarfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any, Protocol, cast

from image import dockerfile

LAYOUT_VERSION = "1.0.0"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
#: What a container runtime provides itself: these directories ship empty.
RUNTIME_MOUNTS = ("dev", "proc", "sys")


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclasses.dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    annotations: tuple[tuple[str, str], ...] = ()
    platform: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, media_type: str, data: bytes, **extra: Any) -> Descriptor:
        return cls(media_type, digest(data), len(data), **extra)

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            result["annotations"] = dict(self.annotations)
        if self.platform:
            result["platform"] = dict(self.platform)
        return result


@dataclasses.dataclass(frozen=True)
class Layer:
    """A packed layer: `diff_id` names the tar, `digest` and `size` the gzip blob."""

    diff_id: str
    digest: str
    size: int
    entries: int


def created(epoch: int) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def config(
    runtime: dockerfile.Runtime,
    diff_ids: Sequence[str],
    *,
    epoch: int,
    architecture: str = "amd64",
    history: str = "",
) -> dict[str, Any]:
    """The image config (OCI image-spec `config.md`), its runtime part taken from the Dockerfile."""
    settings: dict[str, Any] = {
        "User": runtime.user,
        "Env": runtime.env_list(),
        "Entrypoint": list(runtime.entrypoint),
        "Cmd": list(runtime.cmd),
        "WorkingDir": runtime.working_dir,
        "Labels": runtime.label_map(),
    }
    return {
        "created": created(epoch),
        "architecture": architecture,
        "os": "linux",
        "config": {key: value for key, value in settings.items() if value},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [{"created": created(epoch), "created_by": history or "image/build.py"} for _ in diff_ids],
    }


def manifest(
    config_descriptor: Descriptor, layers: Sequence[Descriptor], annotations: Mapping[str, str]
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config_descriptor.to_json(),
        "layers": [layer.to_json() for layer in layers],
    }
    if annotations:
        result["annotations"] = dict(annotations)
    return result


def index(manifests: Sequence[Descriptor]) -> dict[str, Any]:
    return {"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": [m.to_json() for m in manifests]}


def runtime_mount(relative: str) -> bool:
    """Whether `relative` lies inside a directory the container runtime mounts over."""
    top, _, rest = relative.partition("/")
    return top in RUNTIME_MOUNTS and bool(rest)


def walk(root: pathlib.Path, skip: Callable[[str], bool] = runtime_mount) -> Iterator[str]:
    """Every path under `root` (relative, '/'-separated), parents before children, siblings in
    byte order; symlinks are listed, never followed."""

    def visit(relative: str) -> Iterator[str]:
        with os.scandir(root / relative if relative else root) as scan:
            entries = sorted(scan, key=lambda entry: os.fsencode(entry.name))
        for entry in entries:
            child = f"{relative}/{entry.name}" if relative else entry.name
            if skip(child):
                continue
            yield child
            if entry.is_dir(follow_symlinks=False):
                yield from visit(child)

    return visit("")


def _normalise(info: tarfile.TarInfo, epoch: int) -> tarfile.TarInfo:
    info.mtime = epoch
    info.uname = info.gname = ""
    if info.isdir() or info.issym() or info.islnk():
        info.size = 0
    return info


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class _Hashing:
    """A write-only stream that hashes and counts what passes through to `sink`."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        self.sink.flush()

    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def write_layer(
    root: pathlib.Path, out: IO[bytes], *, epoch: int, level: int = 6, skip: Callable[[str], bool] = runtime_mount
) -> Layer:
    """Pack `root` as one gzip tar layer into `out`; hard links stay links, owners stay numeric."""
    compressed = _Hashing(out)
    entries = 0
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, compresslevel=level, mtime=0) as gz:
        plain = _Hashing(gz)
        with tarfile.open(fileobj=cast(IO[bytes], plain), mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for relative in walk(root, skip):
                path = root / relative
                info = tar.gettarinfo(str(path), arcname=relative)
                if info is None:  # a socket: nothing a container could use
                    continue
                _normalise(info, epoch)
                if info.isreg():
                    with path.open("rb") as handle:
                        tar.addfile(info, handle)
                else:
                    tar.addfile(info)
                entries += 1
    return Layer(diff_id=plain.digest(), digest=compressed.digest(), size=compressed.size, entries=entries)


def _write_blob(blobs: pathlib.Path, data: bytes) -> str:
    name = digest(data)
    (blobs / name.removeprefix("sha256:")).write_bytes(data)
    return name


def write_layout(
    directory: pathlib.Path,
    *,
    layer_file: pathlib.Path,
    layer: Layer,
    runtime: dockerfile.Runtime,
    epoch: int,
    ref_name: str,
    annotations: Mapping[str, str],
    architecture: str = "amd64",
) -> Descriptor:
    """Lay out the image under `directory` (moving `layer_file` into its blobs); the manifest's
    descriptor, as index.json names it, is returned."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    layer_file.replace(blobs / layer.digest.removeprefix("sha256:"))
    layer_descriptor = Descriptor(LAYER_TYPE, layer.digest, layer.size)
    config_data = canonical(config(runtime, [layer.diff_id], epoch=epoch, architecture=architecture))
    _write_blob(blobs, config_data)
    manifest_data = canonical(manifest(Descriptor.of(CONFIG_TYPE, config_data), [layer_descriptor], annotations))
    _write_blob(blobs, manifest_data)
    manifest_descriptor = Descriptor.of(
        MANIFEST_TYPE,
        manifest_data,
        annotations=((REF_NAME, ref_name),),
        platform=(("architecture", architecture), ("os", "linux")),
    )
    (directory / "oci-layout").write_bytes(canonical({"imageLayoutVersion": LAYOUT_VERSION}))
    (directory / "index.json").write_bytes(canonical(index([manifest_descriptor])))
    return manifest_descriptor
