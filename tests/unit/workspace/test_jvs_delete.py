"""Deleting a snapshot frees exactly what no other snapshot shares: the files that were its own are
gone from the disk, the ones it shared with others stay (with one link fewer) and still verify."""

from __future__ import annotations

import os
import pathlib

import jvs_helpers
import pytest

from roadie.workspace.engine import delete, errors, store, verify, volume


def _blocks(path: pathlib.Path) -> int:
    """Disk used under `path`, each inode once."""
    seen: set[int] = set()
    total = 0
    for directory, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            st = os.lstat(os.path.join(directory, name))
            if st.st_ino not in seen:
                seen.add(st.st_ino)
                total += st.st_blocks * 512
    return total


def test_deleting_frees_only_what_no_other_snapshot_shares(populated: pathlib.Path) -> None:
    main = populated / "main"
    first = jvs_helpers.snapshot(populated)["snapshotID"]
    (main / "data" / "big.bin").write_bytes(os.urandom(400_000))  # the first's big.bin becomes its own
    second = jvs_helpers.snapshot(populated)["snapshotID"]
    snapshots = populated / ".jvs" / "snapshots"
    own_inode = os.stat(snapshots / first / "payload" / "data" / "big.bin").st_ino
    shared = snapshots / second / "payload" / "models" / "v1" / "weights.bin"
    assert os.stat(shared).st_nlink == 2
    before = _blocks(snapshots)

    with volume.opened(populated) as lay:
        result = delete.delete(lay, first)
    assert result["snapshotID"] == first
    freed = before - _blocks(snapshots)
    assert freed >= 300_000  # the first's own big.bin
    assert freed < 300_000 + 200_000  # not the shared files (train.csv, weights.bin, ...)
    assert abs(result["freedBytes"] - freed) <= 64 * 1024  # the estimate given beforehand is right
    assert os.stat(shared).st_nlink == 1
    assert not any(os.stat(p).st_ino == own_inode for p in snapshots.rglob("*") if p.is_file())

    with volume.opened(populated) as lay:
        assert [s.id for s in store.all_snapshots(lay)] == [second]
        assert verify.verify(lay, second).state == verify.VERIFIED
    assert jvs_helpers.leftovers(populated) == []


def test_deleting_the_last_holder_frees_the_file(populated: pathlib.Path) -> None:
    first = jvs_helpers.snapshot(populated)["snapshotID"]
    second = jvs_helpers.snapshot(populated)["snapshotID"]
    snapshots = populated / ".jvs" / "snapshots"
    with volume.opened(populated) as lay:
        assert delete.delete(lay, first)["freedBytes"] < 100_000  # everything shared: only metadata
        assert delete.delete(lay, second)["freedBytes"] >= 350_000  # now the data itself
    assert list(snapshots.iterdir()) == []


def test_deleting_an_unknown_snapshot_is_refused(populated: pathlib.Path) -> None:
    jvs_helpers.snapshot(populated)
    with volume.opened(populated) as lay, pytest.raises(errors.NotFoundError):
        delete.delete(lay, "1234567890123-deadbeef")
