"""Taking a snapshot, published atomically: it is either complete and visible, or not there.

The steps, each a crash point a test kills the process at (`STEPS`):
1. an intent record `.jvs/intents/snapshot-<id>.json` (written atomically);
2. the payload copied into `.jvs/snapshots/<id>.tmp/payload/`, each file hashed as it is read,
   or hard-linked to the parent snapshot's stored copy when it has not changed;
3. the manifest, then the descriptor (root hash, checksums, parent, note, tags, engine, sizes,
   compression), then the `.READY` marker, all inside the `.tmp` directory;
4. one `syncfs` so that everything written is on disk before it becomes visible;
5. the rename of `<id>.tmp` to `<id>`: the single step that publishes;
6. the head of the payload root moved to the new ID, and the intent removed.

Listing only ever shows `<id>` directories holding `.READY`, so a run killed before step 5 left
nothing visible, and `recover()` (run under the lock before every mutating command) removes the
`.tmp` directory and the intent; killed after it, recovery only finishes step 6.

The parent is the payload root's head (what it was last taken as or restored from), else its
newest snapshot; `payload` says when a file counts as unchanged since then.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any

from roadie.workspace.engine import compression, copying, errors, layout, payload, store, tree

STEPS = ("intent-written", "payload-partial", "payload-copied", "manifest-written", "descriptor-written",
         "ready-written", "renamed", "head-updated")  # fmt: skip
DEFAULT_WORKERS = min(8, 2 * (os.cpu_count() or 2))
SKIPPED_LISTED = 20


@dataclasses.dataclass
class Options:
    """What to snapshot and how; the defaults are the Snapshot kind's."""

    worktree: str | None = None  # the payload root: main/ by default
    note: str = ""
    tags: Sequence[str] = ()
    partial_paths: Sequence[str] | None = None
    engine: str = "copy"
    codec: str = "none"
    level: int = compression.DEFAULT_LEVEL
    parent: str | None = None  # a reference; default: the payload root's head, else its newest snapshot
    sync: bool = True
    workers: int = DEFAULT_WORKERS


def _parent(lay: layout.Layout, options: Options, source_name: str) -> store.Snapshot | None:
    if options.parent:
        return store.resolve(lay, options.parent)
    head = layout.head(lay, options.worktree)
    if head:
        try:
            snap = store.load(lay, head)
            if not snap.damage:
                return snap
        except errors.NotFoundError:
            pass
    same_source = [s for s in store.all_snapshots(lay) if s.descriptor.get("source") == source_name and not s.damage]
    return same_source[-1] if same_source else None


def _describe(
    snapshot_id: str,
    created_at: str,
    options: Options,
    parent: store.Snapshot | None,
    run: payload.Run,
    entries: list[tree.Entry],
    scan: tree.Scan,
    partial: list[str] | None,
    tags: list[str],
) -> dict[str, Any]:
    """The descriptor's fields but its checksums."""
    files = [e for e in entries if e.kind == tree.FILE]
    how = run.how
    return {
        "formatVersion": layout.FORMAT_VERSION,
        "snapshotID": snapshot_id,
        "parentID": parent.id if parent else None,
        "source": options.worktree or layout.MAIN,
        "createdAt": created_at,
        "completedAt": layout.utc_now(),
        "note": options.note,
        "tags": tags,
        "partialPaths": partial or [],
        "engine": options.engine,
        "reflink": how.reflink,
        "compression": {"type": how.codec, "level": how.level},
        "fileCount": len(files),
        "dirCount": sum(1 for e in entries if e.kind == tree.DIR),
        "symlinkCount": sum(1 for e in entries if e.kind == tree.LINK),
        "size": sum(e.size for e in files),
        "storedSize": 0 if how.juicefs else sum(e.stored for e in files) - run.linked_bytes,
        "linkedFiles": run.linked,
        "skipped": scan.skipped[:SKIPPED_LISTED],
        "skippedCount": len(scan.skipped),
        "payloadRootHash": tree.root_hash(entries),
    }


def _write_metadata(tmp: pathlib.Path, descriptor: dict[str, Any], entries: list[tree.Entry]) -> dict[str, Any]:
    """Manifest, descriptor, then `.READY`, each a crash point; the descriptor gains its checksums."""
    manifest = tree.dump_manifest(sorted(entries, key=lambda e: os.fsencode(e.path)))
    (tmp / store.MANIFEST).write_bytes(manifest)
    layout.crash_point("manifest-written")
    descriptor["manifestChecksum"] = hashlib.sha256(manifest).hexdigest()
    descriptor["descriptorChecksum"] = store.checksum(descriptor)
    (tmp / store.DESCRIPTOR).write_bytes(_json(descriptor))
    layout.crash_point("descriptor-written")
    ready = {k: descriptor[k] for k in ("snapshotID", "createdAt", "engine", "descriptorChecksum", "payloadRootHash")}
    (tmp / store.READY).write_bytes(_json(ready))
    layout.crash_point("ready-written")
    return descriptor


def _build(
    options: Options,
    tmp: pathlib.Path,
    run: payload.Run,
    parent: store.Snapshot | None,
    partial: list[str] | None,
    tags: list[str],
    snapshot_id: str,
    created_at: str,
) -> dict[str, Any]:
    """Steps 2-4: everything inside `<id>.tmp`, ready to be renamed."""
    if parent is not None:
        try:
            run.parent_entries = {e.path: e for e in parent.manifest()}
            run.parent_payload = parent.payload
        except errors.CorruptError:
            pass  # a damaged parent is not linked to: everything is copied afresh
    workers = max(1, options.workers)
    if run.how.juicefs:
        entries, scan = payload.clone_tree(run, partial, workers)
    else:
        run.payload.mkdir()
        entries, scan = payload.copy_tree(run, partial, workers)
    layout.crash_point("payload-copied")
    described = _describe(snapshot_id, created_at, options, parent, run, entries, scan, partial, tags)
    descriptor = _write_metadata(tmp, described, entries)
    if options.sync:
        layout.sync_filesystem(tmp)
    return descriptor


def snapshot(lay: layout.Layout, options: Options) -> dict[str, Any]:
    """Take and publish one snapshot; returns its descriptor."""
    tags = sorted({layout.check_tag(t) for t in options.tags})
    partial = tree.normalize_paths(options.partial_paths)
    codec, level = compression.check(options.codec, options.level)
    how = copying.plan(options.engine, lay.jvs, codec, level)
    source = lay.payload_root(options.worktree)
    source_name = options.worktree or layout.MAIN
    if not source.is_dir():
        raise errors.NotFoundError(f"{source} does not exist: nothing to snapshot")
    parent = _parent(lay, options, source_name)

    snapshot_id = layout.new_id()
    created_at = layout.utc_now()
    intent = lay.intents / f"snapshot-{snapshot_id}.json"
    record = {"operation": "snapshot", "snapshotID": snapshot_id, "source": source_name, "startedAt": created_at}
    layout.write_json(intent, record, sync=options.sync)  # recovery sweeps *.tmp even without it
    layout.crash_point("intent-written")

    tmp = lay.snapshots / f"{snapshot_id}.tmp"
    try:
        tmp.mkdir()
        run = payload.Run(source, tmp / store.PAYLOAD, how)
        descriptor = _build(options, tmp, run, parent, partial, tags, snapshot_id, created_at)
    except BaseException:
        layout.remove_tree(tmp)  # a failure (not a kill): leave nothing for recovery to find
        intent.unlink(missing_ok=True)
        raise
    os.rename(tmp, lay.snapshot_dir(snapshot_id))
    if options.sync:
        layout.fsync_dir(lay.snapshots)
    layout.crash_point("renamed")
    layout.set_head(lay, options.worktree, snapshot_id, sync=options.sync)
    layout.crash_point("head-updated")
    intent.unlink()
    return descriptor


def _json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True).encode() + b"\n"


def recover(lay: layout.Layout) -> list[str]:
    """Finish or undo what an interrupted snapshot left; returns what was done, for the log."""
    done: list[str] = []
    for intent in sorted(lay.intents.glob("snapshot-*.json")):
        try:
            record = layout.read_json(intent)
        except ValueError:
            record = {}
        snapshot_id = record.get("snapshotID") or intent.stem.removeprefix("snapshot-")
        final = lay.snapshot_dir(snapshot_id)
        if (final / store.READY).is_file():
            source = record.get("source") or layout.MAIN
            layout.set_head(lay, None if source == layout.MAIN else source, snapshot_id)
            done.append(f"snapshot {snapshot_id} was published; its head update finished")
        else:
            layout.remove_tree(lay.snapshots / f"{snapshot_id}.tmp")
            done.append(f"snapshot {snapshot_id} was interrupted before publishing; its partial copy removed")
        intent.unlink()
    for leftover in lay.snapshots.glob("*.tmp"):
        layout.remove_tree(leftover)
        done.append(f"removed the unfinished {leftover.name}")
    for part in lay.intents.glob("*.part"):
        part.unlink()
    return done
