"""Restoring on real files: by ID, by tag (its newest snapshot), by unique prefix (an ambiguous one
refused), in place (main/ replaced as a whole, with modes, times and symlinks) or into a
worktree, and a partial snapshot replacing only its own paths."""

from __future__ import annotations

import os
import pathlib

import jvs_helpers
import pytest

from roadie.workspace.engine import errors, layout, store, volume


def _edit(main: pathlib.Path) -> None:
    jvs_helpers.write(main, {"README.md": "rewritten", "scratch/tmp.txt": "junk"})
    (main / "data" / "big.bin").unlink()
    (main / "run.sh").chmod(0o600)


def test_restore_in_place_brings_back_the_tree_byte_for_byte(populated: pathlib.Path) -> None:
    main = populated / "main"
    os.utime(main / "README.md", ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    original = jvs_helpers.tree(main)
    snap = jvs_helpers.snapshot(populated)["snapshotID"]
    _edit(main)
    result = jvs_helpers.restore_to(populated, snap)
    assert jvs_helpers.tree(main) == original  # contents, modes, mtimes to the nanosecond, symlinks
    assert not (main / "scratch").exists()
    assert result["target"] == "main" and result["fileCount"] == 5
    assert layout.head(layout.Layout(populated)) == snap
    assert jvs_helpers.leftovers(populated) == []


def test_a_restored_file_is_a_copy_not_the_snapshots_inode(populated: pathlib.Path) -> None:
    snap = jvs_helpers.snapshot(populated)["snapshotID"]
    jvs_helpers.restore_to(populated, snap)
    stored = populated / ".jvs" / "snapshots" / snap / "payload" / "README.md"
    assert os.stat(populated / "main" / "README.md").st_ino != os.stat(stored).st_ino
    (populated / "main" / "README.md").write_text("edited after restore")
    assert stored.read_text() == "# a workspace\n"


def test_restore_by_tag_takes_the_newest_snapshot_with_it(populated: pathlib.Path) -> None:
    jvs_helpers.snapshot(populated, tags=["nightly"])
    (populated / "main" / "README.md").write_text("second")
    second = jvs_helpers.snapshot(populated, tags=["nightly"])["snapshotID"]
    (populated / "main" / "README.md").write_text("third")
    jvs_helpers.snapshot(populated)
    result = jvs_helpers.restore_to(populated, "nightly")
    assert result["snapshotID"] == second
    assert (populated / "main" / "README.md").read_text() == "second"


def test_restore_by_unique_prefix_and_refusal_of_an_ambiguous_one(populated: pathlib.Path) -> None:
    first = jvs_helpers.snapshot(populated)["snapshotID"]
    (populated / "main" / "README.md").write_text("second")
    second = jvs_helpers.snapshot(populated)["snapshotID"]
    unique = next(i for i in range(1, len(first)) if first[:i] != second[:i])
    assert jvs_helpers.restore_to(populated, first[:unique])["snapshotID"] == first
    assert (populated / "main" / "README.md").read_text() == "# a workspace\n"
    common = first[: unique - 1]  # the part both IDs share
    with pytest.raises(errors.AmbiguousError, match="2 snapshots") as raised:
        jvs_helpers.restore_to(populated, common)
    assert first in str(raised.value) and second in str(raised.value)
    assert (populated / "main" / "README.md").read_text() == "# a workspace\n"


def test_an_unknown_reference_is_not_found(populated: pathlib.Path) -> None:
    jvs_helpers.snapshot(populated)
    with pytest.raises(errors.NotFoundError, match="no-such-tag"):
        jvs_helpers.restore_to(populated, "no-such-tag")


def test_restore_into_a_worktree_leaves_main_alone(populated: pathlib.Path) -> None:
    original = jvs_helpers.tree(populated / "main")
    snap = jvs_helpers.snapshot(populated)["snapshotID"]
    _edit(populated / "main")
    edited = jvs_helpers.tree(populated / "main")
    result = jvs_helpers.restore_to(populated, snap, worktree="test-branch")
    assert result["target"] == "worktrees/test-branch"
    assert jvs_helpers.tree(populated / "worktrees" / "test-branch") == original
    assert jvs_helpers.tree(populated / "main") == edited
    lay = layout.Layout(populated)
    assert layout.head(lay, "test-branch") == snap
    jvs_helpers.restore_to(populated, snap, worktree="test-branch")  # again: replaced as a whole
    assert jvs_helpers.tree(populated / "worktrees" / "test-branch") == original


@pytest.mark.parametrize("name", ["../escape", "a/b", "..", ""])
def test_worktree_names_that_could_leave_worktrees_are_refused(populated: pathlib.Path, name: str) -> None:
    snap = jvs_helpers.snapshot(populated)["snapshotID"]
    with pytest.raises(errors.InvalidInputError):
        jvs_helpers.restore_to(populated, snap, worktree=name)


def test_a_partial_snapshot_replaces_only_its_paths(populated: pathlib.Path) -> None:
    main = populated / "main"
    snap = jvs_helpers.snapshot(populated, partial_paths=["models"])["snapshotID"]
    models_before = {k: v for k, v in jvs_helpers.tree(main).items() if k.startswith("models")}
    jvs_helpers.write(main, {"models/v1/weights.bin": "overwritten", "models/v2/new.bin": "v2", "README.md": "kept"})
    inode_kept = os.stat(main / "data" / "big.bin").st_ino
    jvs_helpers.restore_to(populated, snap)
    after = jvs_helpers.tree(main)
    assert {k: v for k, v in after.items() if k.startswith("models")} == models_before  # v2 gone too
    assert (main / "README.md").read_text() == "kept"
    assert os.stat(main / "data" / "big.bin").st_ino == inode_kept  # the same file, not a copy
    assert os.readlink(main / "latest.csv") == "data/train.csv"


def test_restore_refuses_a_snapshot_whose_manifest_was_altered(populated: pathlib.Path) -> None:
    snap = jvs_helpers.snapshot(populated)["snapshotID"]
    manifest = populated / ".jvs" / "snapshots" / snap / "manifest.json"
    manifest.write_bytes(manifest.read_bytes().replace(b"README.md", b"README.MD"))
    before = jvs_helpers.tree(populated / "main")
    with pytest.raises(errors.CorruptError, match="manifest"):
        jvs_helpers.restore_to(populated, snap)
    assert jvs_helpers.tree(populated / "main") == before
    with volume.opened(populated) as lay:
        assert store.resolve(lay, snap).id == snap
