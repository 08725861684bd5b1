"""Finding, or building once, the command-line tools the tests and `make lint` use beside the
control plane (helm, promtool), from their published Go modules.

They are got the way the control-plane binaries are (`roadie.devcluster.binaries`): compiled once
into a cache keyed by name and version, behind a lock, and renamed into place only when the
binary runs, so an interrupted build leaves nothing a later run would trust. `ROADIE_<NAME>` (for
example `ROADIE_HELM=/usr/local/bin/helm`) names a binary of the user's own instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import pathlib
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping

from roadie.devcluster import binaries

DEFAULT_LDFLAGS = "-s -w"
#: The Kubernetes version helm assumes without a cluster (`helm template`, `helm lint`, a chart's
#: `kubeVersion`): its Makefile derives it from the client-go it is built with (v0.37 -> 1.37);
#: `go install` alone leaves helm's fallback, 1.20, older than any chart needing 1.30.
HELM_K8S = ("1", "37")


@dataclasses.dataclass(frozen=True)
class GoTool:
    name: str
    #: the package to `go install`, without the version
    package: str
    version: str
    #: arguments that make the binary print its version and exit 0
    check: tuple[str, ...] = ("version",)
    ldflags: str = DEFAULT_LDFLAGS

    @property
    def key(self) -> str:
        """The cache folder: name and version, and a digest of the link flags when they set
        variables, so a binary built with other flags is never taken for this one."""
        if self.ldflags == DEFAULT_LDFLAGS:
            return f"{self.name}-{self.version}"
        return f"{self.name}-{self.version}-{hashlib.sha256(self.ldflags.encode()).hexdigest()[:8]}"


#: Every tool, pinned here and nowhere else.
TOOLS: dict[str, GoTool] = {
    "helm": GoTool(
        "helm",
        "helm.sh/helm/v3/cmd/helm",
        "3.22.0",
        ldflags=" ".join(
            [
                "-s -w -X helm.sh/helm/v3/internal/version.version=v3.22.0",
                *(
                    f"-X helm.sh/helm/v3/pkg/{package}.k8sVersion{part}={value}"
                    for package in ("lint/rules", "chartutil")
                    for part, value in zip(("Major", "Minor"), HELM_K8S, strict=True)
                ),
            ]
        ),
    ),
    "promtool": GoTool("promtool", "github.com/prometheus/prometheus/cmd/promtool", "0.316.0", check=("--version",)),
}


def cache_root(env: Mapping[str, str] | None = None) -> pathlib.Path:
    return binaries.cache_root(env).parent / "tools"


def resolve(name: str, env: Mapping[str, str] | None = None, report: binaries.Reporter = print) -> pathlib.Path:
    """The path of tool `name`'s binary, building it first if the cache lacks it."""
    env = os.environ if env is None else env
    tool = TOOLS[name]
    own = env.get(f"ROADIE_{name.upper()}")
    if own:
        path = pathlib.Path(own).expanduser()
        if not os.access(path, os.X_OK):
            raise binaries.BinariesError(f"ROADIE_{name.upper()}={path} is not an executable file")
        return path
    target = cache_root(env) / tool.key
    binary = target / tool.name
    if (target / binaries.COMPLETE_MARKER).is_file() and os.access(binary, os.X_OK):
        return binary
    build(tool, target, report)
    return binary


def build(tool: GoTool, target: pathlib.Path, report: binaries.Reporter = print) -> None:
    if shutil.which("go") is None:
        raise binaries.BinariesError(
            f"no Go toolchain on PATH to build {tool.name}: install Go or set ROADIE_{tool.name.upper()}"
        )
    with binaries.build_lock(target):
        if (target / binaries.COMPLETE_MARKER).is_file():  # built by another process meanwhile
            return
        scratch = target.parent / f".build-{tool.key}-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        started = time.monotonic()
        report(f"building {tool.name} {tool.version} into {target} (once; a cold build takes minutes)")
        binaries.run_go(
            ["install", "-trimpath", "-ldflags", tool.ldflags, f"{tool.package}@v{tool.version}"],
            scratch,
            report,
            {"GOBIN": str(scratch), "GOFLAGS": ""},
        )
        done = subprocess.run(
            [str(scratch / tool.name), *tool.check], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise binaries.BinariesError(f"{tool.name} {' '.join(tool.check)} failed: {done.stderr.strip()[-500:]}")
        (scratch / binaries.COMPLETE_MARKER).write_text(f"{tool.version}\n")
        shutil.rmtree(target, ignore_errors=True)
        os.rename(scratch, target)
        report(f"built {tool.name} in {time.monotonic() - started:.0f}s")


def main() -> None:
    """`python -m roadie.devcluster.tools NAME...`: build or find each tool, print its path."""
    try:
        for name in sys.argv[1:] or sorted(TOOLS):
            print(resolve(name, report=lambda line: print(line, file=sys.stderr, flush=True)))
    except (binaries.BinariesError, KeyError) as error:
        sys.exit(f"roadie: {error}")


if __name__ == "__main__":
    main()
