"""The juicefs-clone engine's own path, with a stand-in `juicefs` (a script doing `cp -a`) on PATH
and the volume taken for JuiceFS: the clone is hashed, a file the live tree proves unchanged
takes its hash from the parent, and what it stores verifies and restores. Whether the real
`juicefs clone` behaves as the stand-in does is not shown here (no JuiceFS in unit tests)."""

from __future__ import annotations

import pathlib

import jvs_helpers
import pytest

from roadie.workspace.engine import copying, tree, verify, volume


@pytest.fixture
def fake_juicefs(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    binary = tmp_path / "bin" / "juicefs"
    binary.parent.mkdir()
    log = tmp_path / "juicefs.log"
    script = f'#!/bin/sh\necho "$@" >> {log}\n[ "$1" = clone ] && [ "$2" = --preserve ] && exec cp -a "$3" "$4"\n'
    binary.write_text(script)
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", f"{binary.parent}:/usr/bin:/bin")
    monkeypatch.setattr(copying, "filesystem_type", lambda _path: "fuse.juicefs")
    return log


def test_a_juicefs_clone_snapshot_is_hashed_verified_and_restorable(
    populated: pathlib.Path, fake_juicefs: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = jvs_helpers.tree(populated / "main")
    first = jvs_helpers.snapshot(populated, engine="juicefs-clone")
    assert fake_juicefs.read_text().startswith("clone --preserve ")
    assert first["engine"] == "juicefs-clone" and first["storedSize"] == 0
    plain = jvs_helpers.snapshot(populated, engine="copy")
    assert first["payloadRootHash"] == plain["payloadRootHash"]

    hashed: list[str] = []
    real = tree.hash_file

    def spy(path: str | pathlib.Path) -> tuple[str, int]:
        hashed.append(str(path))
        return real(path)

    monkeypatch.setattr(tree, "hash_file", spy)
    (populated / "main" / "README.md").write_text("changed")
    second = jvs_helpers.snapshot(populated, engine="juicefs-clone", parent=first["snapshotID"])
    assert [pathlib.Path(p).name for p in hashed] == ["README.md"]  # the others: the parent's hashes
    with volume.opened(populated, exclusive=False) as lay:
        assert verify.verify(lay, second["snapshotID"]).state == verify.VERIFIED
    jvs_helpers.restore_to(populated, first["snapshotID"])
    assert jvs_helpers.tree(populated / "main") == original


def test_a_partial_juicefs_clone_clones_each_path(populated: pathlib.Path, fake_juicefs: pathlib.Path) -> None:
    d = jvs_helpers.snapshot(populated, engine="juicefs-clone", partial_paths=["models", "README.md"])
    assert len(fake_juicefs.read_text().splitlines()) == 2
    assert d["fileCount"] == 2 and d["partialPaths"] == ["README.md", "models"]
    with volume.opened(populated, exclusive=False) as lay:
        assert verify.verify(lay, d["snapshotID"]).state == verify.VERIFIED
