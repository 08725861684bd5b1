"""Published snapshots: reading their descriptors, listing them, and finding one by ID, tag or
unique ID prefix.

A snapshot is visible exactly when `.jvs/snapshots/<id>/` exists under its final name (a rename
is its last step) and holds its `.READY` marker; nothing else is ever listed. The descriptor's
checksum is SHA-256 over its canonical JSON (sorted keys, no spaces) without the checksum itself.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import pathlib
from typing import Any

from roadie.workspace.engine import errors, layout, tree

DESCRIPTOR = "descriptor.json"
MANIFEST = "manifest.json"
READY = ".READY"
PAYLOAD = "payload"


def checksum(descriptor: dict[str, Any]) -> str:
    body = {k: v for k, v in descriptor.items() if k != "descriptorChecksum"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A published snapshot as found on the volume; `damage` says why its descriptor cannot be read."""

    id: str
    path: pathlib.Path
    descriptor: dict[str, Any]
    damage: str = ""

    @property
    def payload(self) -> pathlib.Path:
        return self.path / PAYLOAD

    @property
    def tags(self) -> list[str]:
        return list(self.descriptor.get("tags") or [])

    @property
    def created_at(self) -> datetime.datetime:
        text = self.descriptor.get("createdAt")
        if isinstance(text, str):
            return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
        return layout.id_time(self.id)

    @property
    def partial_paths(self) -> list[str] | None:
        return self.descriptor.get("partialPaths") or None

    def manifest(self) -> list[tree.Entry]:
        """The manifest, after checking it against the descriptor (a manifest edited to match
        tampered files would otherwise pass)."""
        if self.damage:
            raise errors.CorruptError(f"snapshot {self.id}: {self.damage}")
        try:
            data = (self.path / MANIFEST).read_bytes()
        except FileNotFoundError as error:
            raise errors.CorruptError(f"snapshot {self.id}: its manifest is missing") from error
        if hashlib.sha256(data).hexdigest() != self.descriptor.get("manifestChecksum"):
            raise errors.CorruptError(f"snapshot {self.id}: its manifest does not match the descriptor's checksum")
        try:
            return tree.load_manifest(data)
        except (ValueError, KeyError, TypeError) as error:
            raise errors.CorruptError(f"snapshot {self.id}: its manifest cannot be read ({error})") from error


def load(lay: layout.Layout, snapshot_id: str) -> Snapshot:
    path = lay.snapshot_dir(snapshot_id)
    if not layout.ID_PATTERN.fullmatch(snapshot_id) or not (path / READY).is_file():
        raise errors.NotFoundError(f"no snapshot {snapshot_id!r}")
    try:
        descriptor = json.loads((path / DESCRIPTOR).read_bytes())
    except (OSError, ValueError) as error:
        return Snapshot(snapshot_id, path, {}, damage=f"its descriptor cannot be read ({error})")
    if not isinstance(descriptor, dict):
        return Snapshot(snapshot_id, path, {}, damage="its descriptor is not an object")
    if descriptor.get("descriptorChecksum") != checksum(descriptor):
        return Snapshot(snapshot_id, path, descriptor, damage="its descriptor does not match its checksum")
    return Snapshot(snapshot_id, path, descriptor)


def all_snapshots(lay: layout.Layout) -> list[Snapshot]:
    """Every published snapshot, oldest first."""
    found = []
    for child in lay.snapshots.iterdir():
        if layout.ID_PATTERN.fullmatch(child.name) and (child / READY).is_file():
            found.append(load(lay, child.name))
    return sorted(found, key=lambda s: (int(s.id.split("-")[0]), s.id))


def resolve(lay: layout.Layout, ref: str) -> Snapshot:
    """An exact ID, else the newest snapshot carrying `ref` as a tag, else the one snapshot whose
    ID starts with `ref`; an ambiguous prefix is refused with the candidates named."""
    ref = ref.strip()
    if not ref:
        raise errors.InvalidInputError("give a snapshot ID, tag or ID prefix")
    snapshots = all_snapshots(lay)
    for snap in snapshots:
        if snap.id == ref:
            return snap
    tagged = [s for s in snapshots if ref in s.tags]
    if tagged:
        return tagged[-1]
    matches = [s for s in snapshots if s.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(s.id for s in matches[:10])
        raise errors.AmbiguousError(f"{ref!r} matches {len(matches)} snapshots ({names}): give more of the ID")
    raise errors.NotFoundError(f"no snapshot has the ID, tag or ID prefix {ref!r}")


def summary(snap: Snapshot) -> dict[str, Any]:
    """The fields a caller reports (a termination message, `list --json`)."""
    d = snap.descriptor
    keys = ("snapshotID", "parentID", "createdAt", "completedAt", "size", "storedSize", "fileCount", "engine",
            "compression", "tags", "note", "partialPaths", "descriptorChecksum", "payloadRootHash")  # fmt: skip
    out = {k: d.get(k) for k in keys if k in d}
    out["snapshotID"] = snap.id
    if snap.damage:
        out["damage"] = snap.damage
    return out
