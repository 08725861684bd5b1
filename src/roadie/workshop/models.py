"""The Workshop API, exactly as Orchestra defined it, plus Roadie's optional additions.

Field names, defaults and phases are the seed's; `deploy/crds/` is generated from these classes.
"""

from __future__ import annotations

import datetime
from typing import Literal

import pydantic

from roadie.core import api, models

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"

Phase = Literal["Pending", "Creating", "Ready", "Running", "Terminating", "Failed"]


class Resources(models.ApiModel):
    cpu: models.Quantity = "1"
    memory: models.Quantity = "2Gi"
    cpuRequest: models.Quantity = "500m"
    memoryRequest: models.Quantity = "1Gi"


class Storage(models.ApiModel):
    size: models.Quantity = "10Gi"
    storageClass: str | None = pydantic.Field(
        default=None, description="StorageClass of the claims; empty or unset: the cluster's default."
    )


class Ingress(models.ApiModel):
    host: str = pydantic.Field(
        default="",
        pattern=r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        description="Host name of the workshop (no wildcard: its URL is reported); empty: no Ingress.",
    )
    annotations: models.StringMap = pydantic.Field(default_factory=dict)
    className: str | None = pydantic.Field(default=None, description="Roadie addition: ingressClassName.")
    tlsSecretName: str | None = pydantic.Field(
        default=None, description="Roadie addition: serve TLS with this secret; URLs become https."
    )


class WorkshopSpec(models.ApiModel):
    name: str = pydantic.Field(
        min_length=1,
        max_length=40,
        pattern=DNS_LABEL,
        description="Workshop instance name; children are named after it (<name>-deployment, ...).",
    )
    duration: models.Duration = pydantic.Field(default="4h", description="Lifetime, e.g. 2h30m, 1d.")
    participants: int = pydantic.Field(default=1, ge=1, le=100, description="One isolated session each.")
    image: str = pydantic.Field(default="rocker/rstudio:latest", min_length=1)
    resources: Resources = pydantic.Field(default_factory=Resources)
    storage: Storage = pydantic.Field(default_factory=Storage)
    ingress: Ingress = pydantic.Field(default_factory=Ingress)


class Session(models.ApiModel):
    """One participant's RStudio: its own claim, deployment, credentials and URL."""

    index: int
    name: str
    url: str = ""
    credentialsSecret: str = ""
    ready: bool = False


class WorkshopStatus(models.ApiModel):
    phase: Phase | None = None
    url: str | None = None
    createdAt: datetime.datetime | None = None
    expiresAt: datetime.datetime | None = None
    conditions: list[models.Condition] = pydantic.Field(default_factory=list)
    # Roadie additions
    message: str | None = None
    observedGeneration: int | None = None
    credentialsSecret: str | None = pydantic.Field(
        default=None, description="Secret with the username and password of the first session."
    )
    sessions: list[Session] = pydantic.Field(default_factory=list)
    readySessions: int | None = None


API = api.Api(
    group="orchestra.io",
    version="v1",
    kind="Workshop",
    plural="workshops",
    spec=WorkshopSpec,
    status=WorkshopStatus,
    short_names=("ws",),
    printer_columns=(
        api.PrinterColumn("Phase", ".status.phase"),
        api.PrinterColumn("Participants", ".spec.participants", "integer"),
        api.PrinterColumn("URL", ".status.url"),
        api.PrinterColumn("Expires", ".status.expiresAt"),
        api.AGE,
    ),
)
