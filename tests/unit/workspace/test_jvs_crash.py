"""Every step of publish, restore and delete interrupted by SIGKILL, in a real child process that
kills itself at the step (`ROADIE_JVS_CRASH_AT`): no half snapshot is ever visible, `main/` is
entirely the old tree or entirely the new one, and the next run cleans up (or finishes) what the
killed one left."""

from __future__ import annotations

import os
import pathlib
import signal

import jvs_helpers
import pytest

from roadie.workspace.engine import delete, layout, payload, publish, restore, store, verify, volume

#: Steps after which the operation has taken effect (the rename, or the commit of a restore).
PUBLISHED_AFTER = ("renamed", "head-updated")
COMMITTED_AFTER = ("committed", "target-moved", "swapped", "old-removed")


def _many_files(main: pathlib.Path) -> None:
    """Enough files in enough directories that copying runs as many batches, so that a kill at
    "payload-partial" lands with some files copied and others not."""
    jvs_helpers.write(main, {f"dir{d}/file{f}.txt": f"{d}-{f}\n" * 50 for d in range(4) for f in range(40)})


def _listed(root: pathlib.Path) -> list[str]:
    lay = layout.open_layout(root)
    return [s.id for s in store.all_snapshots(lay)]


@pytest.mark.parametrize("step", publish.STEPS)
def test_a_killed_snapshot_is_never_half_visible_and_is_cleaned_up(populated: pathlib.Path, step: str) -> None:
    _many_files(populated / "main")
    before = jvs_helpers.snapshot(populated)["snapshotID"]
    (populated / "main" / "README.md").write_text("changed")

    killed = jvs_helpers.engine(populated, "snapshot", "--tag", "next", crash_at=step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    visible = _listed(populated)
    if step in PUBLISHED_AFTER:
        assert len(visible) == 2 and visible[0] == before
    else:
        assert visible == [before]
        assert jvs_helpers.leftovers(populated), "the killed run should have left something to recover"
    if step == "payload-partial":
        [tmp] = (populated / ".jvs" / "snapshots").glob("*.tmp")
        copied = sum(1 for p in (tmp / "payload").rglob("*") if p.is_file())
        assert 0 < copied < 165

    recovered: list[str] = []
    with volume.opened(populated, recovered=recovered) as lay:
        assert recovered
        assert jvs_helpers.leftovers(populated) == []
        assert [s.id for s in store.all_snapshots(lay)] == visible
        for snapshot_id in visible:
            assert verify.verify(lay, snapshot_id).state == verify.VERIFIED
        assert layout.head(lay) == visible[-1]

    again = jvs_helpers.engine(populated, "snapshot")
    assert again.returncode == 0, again.stderr
    assert len(_listed(populated)) == len(visible) + 1


def test_a_snapshot_killed_while_copying_without_a_parent_is_cleaned_up(root: pathlib.Path) -> None:
    _many_files(root / "main")
    killed = jvs_helpers.engine(root, "snapshot", "--compression", "gzip", crash_at="payload-partial")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [tmp] = (root / ".jvs" / "snapshots").glob("*.tmp")
    copied = sum(1 for p in (tmp / "payload").rglob("*") if p.is_file())
    assert 0 < copied < 160
    assert _listed(root) == []
    with volume.opened(root):
        assert jvs_helpers.leftovers(root) == []


RESTORE_CASES = [(step, "on") for step in restore.STEPS if step != "target-moved"] + [
    (step, "off") for step in restore.STEPS
]


@pytest.mark.parametrize(("step", "exchange"), RESTORE_CASES)
def test_a_killed_restore_leaves_main_entirely_old_or_entirely_new(
    populated: pathlib.Path, step: str, exchange: str
) -> None:
    _many_files(populated / "main")
    snap = jvs_helpers.snapshot(populated, tags=["good"])["snapshotID"]
    snapshot_tree = jvs_helpers.tree(populated / "main")
    main = populated / "main"
    jvs_helpers.write(main, {"README.md": "edited", "dir0/file0.txt": "edited", "added/later.txt": "new"})
    (main / "dir1" / "file1.txt").unlink()
    current_tree = jvs_helpers.tree(main)
    assert current_tree != snapshot_tree

    killed = jvs_helpers.engine(populated, "restore", "good", crash_at=step, ROADIE_JVS_RENAME_EXCHANGE=exchange)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if step == "target-moved":  # without RENAME_EXCHANGE: main/ is aside for one rename, never mixed
        assert not main.exists()
    else:
        assert jvs_helpers.tree(main) in (current_tree, snapshot_tree)  # at the instant of the kill

    with volume.opened(populated):
        pass
    assert jvs_helpers.leftovers(populated) == []
    expected = snapshot_tree if step in COMMITTED_AFTER else current_tree
    assert jvs_helpers.tree(main) == expected
    if step in COMMITTED_AFTER:
        assert layout.head(layout.Layout(populated)) == snap
    assert _listed(populated) == [snap]


def test_a_killed_restore_into_a_worktree_leaves_no_partial_worktree(populated: pathlib.Path) -> None:
    jvs_helpers.snapshot(populated, tags=["good"])
    killed = jvs_helpers.engine(populated, "restore", "good", "--worktree", "try", crash_at="staging-partial")
    assert killed.returncode == -signal.SIGKILL
    assert not (populated / "worktrees" / "try").exists()
    with volume.opened(populated):
        pass
    assert not (populated / "worktrees" / "try").exists() and jvs_helpers.leftovers(populated) == []


@pytest.mark.parametrize("step", delete.STEPS)
def test_a_killed_delete_is_finished_by_the_next_run(populated: pathlib.Path, step: str) -> None:
    doomed = jvs_helpers.snapshot(populated)["snapshotID"]
    kept = jvs_helpers.snapshot(populated)["snapshotID"]
    killed = jvs_helpers.engine(populated, "delete", doomed, crash_at=step)
    assert killed.returncode == -signal.SIGKILL
    assert _listed(populated) == [kept]
    with volume.opened(populated) as lay:
        assert jvs_helpers.leftovers(populated) == []
        assert verify.verify(lay, kept).state == verify.VERIFIED


def test_every_step_name_is_reached(populated: pathlib.Path) -> None:
    """A step renamed in the engine but not here would make its test pass without a kill."""
    jvs_helpers.snapshot(populated)
    source = "".join(
        pathlib.Path(module.__file__).read_text() for module in (publish, payload, restore, delete) if module.__file__
    )
    for step in (*publish.STEPS, *restore.STEPS, *delete.STEPS):
        assert f'crash_point("{step}")' in source, step
    assert os.environ.get(layout.CRASH_ENV) is None
