"""The PreviewEnvironment API, as the original preview operator defined it, plus Roadie's optional
per-object overrides of the operator settings.

Field names are the seed's snake_case ones, so existing manifests apply unchanged; every addition
is optional and, when unset, falls back to `roadie.settings.PreviewSettings`. `deploy/crds/` is
generated from these classes.
"""

from __future__ import annotations

import datetime
from typing import Literal

import pydantic

from roadie.core import api, models

DNS_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
HTTP_PATH = r"^/[^\s]*$"

# The same values in the same order as Workspace's phases: typing caches `Literal[...] | None` by
# the set of values, so two orders of one set would make the CRDs depend on import order.
Phase = Literal["Pending", "Creating", "Ready", "Updating", "Failed", "Terminating"]


class Amounts(models.ApiModel):
    cpu: models.Quantity | None = None
    memory: models.Quantity | None = None


class Resources(models.ApiModel):
    """The container's requests and limits; an amount left out takes the operator's default."""

    requests: Amounts | None = None
    limits: Amounts | None = None


class PreviewEnvironmentSpec(models.ApiModel):
    pr_number: int = pydantic.Field(ge=1, le=999999, description="Pull request number; names everything.")
    branch_name: str = pydantic.Field(min_length=1, max_length=255, description="Git branch of the PR.")
    image: str = pydantic.Field(min_length=1, max_length=256, pattern=r"^[a-zA-Z0-9._/\-]+$")
    image_tag: str = pydantic.Field(
        min_length=1, max_length=128, pattern=r"^[a-zA-Z0-9._\-]+$", description="A new tag rolls the Deployment."
    )
    ttl_seconds: int | None = pydantic.Field(
        default=None, ge=60, le=86400, description="Delete the environment this long after its creation."
    )
    # Roadie additions: per-object overrides of the operator's settings.
    base_domain: str | None = pydantic.Field(
        default=None, max_length=200, pattern=DNS_NAME, description="Served at pr-<N>.<base_domain>."
    )
    ingress_class: str | None = pydantic.Field(default=None, max_length=63, pattern=DNS_NAME)
    cluster_issuer: str | None = pydantic.Field(
        default=None, max_length=253, pattern=DNS_NAME, description="cert-manager ClusterIssuer of the TLS cert."
    )
    container_port: int | None = pydantic.Field(default=None, ge=1, le=65535)
    liveness_path: str | None = pydantic.Field(default=None, max_length=1024, pattern=HTTP_PATH)
    readiness_path: str | None = pydantic.Field(default=None, max_length=1024, pattern=HTTP_PATH)
    resources: Resources | None = None


class PreviewEnvironmentStatus(models.ApiModel):
    phase: Phase | None = None
    url: str | None = None
    namespace: str | None = pydantic.Field(default=None, description="The namespace this object holds.")
    expiresAt: datetime.datetime | None = None
    readyAt: datetime.datetime | None = pydantic.Field(
        default=None, description="When the Deployment first became available."
    )
    image: str | None = pydantic.Field(default=None, description="The image the Deployment runs.")
    message: str | None = None
    observedGeneration: int | None = None
    conditions: list[models.Condition] = pydantic.Field(default_factory=list)


API = api.Api(
    group="devops.orima.com",
    version="v1",
    kind="PreviewEnvironment",
    plural="previewenvironments",
    spec=PreviewEnvironmentSpec,
    status=PreviewEnvironmentStatus,
    short_names=("pe", "preview"),
    printer_columns=(
        api.PrinterColumn("PR", ".spec.pr_number", "integer"),
        api.PrinterColumn("Branch", ".spec.branch_name"),
        api.PrinterColumn("Tag", ".spec.image_tag"),
        api.PrinterColumn("Phase", ".status.phase"),
        api.PrinterColumn("URL", ".status.url"),
        api.PrinterColumn("Namespace", ".status.namespace", priority=1),
        api.PrinterColumn("Expires", ".status.expiresAt"),
        api.AGE,
    ),
)
