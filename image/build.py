"""Build Roadie's image with no container engine, and try it in a chroot: `make image`.

No Docker or podman runs where the project is built and tested, so this makes the image the
Dockerfile describes another way: a Debian root filesystem from debootstrap (the release the
Dockerfile's base is built on), the project's wheel and its dependencies installed into a venv at
/opt/roadie, the Dockerfile's final-stage RUN instructions (the non-root user), caches and docs
removed, then a smoke test of the entry point as the image's user on a read-only root, and an OCI
image layout packed by `image/oci.py`. The runtime settings (ENV, USER, ENTRYPOINT, CMD, WORKDIR,
LABEL) are read from the Dockerfile, so both builds start the same command the same way.

It needs root (debootstrap, chroot, mounts in a private mount namespace made by `unshare`), the
Debian mirror and PyPI; it is slow (minutes), so it runs outside `make test`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence

from image import dockerfile, oci, smoke

ROOT = pathlib.Path(__file__).resolve().parent.parent
REPOSITORY = "ghcr.io/roadie/roadie"
SUITE = "bookworm"
GLIBC_MINOR = 36  # bookworm's glibc 2.36: the dependencies' wheels are chosen for it and for its Python 3.11
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "ca-certificates", "tzdata")
MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
#: Directories emptied to keep the image small (dpkg's database stays: scanners read it).
EMPTIED = (
    "var/lib/apt/lists",
    "var/cache/apt",
    "var/log",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "tmp",
    "var/tmp",
    "dev",
)
#: Files a container runtime provides itself; debootstrap copies the host's.
REMOVED = ("etc/hostname", "etc/resolv.conf", "var/cache/ldconfig/aux-cache")


def log(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


def run(argv: Sequence[str]) -> None:
    log("$ " + shlex.join(argv))
    subprocess.run(argv, check=True)


def project_version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def source_epoch() -> int:
    """SOURCE_DATE_EPOCH if set, else the last commit's time: every mtime and date in the image."""
    if "SOURCE_DATE_EPOCH" in os.environ:
        return int(os.environ["SOURCE_DATE_EPOCH"])
    done = subprocess.run(
        ["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True, check=False
    )
    return int(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else 0


def build_env() -> dict[str, str]:
    """The environment of the build's own chroot steps; SOURCE_DATE_EPOCH makes the tools that
    honour it (useradd's password dates, setuptools' wheel) write the same bytes every time."""
    return {**smoke.BUILD_ENV, "SOURCE_DATE_EPOCH": os.environ["SOURCE_DATE_EPOCH"]}


def mounted_under(path: pathlib.Path) -> list[str]:
    """Mount points at or under `path` in this namespace (a build never leaves any; refuse if so)."""
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [point for point in points if point == prefix or point.startswith(prefix + "/")]


def remove_tree(path: pathlib.Path) -> None:
    if mounted_under(path):
        raise SystemExit(f"{path} has mounts under it: {mounted_under(path)}; unmount them first")
    if path.exists():
        shutil.rmtree(path)


#: Debian packages the build uses: debootstrap makes the tree, the others read the result back.
TOOLS = {"debootstrap": "debootstrap", "skopeo": "skopeo", "umoci": "umoci", "runc": "runc"}


def ensure_tools() -> None:
    """Install what is missing with apt (the build runs as root on Debian, as CI does)."""
    missing = [package for command, package in TOOLS.items() if shutil.which(command) is None]
    if not missing:
        return
    if shutil.which("apt-get") is None:
        raise SystemExit(f"missing {', '.join(missing)} and no apt-get to install them with")
    run(["apt-get", "update", "-q"])
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing])


def debootstrap(rootfs: pathlib.Path, *, architecture: str, mirror: str, cache: pathlib.Path) -> None:
    """A minimal Debian (variant minbase) with Python, in a mount namespace of its own so that its
    /proc and /sys mounts cannot outlive it."""
    cache.mkdir(parents=True, exist_ok=True)
    argv = [
        "unshare", "--mount", "--propagation", "private", "--",
        "debootstrap", "--variant=minbase", f"--arch={architecture}", f"--include={','.join(PACKAGES)}",
        f"--cache-dir={cache.resolve()}", SUITE, str(rootfs), mirror,
    ]  # fmt: skip
    run(argv)


def platforms(machine: str) -> list[str]:
    """Every manylinux tag the image's glibc accepts, newest first (pip does not widen one given
    with --platform to the older ones, which most wheels carry)."""
    return [f"manylinux_2_{minor}_{machine}" for minor in range(GLIBC_MINOR, 4, -1)] + [
        f"manylinux{legacy}_{machine}" for legacy in ("2014", "2010", "1")
    ]


def wheels(wheelhouse: pathlib.Path, *, version: str, architecture: str) -> pathlib.Path:
    """The project's wheel (built from a clean copy of the source), its dependencies' wheels for
    the image's Python and glibc, and pip's own wheel to install them with inside the chroot."""
    wheelhouse.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="roadie-src-") as scratch:
        source = pathlib.Path(scratch)
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(ROOT / name, source / name)
        shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
        run([*pip, "wheel", "--no-deps", "--wheel-dir", str(wheelhouse), str(source)])
    project = wheelhouse / f"roadie-{version}-py3-none-any.whl"
    if not project.exists():
        raise SystemExit(f"pip wheel made no {project.name}: {sorted(p.name for p in wheelhouse.iterdir())}")
    target = ["--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11", "--abi", "cp311"]
    for platform in platforms(MACHINES[architecture]):
        target += ["--platform", platform]
    run([*pip, "download", *target, "--dest", str(wheelhouse), str(project)])
    run([*pip, "download", "--only-binary=:all:", "--no-deps", "--dest", str(wheelhouse), "pip"])
    return project


def install(rootfs: pathlib.Path, wheelhouse: pathlib.Path, project: pathlib.Path) -> None:
    """The venv at /opt/roadie, filled offline from the wheelhouse by pip run from its own wheel;
    then every module compiled once, as unchecked-hash .pyc files: the root filesystem is read-only
    and never changes, so Python neither rewrites them nor checks them against an mtime."""
    inside = rootfs / "tmp" / "wheels"
    shutil.copytree(wheelhouse, inside)
    pip_wheel = next(inside.glob("pip-*.whl")).name
    script = f"""
        set -e
        python3 -m venv --without-pip /opt/roadie
        /opt/roadie/bin/python /tmp/wheels/{pip_wheel}/pip install --no-index --find-links /tmp/wheels \\
            --no-compile --no-cache-dir --disable-pip-version-check --root-user-action=ignore /tmp/wheels/{project.name}
        python3 -m compileall -q -f -j 0 --invalidation-mode unchecked-hash \\
            /usr/lib/python3.11 /usr/lib/python3 /usr/share/python3 /opt/roadie/lib
    """
    smoke.chroot(rootfs, script, env=build_env())
    shutil.rmtree(inside)


def dockerfile_runs(rootfs: pathlib.Path, text: str) -> None:
    """The final stage's RUN instructions (creating the non-root user), with its ARGs and ENVs."""
    final = dockerfile.stages(text)[-1]
    variables: dict[str, str] = {}
    for instruction in final:
        if instruction.keyword == "ARG":
            name, _, default = instruction.arguments.partition("=")
            variables[name] = default
        elif instruction.keyword == "ENV":
            variables.update(dockerfile.pairs(instruction.arguments, variables))
        elif instruction.keyword == "RUN":
            env = {**build_env(), **{k: v for k, v in variables.items() if k not in ("PATH", "HOME")}}
            smoke.chroot(rootfs, "set -e\n" + instruction.arguments, env=env)


def slim(rootfs: pathlib.Path) -> None:
    """Caches, package lists, logs, manuals and docs go (each package's copyright file stays)."""
    for relative in EMPTIED:
        directory = rootfs / relative
        for child in directory.iterdir() if directory.is_dir() else ():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    for relative in REMOVED:
        (rootfs / relative).unlink(missing_ok=True)
    doc = rootfs / "usr/share/doc"
    for child in doc.rglob("*") if doc.is_dir() else ():
        if child.name != "copyright" and (child.is_file() or child.is_symlink()):
            child.unlink()
    for directory in sorted((p for p in doc.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        if not any(directory.iterdir()):
            directory.rmdir()
    for pattern in ("var/lib/dpkg/*-old", "var/cache/debconf/*-old"):
        for path in rootfs.glob(pattern):
            path.unlink()
    (rootfs / "tmp").chmod(0o1777)


def disk_usage(path: pathlib.Path) -> int:
    total = 0
    for directory, _, files in os.walk(path):
        total += sum(os.lstat(os.path.join(directory, name)).st_blocks * 512 for name in files)
    return total


class Timer:
    """Seconds spent in each step, for the report."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        log(f"--- {name}")
        start = time.monotonic()
        yield
        self.steps[name] = round(time.monotonic() - start, 1)
        log(f"--- {name}: {self.steps[name]} s")


def pack(rootfs: pathlib.Path, layout: pathlib.Path, runtime: dockerfile.Runtime, *, version: str, epoch: int,
         architecture: str) -> dict[str, object]:  # fmt: skip
    remove_tree(layout)
    layout.mkdir(parents=True)
    layer_file = layout / "layer.tar.gz.partial"
    with layer_file.open("wb") as out:
        layer = oci.write_layer(rootfs, out, epoch=epoch)
    annotations = {
        "org.opencontainers.image.created": oci.created(epoch),
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.title": "roadie",
        "org.opencontainers.image.base.name": f"debian:{SUITE} (debootstrap --variant=minbase)",
    }
    manifest = oci.write_layout(
        layout, layer_file=layer_file, layer=layer, runtime=runtime, epoch=epoch, ref_name=version,
        annotations=annotations, architecture=architecture,
    )  # fmt: skip
    return {
        "manifest": manifest.digest,
        "layer": layer.digest,
        "diff_id": layer.diff_id,
        "layer_bytes": layer.size,
        "entries": layer.entries,
    }


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--output", type=pathlib.Path, default=ROOT / "build" / "image", help="work and output directory"
    )
    parser.add_argument("--mirror", default=MIRROR, help="the Debian mirror debootstrap reads")
    parser.add_argument("--no-smoke", action="store_true", help="skip the smoke test in the chroot")
    parser.add_argument("--no-check", action="store_true", help="skip reading the layout back with skopeo/umoci")
    parser.add_argument("--no-apt", action="store_true", help="do not apt-get install missing tools")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    if os.geteuid() != 0:
        raise SystemExit("the build needs root (debootstrap, chroot, mounts)")
    architecture = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True)
    arch = architecture.stdout.strip()
    if arch not in MACHINES:
        raise SystemExit(
            f"no build for {arch}: the image is built for the machine's own architecture, one of {MACHINES}"
        )
    version, epoch = project_version(), source_epoch()
    os.environ["SOURCE_DATE_EPOCH"] = str(epoch)  # for debootstrap's and pip's children too
    output: pathlib.Path = args.output.resolve()
    rootfs, wheelhouse, layout = output / "rootfs", output / "wheels", output / "oci"
    text = (ROOT / "Dockerfile").read_text()
    runtime = dockerfile.runtime(text)
    timer = Timer()
    report: dict[str, object] = {"image": f"{REPOSITORY}:{version}", "layout": f"oci:{layout}:{version}"}
    with timer.step("tools"):
        if not args.no_apt:
            ensure_tools()
        if shutil.which("debootstrap") is None:
            raise SystemExit("debootstrap is missing: apt-get install debootstrap")
    with timer.step("clean"):
        remove_tree(rootfs)
        remove_tree(wheelhouse)
    with timer.step("debootstrap"):
        debootstrap(rootfs, architecture=arch, mirror=args.mirror, cache=output / "debs")
    with timer.step("wheels"):
        project = wheels(wheelhouse, version=version, architecture=arch)
    with timer.step("install"):
        install(rootfs, wheelhouse, project)
        dockerfile_runs(rootfs, text)
    with timer.step("slim"):
        slim(rootfs)
    report["rootfs_bytes"] = disk_usage(rootfs)
    if not args.no_smoke:
        with timer.step("smoke"):
            report["smoke"] = smoke.entry_point(rootfs, runtime)
    with timer.step("pack"):
        report.update(pack(rootfs, layout, runtime, version=version, epoch=epoch, architecture=arch))
    if not args.no_check:
        with timer.step("check"):
            report["check"] = smoke.read_back(layout, version, runtime)
    report["seconds"] = timer.steps
    report["total_seconds"] = round(sum(timer.steps.values()), 1)
    (output / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    failed = [name for name, ok in passed(report).items() if not ok]
    if failed:
        log(f"FAILED: {', '.join(failed)} (see {output / 'report.json'})")
        return 1
    log(f"done in {report['total_seconds']} s: {layout}")
    return 0


def passed(report: dict[str, object]) -> dict[str, bool]:
    """Each verdict in the report: the smoke tests, and what skopeo and umoci read back."""
    verdicts: dict[str, bool] = {}
    if isinstance(smoke_report := report.get("smoke"), dict):
        verdicts["smoke test"] = bool(smoke_report["ok"])
    check = report.get("check")
    if isinstance(check, dict):
        if isinstance(skopeo := check.get("skopeo"), dict):
            verdicts["skopeo"] = skopeo["digest"] == report["manifest"] and bool(skopeo["config_matches_dockerfile"])
        if isinstance(umoci := check.get("umoci"), dict):
            verdicts["umoci"] = bool(umoci["smoke"]["ok"])
    return verdicts


if __name__ == "__main__":
    raise SystemExit(main())
