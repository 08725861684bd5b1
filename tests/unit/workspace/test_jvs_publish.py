"""Taking snapshots on real files: the layout and the descriptor, the hard links to the parent's
copy for unchanged files (and only for them), partial paths, tags and notes, what is skipped."""

from __future__ import annotations

import json
import os
import pathlib
import re

import jvs_helpers
import pytest

from roadie.workspace.engine import errors, layout, store, tree, verify, volume


def _payload(root: pathlib.Path, snapshot_id: str) -> pathlib.Path:
    return root / ".jvs" / "snapshots" / snapshot_id / "payload"


def test_a_snapshot_holds_the_tree_and_describes_it(populated: pathlib.Path) -> None:
    d = jvs_helpers.snapshot(populated, note="before v2", tags=["release", "pre-deploy"])
    assert re.fullmatch(r"[0-9]{13}-[0-9a-f]{8}", d["snapshotID"])
    snap_dir = populated / ".jvs" / "snapshots" / d["snapshotID"]
    assert sorted(p.name for p in snap_dir.iterdir()) == [".READY", "descriptor.json", "manifest.json", "payload"]
    main_tree = jvs_helpers.tree(populated / "main")
    stored = jvs_helpers.tree(snap_dir / "payload")
    files = {k: v[:2] for k, v in main_tree.items() if v[0] == "f"}
    assert {k: v[:2] for k, v in stored.items() if v[0] == "f"} == files
    assert stored["latest.csv"] == ("l", "data/train.csv")
    assert d["note"] == "before v2" and d["tags"] == ["pre-deploy", "release"]
    assert d["fileCount"] == 5 and d["symlinkCount"] == 1 and d["dirCount"] == 4  # data empty models models/v1
    assert d["size"] == sum(len(v[1]) for v in main_tree.values() if v[0] == "f") == d["storedSize"]
    assert d["parentID"] is None and d["engine"] == "copy" and d["compression"] == {"type": "none", "level": 6}
    assert d["descriptorChecksum"] == store.checksum(d)
    ready = json.loads((snap_dir / ".READY").read_text())
    assert ready["descriptorChecksum"] == d["descriptorChecksum"] and ready["payloadRootHash"] == d["payloadRootHash"]
    assert layout.head(layout.Layout(populated)) == d["snapshotID"]
    assert jvs_helpers.leftovers(populated) == []


def test_the_root_hash_covers_paths_modes_sizes_and_contents_not_times(populated: pathlib.Path) -> None:
    first = jvs_helpers.snapshot(populated)["payloadRootHash"]
    os.utime(populated / "main" / "README.md", (1, 1))
    assert jvs_helpers.snapshot(populated)["payloadRootHash"] == first
    (populated / "main" / "run.sh").chmod(0o700)
    moded = jvs_helpers.snapshot(populated)["payloadRootHash"]
    assert moded != first
    (populated / "main" / "README.md").write_text("# a workspacE\n")  # same size, other bytes
    assert jvs_helpers.snapshot(populated)["payloadRootHash"] not in (first, moded)


def test_unchanged_files_are_hard_links_to_the_parents_copy(populated: pathlib.Path) -> None:
    first = jvs_helpers.snapshot(populated)
    (populated / "main" / "data" / "train.csv").write_text("x,y\n9,9\n")
    (populated / "main" / "new.txt").write_text("new")
    second = jvs_helpers.snapshot(populated)
    assert second["parentID"] == first["snapshotID"]
    one, two = _payload(populated, first["snapshotID"]), _payload(populated, second["snapshotID"])
    for unchanged in ("README.md", "data/big.bin", "models/v1/weights.bin", "run.sh"):
        assert os.stat(one / unchanged).st_ino == os.stat(two / unchanged).st_ino, unchanged
        assert os.stat(two / unchanged).st_nlink == 2
    assert os.stat(one / "data/train.csv").st_ino != os.stat(two / "data/train.csv").st_ino
    assert (two / "data/train.csv").read_text() == "x,y\n9,9\n"
    assert second["linkedFiles"] == 4
    assert second["storedSize"] == len("x,y\n9,9\n") + len("new")
    with volume.opened(populated, exclusive=False) as lay:
        assert verify.verify(lay, first["snapshotID"]).state == verify.VERIFIED
        assert verify.verify(lay, second["snapshotID"]).state == verify.VERIFIED


def test_same_size_and_mtime_but_new_content_is_copied_not_linked(populated: pathlib.Path) -> None:
    first = jvs_helpers.snapshot(populated)
    path = populated / "main" / "README.md"
    before = os.stat(path)
    path.write_text("# A WORKSPACE\n")
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # only the ctime tells
    second = jvs_helpers.snapshot(populated)
    one, two = _payload(populated, first["snapshotID"]), _payload(populated, second["snapshotID"])
    assert os.stat(one / "README.md").st_ino != os.stat(two / "README.md").st_ino
    assert (two / "README.md").read_text() == "# A WORKSPACE\n"


def test_after_a_restore_unchanged_files_are_recognised_by_their_hash(populated: pathlib.Path) -> None:
    first = jvs_helpers.snapshot(populated)
    jvs_helpers.restore_to(populated, first["snapshotID"])  # new inodes, new ctimes, same bytes
    second = jvs_helpers.snapshot(populated)
    assert second["linkedFiles"] == first["fileCount"] and second["storedSize"] == 0
    one, two = _payload(populated, first["snapshotID"]), _payload(populated, second["snapshotID"])
    assert os.stat(one / "data/big.bin").st_ino == os.stat(two / "data/big.bin").st_ino


def test_a_file_that_changes_mode_is_stored_again(populated: pathlib.Path) -> None:
    first = jvs_helpers.snapshot(populated)
    (populated / "main" / "README.md").chmod(0o600)
    second = jvs_helpers.snapshot(populated)
    one, two = _payload(populated, first["snapshotID"]), _payload(populated, second["snapshotID"])
    assert os.stat(one / "README.md").st_ino != os.stat(two / "README.md").st_ino
    assert second["linkedFiles"] == first["fileCount"] - 1


def test_partial_paths_snapshot_only_those_paths_and_their_parents(populated: pathlib.Path) -> None:
    d = jvs_helpers.snapshot(populated, partial_paths=["models/v1", "README.md", "./models/v1/weights.bin"])
    stored = jvs_helpers.tree(_payload(populated, d["snapshotID"]))
    assert sorted(stored) == ["README.md", "models", "models/v1", "models/v1/weights.bin"]
    assert d["partialPaths"] == ["README.md", "models/v1"] and d["fileCount"] == 2
    with volume.opened(populated, exclusive=False) as lay:
        assert verify.verify(lay, d["snapshotID"]).state == verify.VERIFIED


@pytest.mark.parametrize(
    ("paths", "message"),
    [(["/etc"], "relative"), (["../x"], "leaves"), (["nowhere"], "does not exist"), (["README.md/x"], "directory")],
)
def test_bad_partial_paths_are_refused_before_anything_is_written(
    populated: pathlib.Path, paths: list[str], message: str
) -> None:
    with pytest.raises(errors.InvalidInputError, match=message):
        jvs_helpers.snapshot(populated, partial_paths=paths)
    assert jvs_helpers.leftovers(populated) == []
    assert not any((populated / ".jvs" / "snapshots").iterdir())


@pytest.mark.parametrize("bad", ["has space", "slash/no", "", "ünïcode"])
def test_tags_outside_the_pattern_are_refused(populated: pathlib.Path, bad: str) -> None:
    with pytest.raises(errors.InvalidInputError, match="tag"):
        jvs_helpers.snapshot(populated, tags=["ok", bad])
    assert not any((populated / ".jvs" / "snapshots").iterdir())


def test_sockets_and_fifos_are_skipped_and_listed(populated: pathlib.Path) -> None:
    os.mkfifo(populated / "main" / "pipe")
    d = jvs_helpers.snapshot(populated)
    assert d["skipped"] == ["pipe"] and d["skippedCount"] == 1
    assert not (_payload(populated, d["snapshotID"]) / "pipe").exists()


def test_a_snapshot_of_a_worktree(populated: pathlib.Path) -> None:
    first = jvs_helpers.snapshot(populated)
    jvs_helpers.restore_to(populated, first["snapshotID"], worktree="exp")
    (populated / "worktrees" / "exp" / "README.md").write_text("experiment")
    d = jvs_helpers.snapshot(populated, worktree="exp")
    assert d["source"] == "exp"
    assert (_payload(populated, d["snapshotID"]) / "README.md").read_text() == "experiment"
    assert layout.head(layout.Layout(populated), "exp") == d["snapshotID"]
    assert layout.head(layout.Layout(populated)) == first["snapshotID"]


def test_the_manifest_round_trips_paths_that_are_not_utf8(root: pathlib.Path) -> None:
    name = os.fsdecode(b"caf\xe9.txt")
    (root / "main" / name).write_text("latin-1 name")
    d = jvs_helpers.snapshot(root)
    with volume.opened(root, exclusive=False) as lay:
        entries = store.load(lay, d["snapshotID"]).manifest()
        assert [e.path for e in entries] == [name]
        assert verify.verify(lay, d["snapshotID"]).state == verify.VERIFIED
    assert entries[0].record().endswith(b"caf\xe9.txt\0")
    assert tree.root_hash(entries) == d["payloadRootHash"]
