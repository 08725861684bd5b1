"""The one place where the local control plane's component versions are pinned.

Every other module reads these; the binary cache is keyed by them, so bumping a version here is all
it takes to get a fresh build on the next `roadie cluster up`.
"""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Versions:
    kubernetes: str = "1.36.3"
    etcd: str = "3.6.16"
    kwok: str = "0.8.0"
    #: KubeVirt, whose CRDs (not binaries) the local cluster serves; apart from the binaries' key.
    kubevirt: str = "1.8.0"

    @property
    def key(self) -> str:
        """The cache folder name: every pinned version, so no two pins share a cache."""
        return f"k8s-{self.kubernetes}_etcd-{self.etcd}_kwok-{self.kwok}"

    @property
    def staging(self) -> str:
        """The published tag of k8s.io staging modules for this release (1.36.3 -> 0.36.3)."""
        _, minor, patch = self.kubernetes.split(".")
        return f"0.{minor}.{patch}"


PINNED = Versions()

#: Binaries the control plane needs, all found in one folder.
BINARIES: tuple[str, ...] = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "kwokctl",
)
