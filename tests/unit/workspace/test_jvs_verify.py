"""Corruption is found: a flipped byte, a truncated compressed file, a missing or an extra file,
a changed symlink, an edited descriptor or manifest; a damaged file shared by hard links shows
in every snapshot that holds it; an intact snapshot is Verified."""

from __future__ import annotations

import json
import os
import pathlib

import jvs_helpers
import pytest

from roadie.workspace.engine import verify, volume


def _check(root: pathlib.Path, snapshot_id: str) -> verify.Report:
    with volume.opened(root, exclusive=False) as lay:
        return verify.verify(lay, snapshot_id)


def _snap_dir(root: pathlib.Path, snapshot_id: str) -> pathlib.Path:
    return root / ".jvs" / "snapshots" / snapshot_id


def _writable(path: pathlib.Path) -> pathlib.Path:
    path.chmod(0o644)  # stored files are read-only
    return path


def test_an_intact_snapshot_is_verified(populated: pathlib.Path) -> None:
    d = jvs_helpers.snapshot(populated)
    report = _check(populated, d["snapshotID"])
    assert report.state == "Verified" and report.problems == []
    assert report.files == d["fileCount"] and report.bytes == d["size"]


def test_one_flipped_byte_is_corruption(populated: pathlib.Path) -> None:
    d = jvs_helpers.snapshot(populated)
    stored = _writable(_snap_dir(populated, d["snapshotID"]) / "payload" / "data" / "big.bin")
    data = bytearray(stored.read_bytes())
    data[1000] ^= 0x01
    stored.write_bytes(bytes(data))
    report = _check(populated, d["snapshotID"])
    assert report.state == "Corrupt"
    assert "data/big.bin: content does not match its recorded hash" in report.problems


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_truncated_compressed_file_is_corruption(populated: pathlib.Path, codec: str) -> None:
    d = jvs_helpers.snapshot(populated, codec=codec)
    stored = _writable(_snap_dir(populated, d["snapshotID"]) / "payload" / "data" / "train.csv")
    stored.write_bytes(stored.read_bytes()[:-7])
    report = _check(populated, d["snapshotID"])
    assert report.state == "Corrupt"
    assert any(p.startswith("data/train.csv:") for p in report.problems)


def test_missing_and_extra_files_and_a_changed_symlink_are_corruption(populated: pathlib.Path) -> None:
    d = jvs_helpers.snapshot(populated)
    payload = _snap_dir(populated, d["snapshotID"]) / "payload"
    (payload / "README.md").unlink()
    (payload / "intruder.txt").write_text("not recorded")
    (payload / "latest.csv").unlink()
    os.symlink("/etc/passwd", payload / "latest.csv")
    problems = _check(populated, d["snapshotID"]).problems
    assert "README.md: missing from the payload" in problems
    assert "intruder.txt: in the payload but not in the manifest" in problems
    assert "latest.csv: content does not match its recorded hash" in problems


@pytest.mark.parametrize("target", ["descriptor.json", "manifest.json", ".READY"])
def test_edited_metadata_is_corruption(populated: pathlib.Path, target: str) -> None:
    d = jvs_helpers.snapshot(populated, note="original")
    path = _snap_dir(populated, d["snapshotID"]) / target
    if target == "descriptor.json":
        body = json.loads(path.read_text())
        body["note"] = "rewritten history"
        path.write_text(json.dumps(body))
    elif target == "manifest.json":
        path.write_bytes(path.read_bytes().replace(b'"README.md"', b'"README.txt"'))
    else:
        path.write_text(json.dumps({"descriptorChecksum": "0" * 64}))
    report = _check(populated, d["snapshotID"])
    assert report.state == "Corrupt", target
    assert report.problems


def test_a_damaged_shared_file_shows_in_every_snapshot_holding_it(populated: pathlib.Path) -> None:
    first = jvs_helpers.snapshot(populated)["snapshotID"]
    (populated / "main" / "README.md").write_text("only in the second")
    second = jvs_helpers.snapshot(populated)["snapshotID"]
    shared = _writable(_snap_dir(populated, second) / "payload" / "models" / "v1" / "weights.bin")
    shared.write_bytes(b"\0" * shared.stat().st_size)
    assert _check(populated, first).state == "Corrupt"
    assert _check(populated, second).state == "Corrupt"
    (populated / "main" / "run.sh").write_text("#!/bin/sh\necho third\n")
    third = jvs_helpers.snapshot(populated)
    assert third["linkedFiles"] > 0  # linked to the damaged copy: it inherits the damage, and says so
    assert _check(populated, third["snapshotID"]).state == "Corrupt"
