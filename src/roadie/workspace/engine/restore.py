"""Restoring a snapshot into `main/` (in place) or into `worktrees/<name>/`, whole or not at all.

The target is never written into. The snapshot is materialised beside it in
`.jvs/staging/<rid>/`, then swapped with it in one step, so that at every instant the target is
the complete old tree or the complete new one:
1. an intent record `.jvs/intents/restore-<rid>.json`, state `staging`;
2. the staged tree written (files copied, cloned or decompressed, then each directory's mode,
   owner and mtime set deepest first); for a partial snapshot, the target's files outside the
   snapshot's paths are hard-linked into the stage first, so they stay as they are;
3. one `syncfs`, then the intent moves to state `staged` with the stage's inode number: the
   commit point;
4. the swap: `renameat2(RENAME_EXCHANGE)` exchanges stage and target atomically (where the file
   system lacks it, two renames, target aside then stage in; recovery finishes the pair);
5. the old tree, now at the stage's path, is removed; the head moves; the intent is removed.

Recovery of an intent in state `staging` removes the stage (the target was never touched); in
state `staged` it rolls forward: the target's inode says whether the swap happened, and the
remaining steps are idempotent. Processes that hold the old directory open (a shell whose
working directory is `main/`) keep seeing the old tree until they open `main/` again.
"""

from __future__ import annotations

import concurrent.futures
import os
import pathlib
import stat
from typing import Any

from roadie.workspace.engine import copying, errors, layout, publish, store, tree

STEPS = ("restore-intent", "staging-partial", "staged", "committed", "target-moved", "swapped", "old-removed")


def restore(
    lay: layout.Layout,
    ref: str,
    *,
    worktree: str | None = None,
    sync: bool = True,
    workers: int = publish.DEFAULT_WORKERS,
) -> dict[str, Any]:
    """Replace the target with the snapshot `ref` names; returns what was restored."""
    snap = store.resolve(lay, ref)
    entries = snap.manifest()
    target = lay.payload_root(worktree)
    target.parent.mkdir(parents=True, exist_ok=True)
    rid = layout.new_id()
    started = layout.utc_now()
    stage = lay.staging / rid
    intent_path = lay.intents / f"restore-{rid}.json"
    intent: dict[str, Any] = {
        "operation": "restore",
        "restoreID": rid,
        "snapshotID": snap.id,
        "target": str(target.relative_to(lay.root)),
        "worktree": worktree or layout.MAIN,
        "stage": str(stage.relative_to(lay.root)),
        "state": "staging",
        "stagedIno": None,
        "startedAt": started,
    }
    layout.write_json(intent_path, intent)
    layout.crash_point("restore-intent")

    _stage(lay, snap, entries, target, stage, max(1, workers))
    if sync:
        layout.sync_filesystem(stage)
    layout.crash_point("staged")
    intent.update(state="staged", stagedIno=os.lstat(stage).st_ino)
    layout.write_json(intent_path, intent)
    layout.crash_point("committed")
    _finish(lay, intent, intent_path)
    return {
        "snapshotID": snap.id,
        "target": intent["target"],
        "worktree": intent["worktree"],
        "fileCount": sum(1 for e in entries if e.kind == tree.FILE),
        "size": sum(e.size for e in entries if e.kind == tree.FILE),
        "startedAt": started,
        "completedAt": layout.utc_now(),
    }


def _stage(
    lay: layout.Layout,
    snap: store.Snapshot,
    entries: list[tree.Entry],
    target: pathlib.Path,
    stage: pathlib.Path,
    workers: int,
) -> None:
    owners = os.geteuid() == 0
    partial = snap.partial_paths
    stage.mkdir(0o700)
    kept_dirs: list[tuple[str, os.stat_result]] = []
    if partial is not None and target.is_dir():
        kept_dirs = _link_outside(target, stage, partial)
    dirs = [e for e in entries if e.kind == tree.DIR]
    for entry in dirs:
        path = stage / entry.path
        try:
            existing: os.stat_result | None = os.lstat(path)
        except FileNotFoundError:
            existing = None
        if existing is not None and not stat.S_ISDIR(existing.st_mode):  # the target's file or symlink
            os.unlink(path)
            existing = None
        if existing is None:
            os.mkdir(path, 0o700)
    files = [e for e in entries if e.kind == tree.FILE]
    for entry in entries:
        if entry.kind == tree.LINK:
            os.symlink(entry.target, stage / entry.path)
            copying.set_metadata(str(stage / entry.path), entry, owners=owners)
    reflink = copying.probe_reflink(lay.staging)

    def batch(some: list[tree.Entry]) -> None:
        for entry in some:
            dst = stage / entry.path
            if partial is not None and os.path.lexists(dst):  # a hard link of the target's: replace it
                os.unlink(dst)
            copying.restore_file(str(snap.payload / entry.path), str(dst), entry, reflink=reflink, owners=owners)

    size = max(1, min(64, len(files) // (workers * 4)))
    batches = [files[i : i + size] for i in range(0, len(files), size)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(batch, b) for b in batches]
        for done, future in enumerate(concurrent.futures.as_completed(futures), start=1):
            future.result()
            if done == (len(batches) + 1) // 2:
                layout.crash_point("staging-partial")
    # Directory metadata last and deepest first: writing into a directory changes its mtime, and
    # a read-only directory would refuse the files still to come.
    meta: list[tuple[str, tree.Entry | os.stat_result]] = [(e.path, e) for e in dirs]
    in_snapshot = {e.path for e in dirs}
    meta += [(path, st) for path, st in kept_dirs if path not in in_snapshot]
    for rel, info in sorted(meta, key=lambda item: item[0].count("/"), reverse=True):
        if isinstance(info, tree.Entry):
            copying.set_metadata(str(stage / rel), info, owners=owners)
        else:
            _copy_dir_metadata(stage / rel, info, owners)
    model = target if target.is_dir() else lay.main
    if model.is_dir():
        _copy_dir_metadata(stage, os.lstat(model), owners)
    else:
        os.chmod(stage, 0o755)


def _copy_dir_metadata(path: pathlib.Path, st: os.stat_result, owners: bool) -> None:
    if owners:
        os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, stat.S_IMODE(st.st_mode))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _link_outside(target: pathlib.Path, stage: pathlib.Path, partial: list[str]) -> list[tuple[str, os.stat_result]]:
    """Carry the target's own files outside a partial snapshot's paths into the stage, as hard
    links (the same files, not copies); returns the directories made, for their metadata."""
    scan = tree.walk(target)
    made: list[tuple[str, os.stat_result]] = []
    for path, st in scan.items:
        if tree.covered(path, partial):
            continue
        if stat.S_ISDIR(st.st_mode):
            os.mkdir(stage / path, 0o700)
            made.append((path, st))
        else:
            os.link(target / path, stage / path, follow_symlinks=False)
    for path in scan.skipped:  # sockets, FIFOs, devices: kept as they are too
        if not tree.covered(path, partial):
            os.link(target / path, stage / path, follow_symlinks=False)
    return made


def _finish(lay: layout.Layout, intent: dict[str, Any], intent_path: pathlib.Path) -> None:
    """Steps 4 and 5, idempotent from any point: recovery calls this too."""
    stage = lay.root / intent["stage"]
    aside = stage.with_name(stage.name + ".old")
    target = lay.root / intent["target"]
    try:
        current: int | None = os.lstat(target).st_ino
    except FileNotFoundError:
        current = None
    if current != intent["stagedIno"]:
        if not os.path.lexists(stage):
            raise errors.EngineError(f"restore {intent['restoreID']}: its staged tree is gone and {target} is not it")
        if current is None:
            os.rename(stage, target)
        elif not layout.exchange(stage, target):
            os.rename(target, aside)
            layout.crash_point("target-moved")
            os.rename(stage, target)
    layout.crash_point("swapped")
    layout.remove_tree(stage)
    layout.remove_tree(aside)
    layout.crash_point("old-removed")
    worktree = intent.get("worktree") or layout.MAIN
    layout.set_head(lay, None if worktree == layout.MAIN else worktree, intent["snapshotID"])
    intent_path.unlink()


def recover(lay: layout.Layout) -> list[str]:
    """Undo a restore that had not committed; finish one that had."""
    done: list[str] = []
    for intent_path in sorted(lay.intents.glob("restore-*.json")):
        try:
            intent = layout.read_json(intent_path)
        except ValueError:
            intent_path.unlink()
            continue
        if intent.get("state") == "staged":
            _finish(lay, intent, intent_path)
            done.append(f"restore of {intent['snapshotID']} into {intent['target']} was committed; finished")
        else:
            stage = lay.root / intent["stage"]
            layout.remove_tree(stage)
            intent_path.unlink()
            done.append(f"restore of {intent['snapshotID']} into {intent['target']} was interrupted; undone")
    for leftover in lay.staging.iterdir():
        layout.remove_tree(leftover)
        done.append(f"removed the leftover {leftover.name} from staging")
    return done
