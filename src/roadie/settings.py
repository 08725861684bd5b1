"""Operator settings, grouped by topic under one root, read once at startup (never at import).

Every field can be set from the environment as `ROADIE_<GROUP>_<FIELD>` (for example
`ROADIE_WORKSHOP_PROVISIONING_DEADLINE=5m`, `ROADIE_PREVIEW_BASE_DOMAIN=preview.example.com`), so
the same image serves every cluster; `roadie run` flags override the operator group.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from typing import Any

ALL_CONTROLLERS = ("workshop", "preview", "cyberdesk", "observatory", "workspace")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


@dataclasses.dataclass
class OperatorSettings:
    controllers: tuple[str, ...] = ALL_CONTROLLERS
    namespaces: tuple[str, ...] = ()  # empty: every namespace
    log_format: str = "text"
    log_level: str = "INFO"
    #: the interface both servers listen on, unless `metrics_host` or `health_host` names another
    host: str = "0.0.0.0"
    metrics_port: int = 8080
    health_port: int = 8081
    #: set by `--metrics-bind-address HOST:PORT` / `--health-probe-bind-address` (empty: `host`)
    metrics_host: str = ""
    health_host: str = ""
    #: one active replica elected by a Lease (`roadie-leader` in $POD_NAMESPACE); the others stand by
    leader_elect: bool = False
    #: /metrics over HTTPS, only for callers the API server authenticates and authorises
    metrics_secure: bool = False
    #: a folder holding tls.crt and tls.key for the HTTPS metrics server (empty: a self-signed pair)
    metrics_cert_dir: str = ""
    #: the seeds' `--enable-http2` (off by default since HTTP/2 rapid reset, CVE-2023-44487); the
    #: metrics server speaks HTTP/1.1 only, so its TLS offers `http/1.1` alone either way
    enable_http2: bool = False
    #: every object is reconciled this often even if nothing changed (spread evenly over the period)
    resync_seconds: float = 600.0
    kubeconfig: str = ""
    #: client-side rate limit of API requests (client-go's QPS and burst); 0: unlimited
    api_qps: float = 200.0
    api_burst: int = 400
    #: reconcile workers per kind (asyncio tasks)
    workers: int = 16
    #: seconds a watch stays open before it is renewed (from the last version seen)
    watch_timeout: int = 300


@dataclasses.dataclass
class WorkshopSettings:
    #: A workshop not Ready this long after creation goes Failed.
    provisioning_deadline: str = "10m"
    #: A warning event this long before expiry.
    expiry_warning: str = "15m"
    #: RStudio's port inside the pod.
    container_port: int = 8787
    #: The user RStudio sessions log in as (rocker images' default).
    username: str = "rstudio"
    #: Scheme of ingress URLs written to status.
    url_scheme: str = "http"
    #: The RStudio pod's security context: `baseline` (root init with a few capabilities, what the
    #: stock rocker and Bioconductor images need) or `restricted` (uid 1000, for non-root images).
    pod_security: str = "baseline"
    #: Glob patterns an `ingress.annotations` key must match to be copied onto the Ingress.
    ingress_annotations_allowed: tuple[str, ...] = ("*",)
    #: Glob patterns refused even when allowed: configuration injected into the ingress controller
    #: (ingress-nginx snippets, CVE-2021-25742; NGINX Inc's `nginx.org/*-snippets`).
    ingress_annotations_refused: tuple[str, ...] = ("*-snippet", "*-snippets")


@dataclasses.dataclass
class PreviewSettings:
    base_domain: str = "preview.orimatest.com"
    ingress_class: str = "nginx"
    cluster_issuer: str = "letsencrypt-prod"
    container_port: int = 8000
    liveness_path: str = "/"
    readiness_path: str = "/"
    cpu_request: str = "100m"
    memory_request: str = "128Mi"
    cpu_limit: str = "250m"
    memory_limit: str = "256Mi"
    #: The ingress controller's namespace: the only other namespace allowed to reach a preview.
    ingress_namespace: str = "ingress-nginx"
    quota_cpu: str = "2"
    quota_memory: str = "2Gi"
    quota_pods: str = "10"
    namespace_prefix: str = "preview-pr-"
    #: ClusterIssuers an object may name in `cluster_issuer`, besides `cluster_issuer` itself.
    allowed_cluster_issuers: tuple[str, ...] = ()
    #: Base domains (glob patterns, e.g. `*.preview.example.com`) an object may name in
    #: `base_domain`, besides `base_domain` itself.
    allowed_base_domains: tuple[str, ...] = ()


@dataclasses.dataclass
class CyberdeskSettings:
    #: Where template ConfigMaps live, the default template's name, and the key holding a template.
    template_namespace: str = "cyberdesk-system"
    template_name: str = "cyberdesk-vm-template"
    template_key: str = "vm-template.yaml"
    #: `${managed_by}` and the `managed-by` label.
    managed_by: str = "roadie"
    #: The warning before a desktop's timeout, and the longest wait between halting and deleting.
    expiry_warning: str = "5m"
    stop_grace: str = "2m"
    #: Status sinks: a PostgreSQL URL, Supabase's REST interface (also SUPABASE_URL/SUPABASE_KEY), a webhook.
    postgres_url: str = ""
    create_table: bool = False
    sink_table: str = "cyberdesk_instances"
    sink_key_column: str = "name"
    sink_upsert: bool = True
    supabase_url: str = ""
    supabase_key: str = ""
    webhook_url: str = ""
    webhook_secret: str = ""
    #: Pre-started VMs kept per pooled template in each pool namespace (0: no warm pool).
    pool_size: int = 0
    #: Namespaces that keep a warm pool (its VMs are adopted there, by an ownerReference).
    pool_namespaces: tuple[str, ...] = ("default",)
    #: Templates with a warm pool; empty: the default template only.
    pool_templates: tuple[str, ...] = ()


@dataclasses.dataclass
class WorkspaceSettings:
    #: The workspace pods' image when a Workspace names none (`spec.image` overrides it); it is
    #: kept running with `sleep infinity`, a shell for `kubectl exec` in main/.
    image: str = "docker.io/library/busybox:1.37"
    #: The snapshot engine's image: the operator's own (it runs `roadie jvs ...`).
    engine_image: str = "ghcr.io/roadie/roadie:0.1.0"
    #: The engine's command in that image (comma-separated in the environment).
    engine_command: tuple[str, ...] = ("roadie", "jvs")
    #: Where the workspace's claim is mounted in its pods and the engine's; main/ is under it.
    mount_path: str = "/workspace"
    #: The user and group the workspace pods and the engine run as (they share the files).
    user_id: int = 1000
    #: Seconds an engine Job may run before it is stopped (activeDeadlineSeconds).
    engine_deadline_seconds: int = 3600


@dataclasses.dataclass
class Settings:
    operator: OperatorSettings = dataclasses.field(default_factory=OperatorSettings)
    workshop: WorkshopSettings = dataclasses.field(default_factory=WorkshopSettings)
    preview: PreviewSettings = dataclasses.field(default_factory=PreviewSettings)
    cyberdesk: CyberdeskSettings = dataclasses.field(default_factory=CyberdeskSettings)
    workspace: WorkspaceSettings = dataclasses.field(default_factory=WorkspaceSettings)


def _convert(raw: str, kind: Any) -> Any:
    if kind in (int, "int"):
        return int(raw)
    if kind in (float, "float"):
        return float(raw)
    if kind in (bool, "bool"):
        return raw.lower() in ("1", "true", "yes", "on")
    if str(kind).startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def load(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    settings = Settings()
    for group in dataclasses.fields(settings):
        section = getattr(settings, group.name)
        hints = typing.get_type_hints(type(section))
        for field in dataclasses.fields(section):
            key = f"ROADIE_{group.name}_{field.name}".upper()
            if key in env:
                setattr(section, field.name, _convert(env[key], hints[field.name]))
    if "ROADIE_OPERATOR_LOG_LEVEL" not in env and env.get("KOPF_LOG_LEVEL"):
        # the Orchestra seed's operator (kopf) took its level from here; its deployments keep working
        settings.operator.log_level = env["KOPF_LOG_LEVEL"]
    return settings


def bind(op: OperatorSettings, server: typing.Literal["metrics", "health"], address: str) -> None:
    """Apply a controller-runtime bind address (`--metrics-bind-address`,
    `--health-probe-bind-address`) to the server's host and port: `:8080` (the default interface,
    `host`), `127.0.0.1:8080`, `[::1]:8080`, or `0` (no server). Empty: leave both as they are."""
    address = address.strip()
    if not address:
        return
    host, port = "", 0
    if address != "0":
        host, sep, digits = address.rpartition(":")
        if not sep or not digits.isdigit() or int(digits) > 65535:
            raise ValueError(f"{address!r} is not HOST:PORT, :PORT or 0")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        elif ":" in host:
            raise ValueError(f"{address!r}: an IPv6 address goes in brackets, as [::1]:8080")
        port = int(digits)
    setattr(op, f"{server}_host", host)
    setattr(op, f"{server}_port", port)


_current: Settings | None = None


def current() -> Settings:
    """The settings the operator started with (defaults plus environment, if never set)."""
    global _current
    if _current is None:
        _current = load()
    return _current


def use(settings: Settings) -> Settings:
    global _current
    _current = settings
    return settings
