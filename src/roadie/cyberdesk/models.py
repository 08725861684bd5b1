"""The Cyberdesk API as the original operator defined it (`spec.timeoutMs`), plus Roadie's optional
additions, and the bootstrap kind `StartCyberdeskOperator` served so the original's manifests apply.

Every addition is optional: a Cyberdesk written for the original applies unchanged. `deploy/crds/`
is generated from these classes.
"""

from __future__ import annotations

import datetime
from typing import Literal

import pydantic

from roadie.core import api, models

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"

#: The phases a Cyberdesk goes through; see `roadie.cyberdesk.phases` for what each one means.
Phase = Literal[
    "Pending", "Scheduling", "Scheduled", "Running", "Succeeded", "Failed", "Unknown", "Stopping", "TimedOut"
]


class SecretKeyRef(models.ApiModel):
    """A key of a Secret in the Cyberdesk's own namespace."""

    name: str = pydantic.Field(
        min_length=1, max_length=253, pattern=DNS_SUBDOMAIN, description="Name of the Secret (same namespace)."
    )
    key: str = pydantic.Field(
        default="userdata",
        min_length=1,
        max_length=253,
        pattern=SECRET_KEY,
        description="Key in the Secret whose value is the cloud-init user data.",
    )


class CyberdeskSpec(models.ApiModel):
    timeoutMs: int = pydantic.Field(
        ge=1000,
        description="How long the desktop may run, in milliseconds, counted from when it started running; "
        "then it is stopped and its VM deleted. Raising it moves the deadline.",
    )
    # Roadie additions
    userDataSecretRef: SecretKeyRef | None = pydantic.Field(
        default=None,
        description="Roadie addition: cloud-init user data taken from this Secret (passwords, keys, "
        "scripts), rendered as ${user_data_base64}. Unset: a minimal user data without any password.",
    )
    template: str | None = pydantic.Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Roadie addition: name of the VM template ConfigMap in the operator's template namespace; "
        "unset: the operator's default template.",
    )
    pool: bool = pydantic.Field(
        default=True,
        description="Roadie addition: may claim a pre-started VM from the warm pool when one is ready "
        "(never with userDataSecretRef, which a pre-started VM cannot have had); false: always boot a new VM.",
    )


class CyberdeskStatus(models.ApiModel):
    phase: Phase | None = pydantic.Field(default=None, description="Where the desktop is in its life.")
    vmName: str | None = pydantic.Field(default=None, description="The KubeVirt VirtualMachine of this desktop.")
    vmiPhase: str | None = pydantic.Field(
        default=None, description="The VirtualMachineInstance's own phase, as KubeVirt reports it."
    )
    ipAddress: str | None = pydantic.Field(default=None, description="The VM's IP address, once it has one.")
    nodeName: str | None = pydantic.Field(default=None, description="The node the VM runs on.")
    startedAt: datetime.datetime | None = pydantic.Field(
        default=None, description="When the desktop first ran; the timeout counts from here."
    )
    expiresAt: datetime.datetime | None = pydantic.Field(
        default=None,
        description="When the desktop will be stopped: startedAt + timeoutMs (counted from creation until it runs).",
    )
    haltedAt: datetime.datetime | None = pydantic.Field(
        default=None, description="When the VM was asked to stop because the timeout ran out."
    )
    timedOut: bool | None = pydantic.Field(default=None, description="True once the timeout has stopped it.")
    template: str | None = pydantic.Field(default=None, description="The template ConfigMap the VM was made from.")
    message: str | None = None
    observedGeneration: int | None = None
    conditions: list[models.Condition] = pydantic.Field(default_factory=list)


CYBERDESK_API = api.Api(
    group="cyberdesk.io",
    version="v1alpha1",
    kind="Cyberdesk",
    plural="cyberdesks",
    spec=CyberdeskSpec,
    status=CyberdeskStatus,
    short_names=("cd", "cds"),
    printer_columns=(
        api.PrinterColumn("Phase", ".status.phase"),
        api.PrinterColumn("IP", ".status.ipAddress"),
        api.PrinterColumn("Node", ".status.nodeName", priority=1),
        api.PrinterColumn("VM", ".status.vmName", priority=1),
        api.PrinterColumn("Timeout", ".spec.timeoutMs", "integer", "Milliseconds of running allowed.", priority=1),
        api.PrinterColumn("Expires", ".status.expiresAt"),
        api.AGE,
    ),
)


class StartCyberdeskOperatorSpec(models.ApiModel):
    """Empty: the original used this object only to make its operator install the Cyberdesk CRD."""

    model_config = pydantic.ConfigDict(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})


class StartCyberdeskOperatorStatus(models.ApiModel):
    phase: Literal["NotNeeded"] | None = pydantic.Field(
        default=None, description="Always NotNeeded: Roadie serves the Cyberdesk API itself."
    )
    message: str | None = None
    observedGeneration: int | None = None


START_API = api.Api(
    group="cyberdesk.io",
    version="v1alpha1",
    kind="StartCyberdeskOperator",
    plural="startcyberdeskoperators",
    spec=StartCyberdeskOperatorSpec,
    status=StartCyberdeskOperatorStatus,
    short_names=("sco",),
    spec_required=False,
    printer_columns=(
        api.PrinterColumn("Phase", ".status.phase"),
        api.PrinterColumn("Message", ".status.message"),
        api.AGE,
    ),
)

#: The main kind (the catalog's default); `APIS` lists both kinds served.
API = CYBERDESK_API
APIS = [CYBERDESK_API, START_API]
