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


def deployment(body: Any, spec: models.WorkshopSpec, session: Session, port: int) -> dict[str, Any]:
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
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": True,
        },
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
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 1000,
                        "runAsGroup": 1000,
                        "fsGroup": 1000,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
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
