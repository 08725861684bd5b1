"""Running commands in the image's root filesystem without a container engine, and the smoke test.

A chroot in a private mount namespace (`unshare --mount`) comes close to what a container runtime
gives a pod: a fresh /dev with the usual nodes, /proc, the root bind-mounted read-only with a tmpfs
on /tmp (as the Deployment's emptyDir), the image's environment and nothing of the host's, and the
image's numeric user. Every mount dies with the namespace, so a failed run leaves none behind.
The same checks run twice: in a chroot on the tree that is packed, and on what umoci unpacks from
the OCI layout, in runc where Debian's runc is installed (so the layer itself, links and modes
included, is shown to work in a real OCI runtime, not only our chroot).
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from image import dockerfile

BUILD_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
}
#: The Workspace engine Jobs' user (`WorkspaceSettings.user_id`), not the image's: they run as it.
ENGINE_USER = "1000:1000"

_SETUP = r"""
set -e
root=$1 readonly=$2 user=$3 workdir=$4 script=$5
shift 5
mount --bind "$root" "$root"
mount -t tmpfs -o mode=0755,nosuid,size=16m tmpfs "$root/dev"
for node in null zero full random urandom tty; do
    touch "$root/dev/$node" && mount --bind "/dev/$node" "$root/dev/$node"
done
mkdir "$root/dev/shm" "$root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
ln -s /proc/self/fd "$root/dev/fd"
mount -t proc proc "$root/proc"
if [ "$readonly" = yes ]; then
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/tmp"
    mount -o remount,bind,ro "$root"
fi
set -- "$@" /bin/sh -c "cd $workdir && $script"
if [ -n "$user" ]; then
    exec chroot --userspec="$user" --groups="${user#*:}" "$root" /usr/bin/env -i "$@"
fi
exec chroot "$root" /usr/bin/env -i "$@"
"""


def chroot(
    rootfs: pathlib.Path,
    script: str,
    *,
    env: Mapping[str, str],
    user: str = "",
    readonly: bool = False,
    workdir: str = "/",
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run `script` with the root filesystem's /bin/sh; raises when it fails unless `capture`."""
    argv = [
        "unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", _SETUP, "setup",
        str(rootfs), "yes" if readonly else "no", user, workdir, script, *(f"{k}={v}" for k, v in env.items()),
    ]  # fmt: skip
    if capture:
        return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    return subprocess.run(argv, text=True, check=True, timeout=3600)


@dataclasses.dataclass(frozen=True)
class Check:
    name: str
    script: str
    expect: str = ""  # a text the output must hold
    user: str = ""  # default: the image's USER


CHECKS = (
    Check("user", "id -u; id -g", expect="65532"),
    Check(
        "read-only root, writable /tmp",
        """opts=$(awk '$5 == "/" {o = $6} END {print o}' /proc/self/mountinfo)
        case "$opts" in ro|ro,*) echo "/ is mounted $opts" ;; *) echo "/ is mounted $opts"; exit 1 ;; esac
        touch /tmp/probe""",
        expect="/ is mounted ro",
    ),
    Check("roadie --help", "roadie --help", expect="jvs"),
    Check("roadie run --help (the default command)", "roadie run --help", expect="--controllers"),
    Check("roadie crds | head", "roadie crds | head -n 6", expect="kind: CustomResourceDefinition"),
    Check("roadie crds (whole)", "roadie crds | grep -c '^kind: CustomResourceDefinition'"),
    Check("roadie jvs --help", "roadie jvs --help", expect="snapshot"),
    Check("kubectl (roadie install)", "kubectl version --client", expect="Client Version"),
    Check("time zones", "python -c 'import zoneinfo; print(zoneinfo.ZoneInfo(\"Europe/Berlin\"))'", expect="Berlin"),
    Check(
        "engine round trip as the Job's user",
        """set -e
        w=/tmp/ws; log="--termination-log /tmp/termination-log"
        mkdir -p $w && roadie jvs init --root $w $log
        echo hello > $w/main/a.txt && mkdir $w/main/d && head -c 300000 /dev/urandom > $w/main/d/b.bin
        roadie jvs snapshot --compression zstd --level 3 --tag first --verify --root $w $log
        echo changed > $w/main/a.txt && rm $w/main/d/b.bin
        roadie jvs restore first --root $w $log
        test "$(cat $w/main/a.txt)" = hello && test -s $w/main/d/b.bin
        roadie jvs verify first --root $w $log
        roadie jvs list --root $w --json | head -c 300; echo
        cat /tmp/termination-log""",
        expect="integrityState",
        user=ENGINE_USER,
    ),
)


def _result(check: Check, done: subprocess.CompletedProcess[str], seconds: float) -> dict[str, Any]:
    output = (done.stdout + done.stderr).strip()
    lines = output.splitlines()
    return {
        "check": check.name,
        "ok": done.returncode == 0 and check.expect in output,
        "seconds": round(seconds, 2),
        "output": "\n".join(lines[:8] + (["..."] if len(lines) > 12 else []) + lines[8:][-4:]),
    }


def entry_point(rootfs: pathlib.Path, runtime: dockerfile.Runtime) -> dict[str, Any]:
    """Every check as the image runs: its user, environment and working directory, root read-only."""
    results = []
    for check in CHECKS:
        start = time.monotonic()
        done = chroot(
            rootfs,
            check.script,
            env=dict(runtime.env),
            user=check.user or runtime.user,
            readonly=True,
            workdir=runtime.working_dir,
            capture=True,
        )
        results.append(_result(check, done, time.monotonic() - start))
    return {"how": "chroot", "ok": all(result["ok"] for result in results), "checks": results}


def in_runc(bundle: pathlib.Path, runtime: dockerfile.Runtime) -> dict[str, Any]:
    """Every check in a real OCI runtime, from the bundle umoci unpacked: its own pid, network,
    ipc, uts and mount namespaces, every capability dropped, no new privileges, root read-only and
    a tmpfs on /tmp: what Kubernetes' restricted profile with readOnlyRootFilesystem gives a pod."""
    template = json.loads((bundle / "config.json").read_text())
    results = []
    for number, check in enumerate(CHECKS):
        spec = json.loads(json.dumps(template))
        uid, _, gid = (check.user or runtime.user).partition(":")
        process = spec["process"]
        process.update(terminal=False, args=["/bin/sh", "-c", check.script], noNewPrivileges=True)
        process["user"] = {"uid": int(uid), "gid": int(gid or uid)}
        process["capabilities"] = {kind: [] for kind in process.get("capabilities", {})}
        spec["root"]["readonly"] = True
        spec["mounts"].append(
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "mode=1777"]}
        )
        (bundle / "config.json").write_text(json.dumps(spec))
        name = f"roadie-smoke-{os.getpid()}-{number}"
        start = time.monotonic()
        done = subprocess.run(
            ["runc", "run", "--bundle", str(bundle), name], capture_output=True, text=True, check=False, timeout=600
        )
        subprocess.run(["runc", "delete", "--force", name], capture_output=True, check=False)
        results.append(_result(check, done, time.monotonic() - start))
    (bundle / "config.json").write_text(json.dumps(template))
    return {"how": "runc", "ok": all(result["ok"] for result in results), "checks": results}


def _json(argv: list[str]) -> Any:
    return json.loads(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def read_back(layout: pathlib.Path, ref: str, runtime: dockerfile.Runtime) -> dict[str, Any]:
    """Read the layout back with tools that are not ours: skopeo (inspect, and a copy, which checks
    every blob's digest) and umoci (unpack, which checks the layer against its digest and diff_id);
    then run the smoke test on what umoci unpacked: in runc where it is installed, else in a chroot."""
    result: dict[str, Any] = {}
    expected = {
        "User": runtime.user,
        "Entrypoint": list(runtime.entrypoint),
        "Cmd": list(runtime.cmd),
        "WorkingDir": runtime.working_dir,
        "Env": runtime.env_list(),
        "Labels": runtime.label_map(),
    }
    source = f"oci:{layout}:{ref}"
    if shutil.which("skopeo"):
        inspect = _json(["skopeo", "inspect", source])
        config = _json(["skopeo", "inspect", "--config", source])["config"]
        with tempfile.TemporaryDirectory(prefix="roadie-oci-copy-") as copy:
            subprocess.run(["skopeo", "copy", "--quiet", source, f"oci:{copy}:{ref}"], check=True)
        result["skopeo"] = {
            "digest": inspect["Digest"],
            "layers": len(inspect["Layers"]),
            "config_matches_dockerfile": all(config.get(key) == value for key, value in expected.items()),
            "copy": "ok",
        }
    else:
        result["skopeo"] = "not installed (apt-get install skopeo)"
    if shutil.which("umoci"):
        with tempfile.TemporaryDirectory(prefix="roadie-umoci-") as scratch:
            bundle = pathlib.Path(scratch) / "bundle"
            subprocess.run(["umoci", "unpack", "--image", f"{layout}:{ref}", str(bundle)], check=True)
            spec = json.loads((bundle / "config.json").read_text())
            process = spec["process"]
            result["umoci"] = {
                "args": process["args"],
                "uid": process["user"]["uid"],
                "cwd": process["cwd"],
                "smoke": in_runc(bundle, runtime) if shutil.which("runc") else entry_point(bundle / "rootfs", runtime),
            }
    else:
        result["umoci"] = "not installed (apt-get install umoci)"
    return result
