"""Checking that a snapshot still holds what it recorded: `Verified` or `Corrupt`, with reasons.

Two layers, as in JVS: the descriptor against its own checksum (and the `.READY` marker and the
manifest against the descriptor), then the payload: every stored file read back (decompressed
where it was compressed) and hashed, every path present with the recorded type and nothing
else, and the root hash recomputed from what was read. Hashing runs on every core; SHA-256 in
OpenSSL releases the interpreter lock.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os

from roadie.workspace.engine import compression, errors, layout, publish, store, tree

VERIFIED, CORRUPT = "Verified", "Corrupt"
PROBLEMS_KEPT = 50


@dataclasses.dataclass
class Report:
    snapshot_id: str
    problems: list[str] = dataclasses.field(default_factory=list)
    problem_count: int = 0
    files: int = 0
    bytes: int = 0

    @property
    def state(self) -> str:
        return CORRUPT if self.problem_count else VERIFIED

    def add(self, problem: str) -> None:
        self.problem_count += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(problem)

    def as_dict(self) -> dict[str, object]:
        return {"snapshotID": self.snapshot_id, "integrityState": self.state, "problemCount": self.problem_count,
                "problems": self.problems, "fileCount": self.files, "size": self.bytes}  # fmt: skip


def _hash_stored(path: str, entry: tree.Entry) -> tuple[str, int]:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if entry.codec == "none":
            return tree.hash_fd(fd)
        return compression.decompress_fd(fd, None, entry.codec)
    finally:
        os.close(fd)


def verify(lay: layout.Layout, ref: str, *, workers: int = publish.DEFAULT_WORKERS) -> Report:
    snap = store.resolve(lay, ref)
    report = Report(snap.id)
    if snap.damage:
        report.add(snap.damage)
        return report
    try:
        ready = json.loads((snap.path / store.READY).read_bytes())
        if ready.get("descriptorChecksum") != snap.descriptor.get("descriptorChecksum"):
            report.add(".READY names another descriptor checksum")
    except (OSError, ValueError):
        report.add(".READY cannot be read")
    try:
        entries = snap.manifest()
    except errors.CorruptError as error:
        report.add(str(error).removeprefix(f"snapshot {snap.id}: "))
        return report

    recorded = {e.path: e for e in entries}
    found = tree.walk(snap.payload) if snap.payload.is_dir() else tree.Scan()
    present = {path: tree.kind_of(st.st_mode) for path, st in found.items}
    for path in found.skipped:
        report.add(f"{path}: not a file, directory or symlink")
    for path in sorted(present.keys() - recorded.keys()):
        report.add(f"{path}: in the payload but not in the manifest")
    for path in sorted(recorded.keys() - present.keys()):
        report.add(f"{path}: missing from the payload")
    files: list[tree.Entry] = []
    recomputed: dict[str, tuple[str, int]] = {}
    for entry in entries:
        kind = present.get(entry.path)
        if kind is None:
            continue
        if kind != entry.kind:
            report.add(f"{entry.path}: recorded as {entry.kind}, stored as {kind}")
        elif entry.kind == tree.FILE:
            files.append(entry)
        elif entry.kind == tree.LINK:
            target = os.readlink(snap.payload / entry.path)
            recomputed[entry.path] = (tree.hash_link(target), len(os.fsencode(target)))

    def one(entry: tree.Entry) -> tuple[tree.Entry, tuple[str, int] | str]:
        try:
            return entry, _hash_stored(str(snap.payload / entry.path), entry)
        except errors.CorruptError as error:
            return entry, str(error)
        except OSError as error:
            return entry, f"cannot be read ({error.strerror})"

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for entry, result in pool.map(one, files, chunksize=16):
            if isinstance(result, str):
                report.add(f"{entry.path}: {result}")
                continue
            recomputed[entry.path] = result
            report.files += 1
            report.bytes += result[1]
    for entry in entries:
        got = recomputed.get(entry.path)
        if got is not None and got != (entry.digest, entry.size):
            report.add(f"{entry.path}: content does not match its recorded hash")
    rehashed = [
        dataclasses.replace(e, digest=recomputed[e.path][0], size=recomputed[e.path][1]) if e.path in recomputed else e
        for e in entries
        if e.path in present
    ]
    if tree.root_hash(rehashed) != snap.descriptor.get("payloadRootHash"):
        report.add("the payload's root hash does not match the descriptor's")
    return report
