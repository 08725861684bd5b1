"""Finding, or building once, the Kubernetes binaries the local control plane runs.

There is no Docker and no download of release tarballs on the machines Roadie is developed on, but
there is a Go toolchain and the Go module proxy. So the binaries are compiled from their published
modules into a cache keyed by version: only the first run pays. Resolution order is the user's own
folder (`ROADIE_K8S_BIN`), then the cache, then a build. A build fills a private scratch folder and
renames it into place only when every binary answers `--version`, so an interrupted build never
leaves a half-filled cache that a later run would trust.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping

from roadie.devcluster import versions

ENV_BIN_DIR = "ROADIE_K8S_BIN"
COMPLETE_MARKER = ".complete"

Reporter = Callable[[str], None]


class BinariesError(RuntimeError):
    """The binaries could not be found or built; the message says what to do."""


def cache_root(env: Mapping[str, str] | None = None) -> pathlib.Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or str(pathlib.Path(env.get("HOME", "~")).expanduser() / ".cache")
    return pathlib.Path(base) / "roadie" / "k8s"


def missing_in(folder: pathlib.Path) -> list[str]:
    return [name for name in versions.BINARIES if not os.access(folder / name, os.X_OK)]


def is_complete(folder: pathlib.Path) -> bool:
    return (folder / COMPLETE_MARKER).is_file() and not missing_in(folder)


def resolve(
    *,
    pins: versions.Versions = versions.PINNED,
    env: Mapping[str, str] | None = None,
    build: Callable[[pathlib.Path, versions.Versions, Reporter], None] | None = None,
    report: Reporter = print,
) -> pathlib.Path:
    """Return the folder holding every control-plane binary, building it if need be."""
    env = os.environ if env is None else env
    explicit = env.get(ENV_BIN_DIR)
    if explicit:
        folder = pathlib.Path(explicit).expanduser()
        missing = missing_in(folder)
        if missing:
            raise BinariesError(
                f"{ENV_BIN_DIR}={folder} lacks executable {', '.join(missing)}; "
                f"unset it to let Roadie build them, or add them there"
            )
        return folder

    target = cache_root(env) / pins.key
    if is_complete(target):
        return target
    (build or build_all)(target, pins, report)
    if not is_complete(target):
        raise BinariesError(f"the build finished but {target} is incomplete: {missing_in(target)}")
    return target


@contextlib.contextmanager
def build_lock(target: pathlib.Path) -> Iterator[None]:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_all(target: pathlib.Path, pins: versions.Versions, report: Reporter = print) -> None:
    """Build every binary into `target`, atomically, holding a lock against a parallel build."""
    if shutil.which("go") is None:
        raise BinariesError("no Go toolchain on PATH: install Go, or point ROADIE_K8S_BIN at built binaries")
    with build_lock(target):
        if is_complete(target):  # another process built it while this one waited
            return
        scratch = target.parent / f".build-{target.name}-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        out = scratch / "bin"
        out.mkdir(parents=True)
        started = time.monotonic()
        report(f"building the control plane {pins.key} into {target} (a cold build takes minutes)")
        _build_kubernetes(scratch, out, pins, report)
        _build_etcd(scratch, out, pins, report)
        _build_kwok(out, pins, report)
        for name in versions.BINARIES:
            _check_runs(out / name)
        (out / COMPLETE_MARKER).write_text(json.dumps(dataclasses_asdict(pins)) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        os.rename(out, target)
        shutil.rmtree(scratch, ignore_errors=True)
        report(f"built the control plane in {time.monotonic() - started:.0f}s")


def dataclasses_asdict(pins: versions.Versions) -> dict[str, str]:
    return {"kubernetes": pins.kubernetes, "etcd": pins.etcd, "kwok": pins.kwok}


def run_go(args: list[str], cwd: pathlib.Path, report: Reporter, extra_env: Mapping[str, str] | None = None) -> str:
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=mod -buildvcs=false", **(extra_env or {})}
    report("  $ go " + " ".join(args))
    proc = subprocess.run(["go", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BinariesError(f"`go {' '.join(args)}` failed in {cwd}:\n{proc.stderr[-4000:]}")
    return proc.stdout


def staging_modules(kubernetes_go_mod: str) -> list[str]:
    """The k8s.io modules a Kubernetes release requires at v0.0.0: its staging tree, published apart."""
    found: list[str] = []
    for line in kubernetes_go_mod.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("k8s.io/") and parts[1] == "v0.0.0":
            found.append(parts[0])
    return sorted(set(found))


def kubernetes_wrapper_go_mod(pins: versions.Versions, staging: list[str]) -> str:
    replaces = "\n".join(f"\t{mod} => {mod} v{pins.staging}" for mod in staging)
    return (
        "module roadie.local/k8sbuild\n\n"
        "go 1.26\n\n"
        f"require k8s.io/kubernetes v{pins.kubernetes}\n\n"
        f"replace (\n{replaces}\n)\n"
    )


def version_ldflags(pins: versions.Versions) -> str:
    major, minor, _ = pins.kubernetes.split(".")
    values = {
        "gitVersion": f"v{pins.kubernetes}",
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "gitCommit": "0000000000000000000000000000000000000000",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{key}={value}" for key, value in values.items()]
    return " ".join(flags)


def _build_kubernetes(scratch: pathlib.Path, out: pathlib.Path, pins: versions.Versions, report: Reporter) -> None:
    work = scratch / "kubernetes"
    work.mkdir()
    info = json.loads(run_go(["mod", "download", "-json", f"k8s.io/kubernetes@v{pins.kubernetes}"], work, report))
    staging = staging_modules(pathlib.Path(info["GoMod"]).read_text())
    (work / "go.mod").write_text(kubernetes_wrapper_go_mod(pins, staging))
    commands = [
        f"k8s.io/kubernetes/cmd/{name}" for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
    ]
    run_go(["build", "-trimpath", "-ldflags", version_ldflags(pins), "-o", f"{out}/", *commands], work, report)


def _build_etcd(scratch: pathlib.Path, out: pathlib.Path, pins: versions.Versions, report: Reporter) -> None:
    work = scratch / "etcd"
    work.mkdir()
    (work / "go.mod").write_text(
        f"module roadie.local/etcdbuild\n\ngo 1.26\n\nrequire go.etcd.io/etcd/server/v3 v{pins.etcd}\n"
    )
    run_go(
        ["build", "-trimpath", "-ldflags", "-s -w", "-o", str(out / "etcd"), "go.etcd.io/etcd/server/v3"],
        work,
        report,
    )


def _build_kwok(out: pathlib.Path, pins: versions.Versions, report: Reporter) -> None:
    ldflags = f"-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v{pins.kwok}"
    packages = [f"sigs.k8s.io/kwok/cmd/{name}@v{pins.kwok}" for name in ("kwok", "kwokctl")]
    run_go(
        ["install", "-trimpath", "-ldflags", ldflags, *packages],
        out,
        report,
        {"GOBIN": str(out), "GOFLAGS": ""},
    )


def _check_runs(binary: pathlib.Path) -> None:
    flag = "--help" if binary.name.startswith("kwok") else "--version"
    proc = subprocess.run([str(binary), flag], capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise BinariesError(f"{binary} {flag} failed: {proc.stderr.strip()[-500:]}")


def main() -> None:
    """`python -m roadie.devcluster.binaries`: build or find the binaries, print their folder."""
    try:
        print(resolve(report=lambda line: print(line, file=sys.stderr, flush=True)))
    except BinariesError as error:
        sys.exit(f"roadie: {error}")


if __name__ == "__main__":
    main()
