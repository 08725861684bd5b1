"""The resources Roadie watches and writes, addressed once: the informers' sources and the map
from a manifest's apiVersion and kind to the cache that holds objects of that kind."""

from __future__ import annotations

from roadie.core import api as api_mod
from roadie.core.informer import Body, Source


def slim_pod(pod: Body) -> Body:
    """A pod as its readers read it: metadata and status (phase, conditions, container states and
    termination messages); of its spec only the node. Pods are created, never applied, so no
    reconcile compares their spec; the spec (volumes, the service account token's projection,
    tolerations, every container's defaults) is most of a pod's size."""
    spec = pod.get("spec") or {}
    pod["spec"] = {"nodeName": spec["nodeName"]} if "nodeName" in spec else {}
    return pod


NAMESPACES = Source("", "v1", "Namespace", "namespaces", namespaced=False)
PODS = Source("", "v1", "Pod", "pods", compact=False, slim=slim_pod)
SERVICES = Source("", "v1", "Service", "services", status_wakes=False)
SECRETS = Source("", "v1", "Secret", "secrets")
CONFIG_MAPS = Source("", "v1", "ConfigMap", "configmaps")
PVCS = Source("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims")
RESOURCE_QUOTAS = Source("", "v1", "ResourceQuota", "resourcequotas", status_wakes=False)
LIMIT_RANGES = Source("", "v1", "LimitRange", "limitranges")
DEPLOYMENTS = Source("apps", "v1", "Deployment", "deployments")
JOBS = Source("batch", "v1", "Job", "jobs")
INGRESSES = Source("networking.k8s.io", "v1", "Ingress", "ingresses", status_wakes=False)
NETWORK_POLICIES = Source("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies")
STORAGE_CLASSES = Source("storage.k8s.io", "v1", "StorageClass", "storageclasses", namespaced=False)

KNOWN = (
    NAMESPACES,
    PODS,
    SERVICES,
    SECRETS,
    CONFIG_MAPS,
    PVCS,
    RESOURCE_QUOTAS,
    LIMIT_RANGES,
    DEPLOYMENTS,
    JOBS,
    INGRESSES,
    NETWORK_POLICIES,
    STORAGE_CLASSES,
)
_BY_TYPE = {(s.api_version, s.kind): s for s in KNOWN}


def of_api(api: api_mod.Api) -> Source:
    return Source(api.group, api.version, api.kind, api.plural, api.namespaced)


def register(source: Source) -> Source:
    """Make a source known by its apiVersion and kind (a kind's own children, e.g. KubeVirt's)."""
    _BY_TYPE[(source.api_version, source.kind)] = source
    return source


def for_manifest(manifest: dict[str, object]) -> Source | None:
    return _BY_TYPE.get((str(manifest.get("apiVersion")), str(manifest.get("kind"))))
