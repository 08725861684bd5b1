"""Pure builders: a Workshop's spec in, the manifests of its children out (no API calls here).

Names follow the seed: `<name>-pvc`, `<name>-deployment`, `<name>-service`, `<name>-ingress`
for the first session; each further participant's session adds `-p<i>` to the name
(`<name>-p2-deployment`), so growing a workshop never renames, and never loses, the first
session's data. Every child carries the seed's labels `app`, `component` and `workshop`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from roadie.core import children as core_children
from roadie.workshop import models

KIND = "Workshop"
SESSION_LABEL = "roadie.dev/session"
DATA_PATH = "/home/rstudio"
#: The rocker images' `rstudio` user and group, which own the session's files.
USER_ID = 1000

#: The Pod Security Standard the RStudio pod is built to pass (`ROADIE_WORKSHOP_POD_SECURITY`).
BASELINE, RESTRICTED = "baseline", "restricted"
POD_SECURITY_LEVELS = (BASELINE, RESTRICTED)
#: What the stock images' root init keeps of the runtime's default capabilities, each one allowed
#: by Pod Security baseline: s6-overlay and rserver chown their runtime folders (CHOWN) and change
#: modes of files they do not own (FOWNER), root writes into folders of other users
#: (DAC_OVERRIDE), rserver starts each R session as the signed-in user (SETUID, SETGID) and
#: signals those sessions to suspend or stop them (KILL). NET_RAW, MKNOD, SETPCAP, SETFCAP,
#: SYS_CHROOT, NET_BIND_SERVICE (8787 needs none), FSETID and AUDIT_WRITE are dropped.
ROOT_INIT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID")

#: Server-side apply is a PATCH, and a PATCH that creates the object also needs `create`.
APPLY = ("create", "patch")
WATCH = ("list", "watch")
#: What the reconcile does to each kind of child, from which the operator's RBAC is generated
#: (`roadie.rbac`): apply, list and watch (the informers), `get` when a create finds the name
#: taken, `delete` to prune the sessions a smaller spec no longer asks for. Secrets are created
#: once and never patched: a password is generated only when its secret is made.
ACCESS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("apps", "deployments", (*WATCH, *APPLY, "get", "delete")),
    ("", "services", (*WATCH, *APPLY, "get", "delete")),
    ("", "persistentvolumeclaims", (*WATCH, *APPLY, "get", "delete")),
    ("networking.k8s.io", "ingresses", (*WATCH, *APPLY, "get", "delete")),
    ("", "secrets", (*WATCH, "create", "get", "delete")),
)


@dataclasses.dataclass(frozen=True)
class Session:
    index: int
    base: str  # name prefix of this session's children

    @property
    def pvc(self) -> str:
        return f"{self.base}-pvc"

    @property
    def deployment(self) -> str:
        return f"{self.base}-deployment"

    @property
    def service(self) -> str:
        return f"{self.base}-service"

    @property
    def secret(self) -> str:
        return f"{self.base}-credentials"


def sessions(spec: models.WorkshopSpec) -> list[Session]:
    return [Session(i, spec.name if i == 1 else f"{spec.name}-p{i}") for i in range(1, spec.participants + 1)]


def ingress_name(spec: models.WorkshopSpec) -> str:
    return f"{spec.name}-ingress"


def session_host(spec: models.WorkshopSpec, session: Session) -> str:
    """The first session answers at the workshop's host, participant i at `p<i>.<host>`."""
    host = spec.ingress.host
    return host if session.index == 1 or not host else f"p{session.index}.{host}"


def session_url(spec: models.WorkshopSpec, session: Session, namespace: str, scheme: str) -> str:
    if spec.ingress.host:
        scheme = "https" if spec.ingress.tlsSecretName else scheme
        return f"{scheme}://{session_host(spec, session)}/"
    return f"http://{session.service}.{namespace}.svc.cluster.local/"


def seed_labels(spec: models.WorkshopSpec, component: str, session: Session | None = None) -> dict[str, str]:
    found = {"app": spec.name, "component": component, "workshop": spec.name}
    if session is not None:
        found[SESSION_LABEL] = str(session.index)
    return found


def _meta(body: Any, spec: models.WorkshopSpec, name: str, component: str, session: Session | None) -> dict[str, Any]:
    return core_children.metadata(
        name=name,
        namespace=body["metadata"]["namespace"],
        kind=KIND,
        instance=body["metadata"]["name"],
        component=component,
        parent=body,
        extra_labels=seed_labels(spec, component, session),
    )


def credentials(body: Any, spec: models.WorkshopSpec, session: Session, username: str, password: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(body, spec, session.secret, "credentials", session),
        "type": "kubernetes.io/basic-auth",
        "stringData": {"username": username, "password": password},
    }


def claim(body: Any, spec: models.WorkshopSpec, session: Session) -> dict[str, Any]:
    claim_spec: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.storage.size}},
    }
    if spec.storage.storageClass:
        claim_spec["storageClassName"] = spec.storage.storageClass
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(body, spec, session.pvc, "storage", session),
        "spec": claim_spec,
    }


def security_contexts(level: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (pod, container) security contexts that pass Pod Security `level`.

    `baseline` runs the image's own user (root, for the rocker and Bioconductor images, whose
    s6-overlay init needs it) with every capability dropped but ROOT_INIT_CAPABILITIES, no
    privilege escalation and the runtime's default seccomp profile. `restricted` runs as uid 1000,
    which only images built to start as a non-root user survive. Both give the claim to group 1000,
    so the `rstudio` user can write its home folder.
    """
    pod: dict[str, Any] = {"fsGroup": USER_ID, "seccompProfile": {"type": "RuntimeDefault"}}
    container: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    if level == BASELINE:
        container["capabilities"]["add"] = list(ROOT_INIT_CAPABILITIES)
        return pod, container
    if level == RESTRICTED:
        non_root = {"runAsNonRoot": True, "runAsUser": USER_ID, "runAsGroup": USER_ID}
        return {**non_root, **pod}, {**container, "runAsNonRoot": True}
    raise ValueError(f"unknown Pod Security level {level!r} (ROADIE_WORKSHOP_POD_SECURITY): use baseline or restricted")


def deployment(
    body: Any, spec: models.WorkshopSpec, session: Session, port: int, *, pod_security: str = BASELINE
) -> dict[str, Any]:
    pod_context, container_context = security_contexts(pod_security)
    selector = {"workshop": spec.name, SESSION_LABEL: str(session.index)}
    meta = _meta(body, spec, session.deployment, "rstudio", session)
    pod_labels = {**meta["labels"]}
    secret_env = [
        {"name": env, "valueFrom": {"secretKeyRef": {"name": session.secret, "key": key}}}
        for env, key in (("USER", "username"), ("PASSWORD", "password"))
    ]
    container = {
        "name": "rstudio",
        "image": spec.image,
        "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
        "env": [*secret_env, {"name": "DISABLE_AUTH", "value": "false"}],
        "resources": {
            "limits": {"cpu": spec.resources.cpu, "memory": spec.resources.memory},
            "requests": {"cpu": spec.resources.cpuRequest, "memory": spec.resources.memoryRequest},
        },
        "volumeMounts": [{"name": "data", "mountPath": DATA_PATH}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 10},
        "securityContext": container_context,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one writer on a ReadWriteOnce claim
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": pod_context,
                    "containers": [container],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": session.pvc}}],
                },
            },
        },
    }


def service(body: Any, spec: models.WorkshopSpec, session: Session, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(body, spec, session.service, "rstudio", session),
        "spec": {
            "type": "ClusterIP",
            "selector": {"workshop": spec.name, SESSION_LABEL: str(session.index)},
            "ports": [{"name": "http", "port": 80, "targetPort": port, "protocol": "TCP"}],
        },
    }


def ingress(body: Any, spec: models.WorkshopSpec, all_sessions: list[Session]) -> dict[str, Any] | None:
    if not spec.ingress.host:
        return None
    meta = _meta(body, spec, ingress_name(spec), "rstudio", None)
    meta["annotations"] = {**spec.ingress.annotations, **meta["annotations"]}
    rules = [
        {
            "host": session_host(spec, session),
            "http": {
                "paths": [
                    {
                        "path": "/",
                        "pathType": "Prefix",
                        "backend": {"service": {"name": session.service, "port": {"number": 80}}},
                    }
                ]
            },
        }
        for session in all_sessions
    ]
    ingress_spec: dict[str, Any] = {"rules": rules}
    if spec.ingress.className:
        ingress_spec["ingressClassName"] = spec.ingress.className
    if spec.ingress.tlsSecretName:
        hosts = [rule["host"] for rule in rules]
        ingress_spec["tls"] = [{"hosts": hosts, "secretName": spec.ingress.tlsSecretName}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": ingress_spec}
