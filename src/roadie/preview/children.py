"""Pure builders: a PreviewEnvironment in, the manifests of its namespace and what it holds out.

Names are the seed's (`preview-pr-{N}`, `pr-{N}-app`, `pr-{N}-svc`, `pr-{N}-ingress`,
`pr-{N}-app-netpol`), so dashboards and runbooks written for the original keep working. The
children live in a namespace of their own, where an ownerReference to the PreviewEnvironment
cannot reach: they carry Roadie's parent annotation instead, and the namespace carries the owning
object's uid, which is what every later decision to write or delete it is based on.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from roadie import settings as settings_mod
from roadie.core import children as core_children
from roadie.core import naming
from roadie.preview import models

KIND = "PreviewEnvironment"
OWNER_UID = "roadie.dev/owner-uid"
BRANCH = "roadie.dev/branch"
#: A non-root user for images that declare none: the restricted Pod Security level demands one.
RUN_AS_USER = 10001
#: The Pod Security Standard every preview namespace enforces (and audits and warns about).
POD_SECURITY = {
    **{f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")},
    **{f"pod-security.kubernetes.io/{mode}-version": "latest" for mode in ("enforce", "audit", "warn")},
}

#: Server-side apply is a PATCH, and a PATCH that creates the object also needs `create`.
APPLY = ("create", "patch")
WATCH = ("list", "watch")
#: What the reconcile does to each kind of child, from which the operator's RBAC is generated
#: (`roadie.rbac`). Only the namespace is read by name (who holds it) and deleted (with the
#: object, or when `pr_number` changes); what is inside goes with it. Which namespaces the
#: operator may create, change and delete is narrowed further by the ValidatingAdmissionPolicy in
#: `deploy/policy/`: only those carrying OWNER_UID, since RBAC cannot tell them apart.
ACCESS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "namespaces", (*WATCH, *APPLY, "get", "delete")),
    ("", "resourcequotas", (*WATCH, *APPLY)),
    ("", "limitranges", (*WATCH, *APPLY)),
    ("networking.k8s.io", "networkpolicies", (*WATCH, *APPLY)),
    ("apps", "deployments", (*WATCH, *APPLY)),
    ("", "services", (*WATCH, *APPLY)),
    ("networking.k8s.io", "ingresses", (*WATCH, *APPLY)),
)


@dataclasses.dataclass(frozen=True)
class Effective:
    """The operator settings with this object's overrides applied: what the builders read."""

    base_domain: str
    ingress_class: str
    cluster_issuer: str
    container_port: int
    liveness_path: str
    readiness_path: str
    requests: dict[str, str]
    limits: dict[str, str]
    ingress_namespace: str
    quota: dict[str, str]
    default_requests: dict[str, str]
    default_limits: dict[str, str]
    namespace_prefix: str


def effective(spec: models.PreviewEnvironmentSpec, cfg: settings_mod.PreviewSettings) -> Effective:
    res = spec.resources or models.Resources()
    req = res.requests or models.Amounts()
    lim = res.limits or models.Amounts()
    return Effective(
        base_domain=spec.base_domain or cfg.base_domain,
        ingress_class=spec.ingress_class or cfg.ingress_class,
        cluster_issuer=spec.cluster_issuer or cfg.cluster_issuer,
        container_port=spec.container_port or cfg.container_port,
        liveness_path=spec.liveness_path or cfg.liveness_path,
        readiness_path=spec.readiness_path or cfg.readiness_path,
        requests={"cpu": req.cpu or cfg.cpu_request, "memory": req.memory or cfg.memory_request},
        limits={"cpu": lim.cpu or cfg.cpu_limit, "memory": lim.memory or cfg.memory_limit},
        ingress_namespace=cfg.ingress_namespace,
        quota={
            "requests.cpu": cfg.quota_cpu,
            "requests.memory": cfg.quota_memory,
            "limits.cpu": cfg.quota_cpu,
            "limits.memory": cfg.quota_memory,
            "pods": cfg.quota_pods,
        },
        default_requests={"cpu": cfg.cpu_request, "memory": cfg.memory_request},
        default_limits={"cpu": cfg.cpu_limit, "memory": cfg.memory_limit},
        namespace_prefix=cfg.namespace_prefix,
    )


@dataclasses.dataclass(frozen=True)
class Names:
    pr: int
    namespace: str

    @property
    def deployment(self) -> str:
        return f"pr-{self.pr}-app"

    @property
    def service(self) -> str:
        return f"pr-{self.pr}-svc"

    @property
    def ingress(self) -> str:
        return f"pr-{self.pr}-ingress"

    @property
    def network_policy(self) -> str:
        return f"pr-{self.pr}-app-netpol"

    @property
    def quota(self) -> str:
        return f"pr-{self.pr}-quota"

    @property
    def limit_range(self) -> str:
        return f"pr-{self.pr}-limits"


def names(spec: models.PreviewEnvironmentSpec, eff: Effective) -> Names:
    return Names(spec.pr_number, f"{eff.namespace_prefix}{spec.pr_number}")


def host(spec: models.PreviewEnvironmentSpec, eff: Effective) -> str:
    return f"pr-{spec.pr_number}.{eff.base_domain}"


def url(spec: models.PreviewEnvironmentSpec, eff: Effective) -> str:
    return f"https://{host(spec, eff)}"


def tls_secret(spec: models.PreviewEnvironmentSpec, eff: Effective) -> str:
    return f"{host(spec, eff)}-tls"


def image(spec: models.PreviewEnvironmentSpec) -> str:
    return f"{spec.image}:{spec.image_tag}"


def seed_labels(spec: models.PreviewEnvironmentSpec) -> dict[str, str]:
    """The original operator's labels, and the branch, made label-safe (a branch may be anything)."""
    return {
        "managed-by": "preview-operator",
        "pr-number": str(spec.pr_number),
        BRANCH: naming.label_value(spec.branch_name),
    }


def _meta(
    body: Any, spec: models.PreviewEnvironmentSpec, name: str, namespace: str | None, component: str
) -> dict[str, Any]:
    return core_children.metadata(
        name=name,
        namespace=namespace,
        kind=KIND,
        instance=body["metadata"]["name"],
        component=component,
        parent=body,
        owned=False,  # the children live in another namespace than their parent
        extra_labels=seed_labels(spec),
    )


def namespace(body: Any, spec: models.PreviewEnvironmentSpec, eff: Effective) -> dict[str, Any]:
    meta = _meta(body, spec, names(spec, eff).namespace, None, "namespace")
    meta["labels"] |= {OWNER_UID: body["metadata"]["uid"], **POD_SECURITY}
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def resource_quota(body: Any, spec: models.PreviewEnvironmentSpec, eff: Effective) -> dict[str, Any]:
    n = names(spec, eff)
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(body, spec, n.quota, n.namespace, "quota"),
        "spec": {"hard": dict(eff.quota)},
    }


def limit_range(body: Any, spec: models.PreviewEnvironmentSpec, eff: Effective) -> dict[str, Any]:
    n = names(spec, eff)
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta(body, spec, n.limit_range, n.namespace, "quota"),
        "spec": {
            "limits": [
                {"type": "Container", "default": dict(eff.default_limits), "defaultRequest": dict(eff.default_requests)}
            ]
        },
    }


def network_policy(body: Any, spec: models.PreviewEnvironmentSpec, eff: Effective) -> dict[str, Any]:
    """Ingress only from the ingress controller's namespace and from the preview's own pods."""
    n = names(spec, eff)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(body, spec, n.network_policy, n.namespace, "network"),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": eff.ingress_namespace}}},
                        {"podSelector": {}},
                    ]
                }
            ],
        },
    }


def selector(spec: models.PreviewEnvironmentSpec) -> dict[str, str]:
    return {"app": f"pr-{spec.pr_number}-app"}


def deployment(body: Any, spec: models.PreviewEnvironmentSpec, eff: Effective) -> dict[str, Any]:
    n = names(spec, eff)
    meta = _meta(body, spec, n.deployment, n.namespace, "app")
    probe = {"periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3}
    container = {
        "name": "app",
        "image": image(spec),
        "ports": [{"name": "http", "containerPort": eff.container_port, "protocol": "TCP"}],
        "livenessProbe": {"httpGet": {"path": eff.liveness_path, "port": "http"}, "initialDelaySeconds": 10, **probe},
        "readinessProbe": {"httpGet": {"path": eff.readiness_path, "port": "http"}, **probe, "periodSeconds": 5},
        "resources": {"requests": dict(eff.requests), "limits": dict(eff.limits)},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 3,
            "selector": {"matchLabels": selector(spec)},
            "template": {
                "metadata": {"labels": {**meta["labels"], **selector(spec)}},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS_USER,
                        "runAsGroup": RUN_AS_USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                },
            },
        },
    }


def service(body: Any, spec: models.PreviewEnvironmentSpec, eff: Effective) -> dict[str, Any]:
    n = names(spec, eff)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(body, spec, n.service, n.namespace, "app"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(spec),
            "ports": [{"name": "http", "port": 80, "targetPort": eff.container_port, "protocol": "TCP"}],
        },
    }


def ingress(body: Any, spec: models.PreviewEnvironmentSpec, eff: Effective) -> dict[str, Any]:
    """NGINX Ingress with TLS: cert-manager sees the issuer annotation and fills the secret."""
    n = names(spec, eff)
    meta = _meta(body, spec, n.ingress, n.namespace, "app")
    meta["annotations"]["cert-manager.io/cluster-issuer"] = eff.cluster_issuer
    the_host = host(spec, eff)
    backend = {"service": {"name": n.service, "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta,
        "spec": {
            "ingressClassName": eff.ingress_class,
            "tls": [{"hosts": [the_host], "secretName": tls_secret(spec, eff)}],
            "rules": [{"host": the_host, "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": backend}]}}],
        },
    }


def inside(body: Any, spec: models.PreviewEnvironmentSpec, eff: Effective) -> list[tuple[str, dict[str, Any]]]:
    """Everything inside the namespace, in the order it is applied, each with its step name.

    Quota, limits and network policy first, so that no pod is ever admitted without them or runs
    unfenced; then the Deployment with the Service and Ingress that route to it (`rounds` sends
    each group at once).
    """
    return [
        ("resourcequota", resource_quota(body, spec, eff)),
        ("limitrange", limit_range(body, spec, eff)),
        ("networkpolicy", network_policy(body, spec, eff)),
        ("deployment", deployment(body, spec, eff)),
        ("service", service(body, spec, eff)),
        ("ingress", ingress(body, spec, eff)),
    ]


#: The children that must exist before any pod is admitted: the first round of `rounds`.
GUARDS = ("resourcequota", "limitrange", "networkpolicy")


def rounds(steps: list[tuple[str, dict[str, Any]]]) -> list[list[tuple[str, dict[str, Any]]]]:
    """`inside`'s steps in two rounds, each sent at once: the guards (quota, limits, network
    policy), then the workload (Deployment, Service, Ingress), whose pods the guards must meet.
    Within a round nothing depends on another; the workload's own order matters to no one, since
    creating a Deployment, its Service and its Ingress together serves nothing before its pods
    are ready either way."""
    guards = [step for step in steps if step[0] in GUARDS]
    return [guards, [step for step in steps if step[0] not in GUARDS]]
