"""`roadie jvs ...`: the snapshot engine on one volume, as a Snapshot's Job runs it (or a user, by hand).

Inside a Job the pod's termination message is all the controller reads back, so every command
writes its result there as one compact JSON object under 4096 bytes (the kubelet's limit) and
exits with a code that says what kind of failure it was: 0 done, 1 engine failure, 2 invalid
input, 3 no such snapshot (or an ambiguous prefix), 4 corrupt, 5 engine unavailable on this
volume, 6 the volume stayed locked by another run.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import pathlib
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer

from roadie.core import durations
from roadie.workspace.engine import compression, delete, errors, layout, publish, restore, retention, store, volume
from roadie.workspace.engine import verify as verify_mod

app = typer.Typer(help="Snapshots of a JVS volume: take, restore, verify, list, delete, gc.", no_args_is_help=True)

TERMINATION_LOG = "/dev/termination-log"
MESSAGE_LIMIT = 4096
ESSENTIAL = ("snapshotID", "size", "descriptorChecksum", "integrityState", "createdAt", "completedAt", "fileCount",
             "error", "reason", "target", "freedBytes")  # fmt: skip

Root = Annotated[
    pathlib.Path,
    typer.Option("--root", envvar="ROADIE_JVS_ROOT", help="The volume's directory (it holds .jvs/ and main/)."),
]
Termination = Annotated[
    str | None,
    typer.Option(
        "--termination-log",
        help=f"Write the result here as compact JSON; default {TERMINATION_LOG} when it is writable, '' for none.",
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the whole result as JSON.")]
LockTimeout = Annotated[float, typer.Option("--lock-timeout", min=0, help="Seconds to wait for another run's lock.")]
Workers = Annotated[int, typer.Option("--workers", min=1, help="Threads copying and hashing files.")]
Sync = Annotated[bool, typer.Option("--sync/--no-sync", help="Flush to disk before publishing (syncfs).")]


def compact(result: dict[str, Any]) -> str:
    """The result as JSON that fits a termination message: lists and long texts shortened first,
    then only the essential fields kept."""

    def dump(value: dict[str, Any]) -> str:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)

    text = dump(result)
    if len(text.encode()) <= MESSAGE_LIMIT:
        return text
    slim: dict[str, Any] = {}
    for key, value in result.items():
        short = value[:5] if isinstance(value, list) else value
        slim[key] = short[:400] + "..." if isinstance(short, str) and len(short) > 400 else short
    text = dump(slim)
    if len(text.encode()) <= MESSAGE_LIMIT:
        return text
    essential = {k: slim[k] for k in ESSENTIAL if k in slim}
    if isinstance(essential.get("error"), str):
        essential["error"] = essential["error"][:2000]
    return dump(essential)


def _termination_path(option: str | None) -> str | None:
    if option is not None:
        return option or None
    if os.path.exists(TERMINATION_LOG) and os.access(TERMINATION_LOG, os.W_OK):
        return TERMINATION_LOG
    return None


def _report(result: dict[str, Any], termination: str | None) -> None:
    path = _termination_path(termination)
    if path:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(compact(result))


def _run(termination: str | None, as_json: bool, action: Callable[[], tuple[dict[str, Any], str]]) -> None:
    """Run one command: its result to the termination log and stdout, its failure to both with
    the failure's exit code."""
    try:
        result, human = action()
    except errors.EngineError as error:
        _report({"error": str(error), "reason": error.reason, "exitCode": error.exit_code}, termination)
        typer.echo(f"roadie jvs: {error}", err=True)
        raise typer.Exit(error.exit_code) from error
    except OSError as error:
        message = f"{error.strerror or error}{f': {error.filename}' if error.filename else ''}"
        _report({"error": message, "reason": "FileSystemError", "exitCode": 1}, termination)
        typer.echo(f"roadie jvs: {message}", err=True)
        raise typer.Exit(1) from error
    _report(result, termination)
    typer.echo(json.dumps(result, indent=2, default=str) if as_json else human)
    code = result.get("exitCode")
    if isinstance(code, int) and code:
        raise typer.Exit(code)


@contextlib.contextmanager
def _writing(root: pathlib.Path, lock_timeout: float) -> Iterator[layout.Layout]:
    """The volume opened for a change (its lock held), saying on stderr what an interrupted
    earlier run left that opening it recovered."""
    recovered: list[str] = []
    with volume.opened(root, timeout=lock_timeout, recovered=recovered) as lay:
        for line in recovered:
            typer.echo(f"recovered: {line}", err=True)
        yield lay


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
        value /= 1024
    return f"{count} B"


@app.command()
def init(root: Root = pathlib.Path("."), termination: Termination = None, as_json: AsJson = False) -> None:
    """Lay a volume out for JVS (.jvs/, main/, worktrees/); safe to run again."""

    def action() -> tuple[dict[str, Any], str]:
        lay = layout.init(root)
        return {"root": str(lay.root), "formatVersion": layout.FORMAT_VERSION}, f"initialised {lay.root}"

    _run(termination, as_json, action)


@app.command()
def snapshot(
    root: Root = pathlib.Path("."),
    note: Annotated[str, typer.Option("--note", help="Free text kept with the snapshot.")] = "",
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag ([a-zA-Z0-9._-]+); repeatable.")] = None,
    partial_path: Annotated[
        list[str] | None, typer.Option("--partial-path", help="Snapshot only this path of main/; repeatable.")
    ] = None,
    engine: Annotated[str, typer.Option("--engine", help="copy, reflink-copy or juicefs-clone.")] = "copy",
    codec: Annotated[str, typer.Option("--compression", help="none, gzip or zstd.")] = "none",
    level: Annotated[int, typer.Option("--level", help="Compression level 0-9.")] = compression.DEFAULT_LEVEL,
    worktree: Annotated[str | None, typer.Option("--worktree", help="Snapshot worktrees/<name>/, not main/.")] = None,
    check: Annotated[bool, typer.Option("--verify", help="Read the snapshot back and verify it.")] = False,
    sync: Sync = True,
    workers: Workers = publish.DEFAULT_WORKERS,
    lock_timeout: LockTimeout = volume.LOCK_TIMEOUT,
    termination: Termination = None,
    as_json: AsJson = False,
) -> None:
    """Take a snapshot of main/ (or a worktree) and publish it atomically."""

    def action() -> tuple[dict[str, Any], str]:
        options = publish.Options(worktree=worktree, note=note, tags=tag or (), partial_paths=partial_path or None,
                                  engine=engine, codec=codec, level=level, sync=sync, workers=workers)  # fmt: skip
        with _writing(root, lock_timeout) as lay:
            descriptor = publish.snapshot(lay, options)
            state = "Unverified"
            if check:
                state = verify_mod.verify(lay, descriptor["snapshotID"], workers=workers).state
        result = {k: descriptor[k] for k in ("snapshotID", "parentID", "size", "storedSize", "fileCount",
                                             "linkedFiles", "descriptorChecksum", "payloadRootHash", "createdAt",
                                             "completedAt", "engine", "tags")}  # fmt: skip
        result["integrityState"] = state
        if state == verify_mod.CORRUPT:
            result["exitCode"] = errors.CorruptError.exit_code
        human = (
            f"snapshot {descriptor['snapshotID']}: {descriptor['fileCount']} files, {_size(descriptor['size'])} "
            f"({_size(descriptor['storedSize'])} new, {descriptor['linkedFiles']} files shared with "
            f"{descriptor['parentID'] or 'no parent'}); {state}"
        )
        return result, human

    _run(termination, as_json, action)


@app.command("restore")
def restore_cmd(
    ref: Annotated[str, typer.Argument(help="A snapshot ID, a tag (its newest snapshot) or a unique ID prefix.")],
    root: Root = pathlib.Path("."),
    worktree: Annotated[
        str | None, typer.Option("--worktree", help="Restore into worktrees/<name>/ instead of main/.")
    ] = None,
    sync: Sync = True,
    workers: Workers = publish.DEFAULT_WORKERS,
    lock_timeout: LockTimeout = volume.LOCK_TIMEOUT,
    termination: Termination = None,
    as_json: AsJson = False,
) -> None:
    """Replace main/ (or a worktree) with a snapshot, as a whole: old or new, never a mix."""

    def action() -> tuple[dict[str, Any], str]:
        with _writing(root, lock_timeout) as lay:
            result = restore.restore(lay, ref, worktree=worktree, sync=sync, workers=workers)
        result["phase"] = "Completed"
        return result, f"restored {result['snapshotID']} into {result['target']}/ ({result['fileCount']} files)"

    _run(termination, as_json, action)


@app.command()
def verify(
    ref: Annotated[str, typer.Argument(help="A snapshot ID, tag or unique ID prefix.")],
    root: Root = pathlib.Path("."),
    workers: Workers = publish.DEFAULT_WORKERS,
    lock_timeout: LockTimeout = volume.LOCK_TIMEOUT,
    termination: Termination = None,
    as_json: AsJson = False,
) -> None:
    """Recompute a snapshot's hashes: Verified (exit 0) or Corrupt (exit 4, with what is wrong)."""

    def action() -> tuple[dict[str, Any], str]:
        with volume.opened(root, exclusive=False, timeout=lock_timeout) as lay:
            report = verify_mod.verify(lay, ref, workers=workers)
        result = report.as_dict()
        if report.state == verify_mod.CORRUPT:
            result["exitCode"] = errors.CorruptError.exit_code
        lines = [f"{report.snapshot_id}: {report.state} ({report.files} files, {_size(report.bytes)} read)"]
        lines += [f"  {problem}" for problem in report.problems]
        return result, "\n".join(lines)

    _run(termination, as_json, action)


@app.command("list")
def list_cmd(
    root: Root = pathlib.Path("."),
    tag: Annotated[str | None, typer.Option("--tag", help="Only snapshots carrying this tag.")] = None,
    lock_timeout: LockTimeout = volume.LOCK_TIMEOUT,
    termination: Termination = None,
    as_json: AsJson = False,
) -> None:
    """The published snapshots, oldest first."""

    def action() -> tuple[dict[str, Any], str]:
        with volume.opened(root, exclusive=False, timeout=lock_timeout) as lay:
            snaps = [s for s in store.all_snapshots(lay) if tag is None or tag in s.tags]
            head = layout.head(lay)
        rows = [store.summary(s) for s in snaps]
        lines = [f"{'ID':<23} {'CREATED':<24} {'SIZE':>10} {'FILES':>7}  TAGS / NOTE"]
        for s, row in zip(snaps, rows, strict=True):
            mark = "*" if s.id == head else " "
            lines.append(
                f"{s.id:<22}{mark} {row.get('createdAt', ''):<24} {_size(int(row.get('size') or 0)):>10} "
                f"{row.get('fileCount', ''):>7}  {','.join(s.tags)} {row.get('note', '')}{row.get('damage', '')}"
            )
        return {"head": head, "count": len(rows), "snapshots": rows}, "\n".join(lines)

    _run(termination, as_json, action)


@app.command("delete")
def delete_cmd(
    ref: Annotated[str, typer.Argument(help="A snapshot ID, tag or unique ID prefix.")],
    root: Root = pathlib.Path("."),
    lock_timeout: LockTimeout = volume.LOCK_TIMEOUT,
    termination: Termination = None,
    as_json: AsJson = False,
) -> None:
    """Delete one snapshot; frees what no other snapshot shares."""

    def action() -> tuple[dict[str, Any], str]:
        with _writing(root, lock_timeout) as lay:
            result = delete.delete(lay, ref)
        return result, f"deleted {result['snapshotID']}, freed {_size(result['freedBytes'])}"

    _run(termination, as_json, action)


def _duration(text: str) -> datetime.timedelta:
    try:
        return durations.parse(text)
    except durations.DurationError as error:
        raise errors.InvalidInputError(str(error)) from error


@app.command()
def gc(
    root: Root = pathlib.Path("."),
    keep_min: Annotated[int, typer.Option("--keep-min", min=0, help="keepMinSnapshots")] = 10,
    keep_min_age: Annotated[str, typer.Option("--keep-min-age", help="keepMinAge, e.g. 24h")] = "24h",
    keep_tag: Annotated[list[str] | None, typer.Option("--keep-tag", help="keepTags; repeatable.")] = None,
    hourly: Annotated[int, typer.Option("--keep-hourly", min=0, help="Newest of each of the last N hours.")] = 0,
    daily: Annotated[int, typer.Option("--keep-daily", min=0, help="Newest of each of the last N days.")] = 0,
    weekly: Annotated[int, typer.Option("--keep-weekly", min=0, help="Newest of each of the last N weeks.")] = 0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")] = False,
    lock_timeout: LockTimeout = volume.LOCK_TIMEOUT,
    termination: Termination = None,
    as_json: AsJson = False,
) -> None:
    """Apply a retention policy to the volume's snapshots (main/'s head is never deleted)."""

    def action() -> tuple[dict[str, Any], str]:
        age = _duration(keep_min_age)
        with _writing(root, lock_timeout) as lay:
            snaps = store.all_snapshots(lay)
            candidates = [retention.Candidate(s.id, s.created_at, frozenset(s.tags)) for s in snaps]
            decided = retention.plan(candidates, keep_min, age, keep_tag or (), datetime.datetime.now(datetime.UTC),
                                     retention.Gfs(hourly, daily, weekly), current=layout.head(lay))  # fmt: skip
            freed = 0
            if not dry_run:
                for snapshot_id in decided.delete:
                    freed += delete.delete(lay, snapshot_id)["freedBytes"]
        verb = "would delete" if dry_run else "deleted"
        lines = [f"{verb} {len(decided.delete)} of {len(snaps)} snapshots, freed {_size(freed)}"]
        lines += [f"  {verb} {i}" for i in decided.delete] + [f"  kept {i}: {why}" for i, why in decided.keep.items()]
        result = {"deleted": decided.delete, "kept": decided.keep, "freedBytes": freed, "dryRun": dry_run}
        return result, "\n".join(lines)

    _run(termination, as_json, action)
