"""The on-volume layout and its rules: IDs `<unix-ms>-<8 hex>` in creation order, tag and worktree
names, an init that is idempotent and keeps existing files, a newer format refused, the lock
shared by readers and held alone by writers, and the engines a volume cannot run refused."""

from __future__ import annotations

import pathlib
import re
import shutil

import jvs_helpers
import pytest

from roadie.workspace.engine import compression, copying, errors, layout, volume


def test_ids_carry_their_creation_time_and_sort_by_it() -> None:
    early, late = layout.new_id(1_700_000_000.123), layout.new_id(1_700_000_001.5)
    assert re.fullmatch(r"1700000000123-[0-9a-f]{8}", early)
    assert sorted([late, early]) == [early, late]
    assert layout.id_time(early).timestamp() == pytest.approx(1_700_000_000.123)
    assert len({layout.new_id(1.0) for _ in range(100)}) == 100


@pytest.mark.parametrize("tag", ["v1.0", "pre-deploy", "A_b.c-9"])
def test_tags_in_the_pattern_are_accepted(tag: str) -> None:
    assert layout.check_tag(tag) == tag


def test_init_is_idempotent_and_keeps_what_main_holds(tmp_path: pathlib.Path) -> None:
    root = tmp_path / "v"
    jvs_helpers.write(root / "main", {"kept.txt": "user data"})
    lay = layout.init(root)
    layout.init(root)
    assert (lay.main / "kept.txt").read_text() == "user data"
    assert (lay.jvs / "format_version").read_text() == "1\n"
    assert lay.worktrees.is_dir() and (lay.jvs / "worktrees" / "main" / "config.json").is_file()


def test_a_volume_without_jvs_or_of_a_newer_format_is_refused(tmp_path: pathlib.Path) -> None:
    with pytest.raises(errors.NotFoundError, match="roadie jvs init"):
        layout.open_layout(tmp_path)
    lay = layout.init(tmp_path / "v")
    (lay.jvs / "format_version").write_text("2\n")
    with pytest.raises(errors.InvalidInputError, match="format 2"):
        layout.open_layout(lay.root)


def test_writers_exclude_each_other_and_readers_share(root: pathlib.Path) -> None:
    with volume.opened(root, exclusive=False), volume.opened(root, exclusive=False, timeout=0.2):
        pass
    with (
        volume.opened(root),
        pytest.raises(errors.BusyError, match="another JVS run"),
        volume.opened(root, timeout=0.3),
    ):
        pass
    with volume.opened(root, exclusive=False), pytest.raises(errors.BusyError), volume.opened(root, timeout=0.2):
        pass


def test_unknown_engines_and_compressed_clones_are_refused(root: pathlib.Path) -> None:
    with pytest.raises(errors.InvalidInputError, match="unknown engine"):
        copying.plan("rsync", root, "none", 6)
    with pytest.raises(errors.InvalidInputError, match="cannot be compressed"):
        copying.plan("reflink-copy", root, "zstd", 6)


def test_juicefs_clone_needs_a_juicefs_volume(root: pathlib.Path) -> None:
    assert copying.filesystem_type(root) != "fuse.juicefs"
    with pytest.raises(errors.UnavailableError, match=r"needs a JuiceFS volume; .* is on "):
        copying.plan("juicefs-clone", root, "none", 6)


def test_juicefs_clone_needs_the_binary_even_on_juicefs(root: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copying, "filesystem_type", lambda _path: "fuse.juicefs")
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(errors.UnavailableError, match="juicefs binary"):
        copying.plan("juicefs-clone", root, "none", 6)


def test_reflink_copy_runs_only_where_reflinks_exist(root: pathlib.Path) -> None:
    if copying.probe_reflink(root):
        assert copying.plan("reflink-copy", root, "none", 6).reflink
    else:
        with pytest.raises(errors.UnavailableError, match="reflink"):
            copying.plan("reflink-copy", root, "none", 6)
        assert not copying.plan("copy", root, "none", 6).reflink  # copy falls back to reading


def test_the_mount_table_names_this_file_system(root: pathlib.Path) -> None:
    kind = copying.filesystem_type(root)
    assert kind != "unknown" and " " not in kind
    assert compression.check("zstd", 9) == ("zstd", 9)
