"""KubeVirt's own CRDs for the local cluster, generated from KubeVirt's Go module and cached by version.

KubeVirt cannot run here (no hardware virtualisation, no container runtime), but an operator that
creates VirtualMachines needs the API server to serve and validate them exactly as KubeVirt's CRDs
do. Hand-written CRDs would drift from the real schema, so the CRDs are produced by KubeVirt's own
code: a tiny Go program in a wrapper module calls `NewVirtualMachineCrd` and
`NewVirtualMachineInstanceCrd` from `kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components`
(what virt-operator installs) and prints them as YAML. As for the control-plane binaries
(`binaries.py`), KubeVirt's `go.mod` points its staging modules (`kubevirt.io/api`,
`kubevirt.io/client-go`) at its own source tree, which a module download does not have, so the
wrapper repeats KubeVirt's `replace` lines with those two pointed at their published tags.
The YAML is cached under `~/.cache/roadie/kubevirt/kubevirt-<version>/`, so only the first run
builds. `roadie.devcluster.virtcontroller` plays the controller that acts on these objects.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import time
import typing
from collections.abc import Callable, Mapping
from typing import Any

import lightkube
import yaml
from lightkube.core.exceptions import ApiError
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition

from roadie.devcluster import binaries, versions

ENV_CRDS = "ROADIE_KUBEVIRT_CRDS"
CRDS_FILE = "crds.yaml"
CRD_NAMES = ("virtualmachines.kubevirt.io", "virtualmachineinstances.kubevirt.io")
FIELD_MANAGER = "roadie-devcluster"
#: On each installed CRD: the hash of the file it came from, so an unchanged CRD is not rewritten.
SOURCE_ANNOTATION = "devcluster.roadie.dev/source-sha256"

MAIN_GO = """\
// Prints KubeVirt's VirtualMachine and VirtualMachineInstance CRDs as virt-operator builds them.
package main

import (
\t"fmt"
\t"os"

\textv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
\t"sigs.k8s.io/yaml"

\t"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
)

func main() {
\tfor _, build := range []func() (*extv1.CustomResourceDefinition, error){
\t\tcomponents.NewVirtualMachineCrd,
\t\tcomponents.NewVirtualMachineInstanceCrd,
\t} {
\t\tcrd, err := build()
\t\tif err != nil {
\t\t\tfmt.Fprintln(os.Stderr, err)
\t\t\tos.Exit(1)
\t\t}
\t\tout, err := yaml.Marshal(crd)
\t\tif err != nil {
\t\t\tfmt.Fprintln(os.Stderr, err)
\t\t\tos.Exit(1)
\t\t}
\t\tfmt.Printf("---\\n%s", out)
\t}
}
"""


def cache_folder(pins: versions.Versions = versions.PINNED, env: Mapping[str, str] | None = None) -> pathlib.Path:
    return binaries.cache_root(env).parent / "kubevirt" / f"kubevirt-{pins.kubevirt}"


def wrapper_go_mod(kubevirt_go_mod: str, version: str) -> str:
    """The wrapper module: KubeVirt's own `replace` lines (a dependency's are ignored by Go), with
    each one into its source tree (`./staging/src/...`) pointed at that module's published tag."""
    replaces: list[str] = []
    for block in re.findall(r"^replace \((.*?)^\)", kubevirt_go_mod, re.S | re.M):
        for line in block.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[1] == "=>":
                replaces.append(f"\t{parts[0]} => {parts[2]} {parts[3]}")
            elif len(parts) == 3 and parts[1] == "=>" and parts[2].startswith("./"):
                replaces.append(f"\t{parts[0]} => {parts[0]} v{version}")
    for line in re.findall(r"^replace (\S+ => \S+(?: \S+)?)$", kubevirt_go_mod, re.M):
        parts = line.split()
        if len(parts) == 4:
            replaces.append(f"\t{line}")
    body = "\n".join(replaces)
    return (
        "module roadie.local/kubevirtcrds\n\n"
        "go 1.26\n\n"
        f"require kubevirt.io/kubevirt v{version}\n\n"
        f"replace (\n{body}\n)\n"
    )


def resolve(
    *,
    pins: versions.Versions = versions.PINNED,
    env: Mapping[str, str] | None = None,
    build: Callable[[pathlib.Path, versions.Versions, binaries.Reporter], None] | None = None,
    report: binaries.Reporter = print,
) -> pathlib.Path:
    """The YAML file holding KubeVirt's CRDs: `ROADIE_KUBEVIRT_CRDS`, else the cache, else a build."""
    env = os.environ if env is None else env
    explicit = env.get(ENV_CRDS)
    if explicit:
        path = pathlib.Path(explicit).expanduser()
        if not path.is_file():
            raise binaries.BinariesError(f"{ENV_CRDS}={path} is not a file; unset it to let Roadie generate the CRDs")
        return path
    target = cache_folder(pins, env)
    if not (target / CRDS_FILE).is_file():
        (build or build_crds)(target, pins, report)
    if not (target / CRDS_FILE).is_file():
        raise binaries.BinariesError(f"the KubeVirt CRD build finished but {target / CRDS_FILE} is missing")
    return target / CRDS_FILE


def build_crds(target: pathlib.Path, pins: versions.Versions, report: binaries.Reporter = print) -> None:
    """Generate the CRDs into `target/crds.yaml`, atomically, holding a lock against a parallel build."""
    if shutil.which("go") is None:
        raise binaries.BinariesError(f"no Go toolchain on PATH: install Go, or point {ENV_CRDS} at KubeVirt's CRDs")
    with binaries.build_lock(target):
        if (target / CRDS_FILE).is_file():
            return
        scratch = target.parent / f".build-{target.name}-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
        started = time.monotonic()
        report(
            f"generating KubeVirt {pins.kubevirt}'s CRDs from its Go module into {target} (a cold build takes minutes)"
        )
        try:
            module = f"kubevirt.io/kubevirt@v{pins.kubevirt}"
            info = json.loads(binaries.run_go(["mod", "download", "-json", module], scratch, report))
            (scratch / "go.mod").write_text(wrapper_go_mod(pathlib.Path(info["GoMod"]).read_text(), pins.kubevirt))
            (scratch / "main.go").write_text(MAIN_GO)
            binaries.run_go(["build", "-trimpath", "-ldflags", "-s -w", "-o", "gen", "."], scratch, report)
            proc = subprocess.run([str(scratch / "gen")], capture_output=True, text=True, timeout=120, check=False)
            if proc.returncode != 0:
                raise binaries.BinariesError(f"the KubeVirt CRD generator failed: {proc.stderr[-2000:]}")
            names = [doc["metadata"]["name"] for doc in load_text(proc.stdout)]
            if sorted(names) != sorted(CRD_NAMES):
                raise binaries.BinariesError(f"the KubeVirt CRD generator printed {names}, not {list(CRD_NAMES)}")
            (scratch / CRDS_FILE).write_text(proc.stdout)
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir(parents=True)
            os.rename(scratch / CRDS_FILE, target / CRDS_FILE)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        report(f"generated KubeVirt's CRDs in {time.monotonic() - started:.0f}s")


def load_text(text: str) -> list[dict[str, Any]]:
    """The CRDs as objects to apply: Go's zero-valued `status` and `creationTimestamp` dropped."""
    found = []
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: a tenth of the time on 1 MB
    for doc in yaml.load_all(text, Loader=loader):
        if not doc:
            continue
        doc.pop("status", None)
        doc.get("metadata", {}).pop("creationTimestamp", None)
        found.append(doc)
    return found


def install(kubeconfig: pathlib.Path, crds: pathlib.Path) -> list[str]:
    """Install the CRDs (without waiting for the API to serve them: see `wait_established`).

    Each CRD is about 600 KB: a server-side apply of that takes seconds and `kubectl apply`'s
    last-applied annotation cannot hold it. So a CRD is created, left alone when it already holds
    this file's content (its hash annotation says so), and replaced otherwise."""
    text = crds.read_text()
    digest = hashlib.sha256(text.encode()).hexdigest()
    api = _client(kubeconfig)
    names = []
    for doc in load_text(text):
        doc["metadata"].setdefault("annotations", {})[SOURCE_ANNOTATION] = digest
        crd = typing.cast(CustomResourceDefinition, CustomResourceDefinition.from_dict(doc))
        name = doc["metadata"]["name"]
        names.append(name)
        try:
            api.create(crd)
            continue
        except ApiError as error:
            if error.status.code != 409:
                raise
        existing = api.get(CustomResourceDefinition, name)
        if (existing.metadata.annotations or {}).get(SOURCE_ANNOTATION) != digest:
            crd.metadata.resourceVersion = existing.metadata.resourceVersion
            api.replace(crd)
    return names


def wait_established(kubeconfig: pathlib.Path, names: list[str], timeout: float = 60.0) -> None:
    """Wait until the API serves each CRD; the API server takes a few seconds over schemas this big."""
    api = _client(kubeconfig)
    deadline = time.monotonic() + timeout
    waiting = set(names)
    while waiting and time.monotonic() < deadline:
        for found in api.list(CustomResourceDefinition, labels={"kubevirt.io": ""}):
            conditions = (found.status.conditions if found.status else None) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                waiting.discard(str(found.metadata.name))
        if waiting:
            time.sleep(0.25)
    if waiting:
        raise binaries.BinariesError(f"KubeVirt's CRDs {sorted(waiting)} were not established within {timeout:.0f}s")


def _client(kubeconfig: pathlib.Path) -> lightkube.Client:
    return lightkube.Client(config=lightkube.KubeConfig.from_file(kubeconfig), field_manager=FIELD_MANAGER)
