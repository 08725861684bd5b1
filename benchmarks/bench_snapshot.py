"""Benchmark: the JVS snapshot engine against the coreutils that do the same work, measured in
the same run on the same file system.

On a generated tree (10,000 files and 1 GiB at `--scale 1`, from a few dozen bytes to 11 MiB) it
reports, as medians over `--rounds` pairs measured back to back in ABBA order:
- a full snapshot against `cp -a` of the same tree (goal at most 1.2x), both durable (the
  engine's syncfs against `cp -a; sync`) and not (`--no-sync` against `cp -a`);
- a second snapshot after changing 1% of the files, against the full snapshot (goal at most
  0.1x), and the disk it added, against the tree's size (goal under 2%);
- `verify` against `sha256sum` over the same stored files (goal at most 1.5x);
- a restore into a new worktree against `cp -a` of the snapshot's payload (both durable).

    .venv/bin/python benchmarks/bench_snapshot.py [--scale 1] [--rounds 3] [--dir /var/tmp] [--json out.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import pathlib
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from roadie.workspace.engine import delete, layout, publish, restore, verify, volume

GOALS = {"full": 1.2, "full_durable": 1.2, "second": 0.1, "second_disk_percent": 2.0, "verify": 1.5}


def generate(main: pathlib.Path, scale: float, seed: int = 7) -> tuple[int, int]:
    """Files in 500 directories, drawn as 60% under 8 KiB, 30% up to 256 KiB, 9% up to 2 MiB and
    1% up to 32 MiB, then scaled to add up to 1 GiB at scale 1 (which makes those 3 KiB, 90 KiB,
    700 KiB and 11 MiB). Random, incompressible bytes."""
    rng = random.Random(seed)
    count, total = max(10, int(10_000 * scale)), int((1 << 30) * scale)
    sizes = []
    for _ in range(count):
        r = rng.random()
        high = 8 << 10 if r < 0.6 else 256 << 10 if r < 0.9 else 2 << 20 if r < 0.99 else 32 << 20
        sizes.append(rng.randint(min(100, high // 2), high))
    factor = total / sum(sizes)
    sizes = [max(1, int(s * factor)) for s in sizes]
    blob = os.urandom(64 << 20)
    for i, size in enumerate(sizes):
        folder = main / f"d{i % 20:02d}" / f"e{(i // 20) % 25:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        start = rng.randrange(0, max(1, len(blob) - size))
        data = blob[start : start + size]
        while len(data) < size:
            data += blob[: size - len(data)]
        (folder / f"f{i:05d}.bin").write_bytes(data)
    return count, sum(sizes)


def settle() -> None:
    """Start every measurement with no dirty pages of the previous one still being written."""
    os.sync()
    time.sleep(0.5)


def timed(action: Callable[[], object]) -> float:
    settle()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def run(*command: str) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def disk_usage(path: pathlib.Path) -> int:
    """Bytes used under `path`, each hard-linked inode counted once."""
    out = subprocess.run(["du", "-s", "-B1", str(path)], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def take(root: pathlib.Path, *, sync: bool, out: dict[str, object] | None = None) -> None:
    with volume.opened(root) as opened:
        descriptor = publish.snapshot(opened, publish.Options(sync=sync))
    if out is not None:
        out.update(descriptor)


def forget(root: pathlib.Path, snapshot_id: str, head: str | None) -> None:
    """Delete a snapshot and point main/'s head where the next measurement needs it."""
    with volume.opened(root) as opened:
        delete.delete(opened, snapshot_id)
        layout.set_head(opened, None, head)
    settle()


def cp(source: pathlib.Path, target: pathlib.Path, *, sync: bool) -> None:
    run("cp", "-a", str(source), str(target))
    if sync:
        os.sync()


def measure_full(work: pathlib.Path, root: pathlib.Path, rounds: int) -> tuple[dict[str, list[float]], str]:
    """Full snapshots (nothing to link to) against cp -a, in ABBA order, durable and not."""
    main = root / "main"
    samples: dict[str, list[float]] = {"cp": [], "full": [], "cp_sync": [], "full_durable": []}
    last = ""
    for r in range(rounds):
        order = ["cp", "full", "cp_sync", "full_durable"]
        for name in order if r % 2 == 0 else reversed(order):
            if name.startswith("cp"):
                copy = work / "cp"
                samples[name].append(timed(functools.partial(cp, main, copy, sync=name == "cp_sync")))
                shutil.rmtree(copy)
                settle()
                continue
            if last:
                forget(root, last, None)
            out: dict[str, object] = {}
            samples[name].append(timed(functools.partial(take, root, sync=name == "full_durable", out=out)))
            last = str(out["snapshotID"])
    return samples, last


def change_one_percent(main: pathlib.Path) -> list[pathlib.Path]:
    """Overwrite 16 bytes in 1% of the files, chosen at random (the same ones every run)."""
    rng = random.Random(11)
    every = sorted(p for p in main.rglob("*") if p.is_file())
    changed = rng.sample(every, max(1, len(every) // 100))
    for path in changed:
        with open(path, "r+b") as handle:
            handle.seek(rng.randrange(0, max(1, path.stat().st_size)))
            handle.write(os.urandom(16))
    return changed


def measure_second(root: pathlib.Path, first: str, rounds: int) -> tuple[dict[str, list[float]], int, str]:
    """Second snapshots, each with the full one as parent; the disk the first one added."""
    samples: dict[str, list[float]] = {"second": [], "second_durable": []}
    before = disk_usage(root)
    added = 0
    second = ""
    for r in range(rounds):
        for name in ("second_durable", "second") if r % 2 == 0 else ("second", "second_durable"):
            if second:
                forget(root, second, first)
            out: dict[str, object] = {}
            samples[name].append(timed(functools.partial(take, root, sync=name == "second_durable", out=out)))
            second = str(out["snapshotID"])
            if not added:
                added = disk_usage(root) - before
    return samples, added, second


def measure_verify(root: pathlib.Path, snapshot_id: str, rounds: int) -> dict[str, list[float]]:
    payload = root / ".jvs" / "snapshots" / snapshot_id / "payload"
    samples: dict[str, list[float]] = {"sha256sum": [], "verify": []}

    def check() -> None:
        with volume.opened(root, exclusive=False) as opened:
            assert verify.verify(opened, snapshot_id).state == verify.VERIFIED

    for r in range(rounds):
        for name in ("sha256sum", "verify") if r % 2 == 0 else ("verify", "sha256sum"):
            if name == "verify":
                samples[name].append(timed(check))
            else:
                command = f"find '{payload}' -type f -print0 | xargs -0 sha256sum"
                samples[name].append(timed(functools.partial(run, "sh", "-c", command)))
    return samples


def measure_restore(work: pathlib.Path, root: pathlib.Path, snapshot_id: str, rounds: int) -> dict[str, list[float]]:
    """A durable restore into a new worktree against cp -a of the payload, then sync."""
    payload = root / ".jvs" / "snapshots" / snapshot_id / "payload"
    samples: dict[str, list[float]] = {"cp_restore": [], "restore": []}

    def put_back(name: str) -> None:
        with volume.opened(root) as opened:
            restore.restore(opened, snapshot_id, worktree=name)

    for r in range(rounds):
        for name in ("cp_restore", "restore") if r % 2 == 0 else ("restore", "cp_restore"):
            target = work / "cp-restore" if name == "cp_restore" else root / "worktrees" / "bench"
            if name == "cp_restore":
                samples[name].append(timed(functools.partial(cp, payload, target, sync=True)))
            else:
                samples[name].append(timed(functools.partial(put_back, "bench")))
            shutil.rmtree(target)
            settle()
    return samples


def paired(ours: list[float], base: list[float]) -> float:
    """The median of each round's ratio: both sides of a pair ran back to back, so they saw the
    same machine, whatever else ran on it."""
    return median([a / b for a, b in zip(ours, base, strict=True)])


def measure(work: pathlib.Path, scale: float, rounds: int) -> dict[str, object]:
    root = work / "volume"
    lay = layout.init(root)
    files, size = generate(lay.main, scale)
    settle()
    samples, first = measure_full(work, root, rounds)
    changed = change_one_percent(lay.main)
    second, added, second_id = measure_second(root, first, rounds)
    samples.update(second)
    samples.update(measure_verify(root, second_id, rounds))
    samples.update(measure_restore(work, root, second_id, rounds))
    return {
        "scale": scale,
        "files": files,
        "bytes": size,
        "rounds": rounds,
        "changed_files": len(changed),
        "changed_bytes": sum(p.stat().st_size for p in changed),
        "samples": samples,
        "ratios": {
            "full": paired(samples["full"], samples["cp"]),
            "full_durable": paired(samples["full_durable"], samples["cp_sync"]),
            "second": median(samples["second"]) / median(samples["full"]),
            "second_durable": median(samples["second_durable"]) / median(samples["full_durable"]),
            "second_disk_percent": 100 * added / size,
            "verify": paired(samples["verify"], samples["sha256sum"]),
            "restore": paired(samples["restore"], samples["cp_restore"]),
        },
        "goals": GOALS,
    }


def report(results: dict[str, object]) -> None:
    samples = results["samples"]
    ratios = results["ratios"]
    assert isinstance(samples, dict) and isinstance(ratios, dict)
    m = {k: median(v) for k, v in samples.items()}
    gib = float(results["bytes"]) / 2**30  # type: ignore[arg-type]
    print(f"{results['files']} files, {gib:.2f} GiB, {results['rounds']} rounds; second snapshot after changing "
          f"{results['changed_files']} files. Times are medians; ratios are medians of each round's pair.")  # fmt: skip
    rows = [
        ("full snapshot vs cp -a", m["full"], m["cp"], ratios["full"], "<= 1.2"),
        ("full snapshot, durable vs cp -a; sync", m["full_durable"], m["cp_sync"], ratios["full_durable"], "<= 1.2"),
        ("second snapshot (1% changed) vs full", m["second"], m["full"], ratios["second"], "<= 0.1"),
        ("  the same, both durable", m["second_durable"], m["full_durable"], ratios["second_durable"], "<= 0.1"),
        ("verify vs sha256sum", m["verify"], m["sha256sum"], ratios["verify"], "<= 1.5"),
        ("restore, durable vs cp -a; sync", m["restore"], m["cp_restore"], ratios["restore"], ""),
    ]
    print(f"{'measurement':<40} {'engine':>9} {'baseline':>9} {'ratio':>7}  goal")
    for label, ours, base, ratio, goal in rows:
        print(f"{label:<40} {ours:>8.2f}s {base:>8.2f}s {ratio:>7.2f}  {goal}")
    print(f"{'second snapshot: disk added':<40} {ratios['second_disk_percent']:>8.2f}% of the tree{'':>8}  < 2%")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="1: 10,000 files and 1 GiB")
    parser.add_argument("--rounds", type=int, default=5, help="pairs of measurements, in ABBA order")
    parser.add_argument("--dir", default=None, help="where the temporary tree goes (same file system for all)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()

    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-jvs-", dir=args.dir))
    try:
        results = measure(work, args.scale, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
