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

#: Annotations that paste raw configuration into the ingress controller, read by every host it
#: serves (CVE-2021-25742: a snippet can read the controller's service account token). Refused by
#: the API server whatever the operator's settings; `ROADIE_WORKSHOP_INGRESS_ANNOTATIONS_REFUSED`
#: refuses more, by pattern.
SNIPPET_ANNOTATIONS = (
    "nginx.ingress.kubernetes.io/configuration-snippet",
    "nginx.ingress.kubernetes.io/server-snippet",
    "nginx.ingress.kubernetes.io/auth-snippet",
    "nginx.ingress.kubernetes.io/stream-snippet",
    "nginx.ingress.kubernetes.io/modsecurity-snippet",
    "nginx.org/server-snippets",
    "nginx.org/location-snippets",
)
_SNIPPETS_CEL = ", ".join(f"'{key}'" for key in SNIPPET_ANNOTATIONS)


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
    annotations: models.StringMap = pydantic.Field(
        default_factory=dict,
        description=(
            "Copied onto the Ingress. Snippet annotations are refused (CVE-2021-25742); the operator may "
            "allow or refuse more by pattern."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    # iterates the fixed list, not the map: its cost does not grow with the map
                    "rule": f"[{_SNIPPETS_CEL}].all(key, !(key in self))",
                    "message": (
                        "snippet annotations inject configuration into the ingress controller (CVE-2021-25742) "
                        "and are refused: " + ", ".join(SNIPPET_ANNOTATIONS)
                    ),
                }
            ]
        },
    )

    @pydantic.field_validator("annotations")
    @classmethod
    def _no_snippets(cls, value: dict[str, str]) -> dict[str, str]:
        """The CEL rule's twin, so a spec the API server would refuse never parses either."""
        found = sorted(set(value) & set(SNIPPET_ANNOTATIONS))
        if found:
            raise ValueError(f"snippet annotations are refused (CVE-2021-25742): {', '.join(found)}")
        return value

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
