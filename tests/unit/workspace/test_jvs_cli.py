"""`roadie jvs` as a Job runs it: each command's result in the termination log as compact JSON
under 4096 bytes, failures there too with an exit code that says which kind, and the commands a
user types by hand (list, delete, gc) doing what they say."""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import jvs_helpers
import pytest
from typer.testing import CliRunner

from roadie.cli import jvs
from roadie.workspace.engine import copying

runner = CliRunner()


def _jvs(root: pathlib.Path, log: pathlib.Path, *args: str) -> tuple[int, dict[str, Any], str]:
    result = runner.invoke(jvs.app, [*args, "--root", str(root), "--termination-log", str(log)])
    message = log.read_text()
    assert len(message.encode()) <= jvs.MESSAGE_LIMIT
    return result.exit_code, json.loads(message), result.output


def test_snapshot_reports_what_the_snapshot_status_needs(populated: pathlib.Path, tmp_path: pathlib.Path) -> None:
    log = tmp_path / "termination-log"
    code, message, output = _jvs(populated, log, "snapshot", "--note", "n", "--tag", "v1", "--verify", "--no-sync")
    assert code == 0, output
    for key in ("snapshotID", "size", "descriptorChecksum", "integrityState", "createdAt", "completedAt", "fileCount"):
        assert key in message, key
    assert message["integrityState"] == "Verified" and message["fileCount"] == 5
    assert message["snapshotID"] in output
    code, unverified, _ = _jvs(populated, log, "snapshot", "--no-sync")
    assert code == 0 and unverified["integrityState"] == "Unverified"
    assert unverified["parentID"] == message["snapshotID"]


@pytest.mark.parametrize(
    ("args", "code", "reason", "words"),
    [
        (["snapshot", "--tag", "no spaces"], 2, "InvalidInput", "invalid tag"),
        (["snapshot", "--compression", "lz4"], 2, "InvalidInput", "unknown compression"),
        (["snapshot", "--engine", "juicefs-clone"], 5, "EngineUnavailable", "JuiceFS"),
        (["restore", "nothing-like-it"], 3, "NotFound", "no snapshot"),
        (["verify", "0"], 3, "NotFound", "no snapshot"),
    ],
)
def test_failures_reach_the_termination_log_with_their_exit_code(
    populated: pathlib.Path, tmp_path: pathlib.Path, args: list[str], code: int, reason: str, words: str
) -> None:
    got, message, output = _jvs(populated, tmp_path / "log", *args)
    assert got == code, output
    assert message["reason"] == reason and words in message["error"] and message["exitCode"] == code
    assert words in output


def test_an_ambiguous_prefix_exits_3_and_names_the_candidates(populated: pathlib.Path, tmp_path: pathlib.Path) -> None:
    first = jvs_helpers.snapshot(populated)["snapshotID"]
    second = jvs_helpers.snapshot(populated)["snapshotID"]
    code, message, _ = _jvs(populated, tmp_path / "log", "restore", first[:3])
    assert code == 3 and message["reason"] == "AmbiguousReference"
    assert first in message["error"] and second in message["error"]


def test_reflink_copy_is_refused_where_the_volume_has_no_reflinks(
    populated: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    code, message, _ = _jvs(populated, tmp_path / "log", "snapshot", "--engine", "reflink-copy")
    if copying.probe_reflink(populated):
        assert code == 0 and message["integrityState"] == "Unverified"
    else:
        assert code == 5 and "reflink" in message["error"]


def test_verify_exits_4_on_corruption(populated: pathlib.Path, tmp_path: pathlib.Path) -> None:
    snap = jvs_helpers.snapshot(populated)["snapshotID"]
    stored = populated / ".jvs" / "snapshots" / snap / "payload" / "README.md"
    stored.chmod(0o644)
    stored.write_text("tampered")
    code, message, output = _jvs(populated, tmp_path / "log", "verify", snap)
    assert code == 4 and message["integrityState"] == "Corrupt" and message["problemCount"] >= 1
    assert "README.md" in output


def test_restore_list_delete_and_gc(populated: pathlib.Path, tmp_path: pathlib.Path) -> None:
    log = tmp_path / "log"
    ids = [jvs_helpers.snapshot(populated, tags=[f"t{i}"])["snapshotID"] for i in range(4)]
    code, message, _ = _jvs(populated, log, "restore", "t1", "--worktree", "test-branch", "--no-sync")
    assert code == 0 and message["target"] == "worktrees/test-branch" and message["phase"] == "Completed"
    code, listed, output = _jvs(populated, log, "list", "--json")
    assert code == 0 and [row["snapshotID"] for row in json.loads(output)["snapshots"]] == ids
    assert listed["count"] == 4
    code, message, _ = _jvs(populated, log, "delete", ids[0])
    assert code == 0 and message["snapshotID"] == ids[0] and message["freedBytes"] > 0
    time.sleep(1.1)  # keepMinAge is at least 1s: let the snapshots grow that old
    args = ["gc", "--keep-min", "1", "--keep-min-age", "1s", "--keep-tag", "t2"]
    code, planned, _ = _jvs(populated, log, *args, "--dry-run")
    assert code == 0 and planned["deleted"] == [ids[1]] and planned["dryRun"]
    listing = runner.invoke(jvs.app, ["list", "--json", "--root", str(populated)]).output
    assert len(json.loads(listing)["snapshots"]) == 3
    code, done, _ = _jvs(populated, log, *args)
    assert code == 0 and done["deleted"] == [ids[1]]
    code, _, output = _jvs(populated, log, "list")
    assert ids[2] in output and ids[3] in output and ids[1] not in output


def test_gc_refuses_a_malformed_duration(populated: pathlib.Path, tmp_path: pathlib.Path) -> None:
    code, message, _ = _jvs(populated, tmp_path / "log", "gc", "--keep-min-age", "2 days")
    assert code == 2 and "invalid duration" in message["error"]


def test_the_termination_message_stays_under_the_kubelets_limit() -> None:
    huge = {"snapshotID": "1-a", "integrityState": "Corrupt", "problems": ["x" * 500] * 200, "note": "n" * 9000}
    text = jvs.compact(huge)
    assert len(text.encode()) <= jvs.MESSAGE_LIMIT
    assert json.loads(text)["integrityState"] == "Corrupt"
    error = jvs.compact({"error": "e" * 10_000, "reason": "EngineFailed", "extra": ["y" * 1000] * 10})
    assert len(error.encode()) <= jvs.MESSAGE_LIMIT and json.loads(error)["reason"] == "EngineFailed"


def test_the_default_termination_log_is_used_only_where_it_is_writable(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "termination-log"
    monkeypatch.setattr(jvs, "TERMINATION_LOG", str(log))
    root = tmp_path / "volume"
    assert runner.invoke(jvs.app, ["init", "--root", str(root)]).exit_code == 0
    assert not log.exists()
    log.touch()
    assert runner.invoke(jvs.app, ["init", "--root", str(root)]).exit_code == 0
    assert json.loads(log.read_text())["formatVersion"] == 1
