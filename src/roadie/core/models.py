"""Building blocks of the API models, from which both the operator's parsing and the CRD schemas
come: the Kubernetes condition shape, quantities, durations, and the base every spec shares.

A constraint written here is enforced twice: the API server refuses objects that break it (the
CRD schema is generated from these models) and the operator's parse cannot disagree with it.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

import pydantic

from roadie.core import durations

#: Kubernetes' own resource.Quantity syntax (apimachinery's quantity regular expression).
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"

Quantity = Annotated[
    str,
    pydantic.BeforeValidator(lambda v: str(v) if isinstance(v, int | float) else v),
    pydantic.WithJsonSchema({"x-kubernetes-int-or-string": True, "pattern": QUANTITY_PATTERN}),
    pydantic.Field(pattern=QUANTITY_PATTERN),
]
"""A resource quantity (`500m`, `2Gi`, `2`); YAML integers are accepted, as Kubernetes does."""

Duration = Annotated[str, pydantic.Field(pattern=durations.PATTERN)]
"""A duration such as `4h`, `2h30m`, `1d` (see `roadie.core.durations`)."""

StringMap = dict[str, str]


class ApiModel(pydantic.BaseModel):
    """Base of every spec and status model: API field names as written in manifests."""

    model_config = pydantic.ConfigDict(extra="ignore", populate_by_name=True)


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """metav1.Condition: the shape `kubectl describe` and every Kubernetes tool understands."""

    type: str
    status: ConditionStatus
    reason: str = pydantic.Field(pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
    message: str = ""
    lastTransitionTime: datetime.datetime
    observedGeneration: int | None = None


def now() -> datetime.datetime:
    """The current time in UTC, whole seconds (Kubernetes timestamps carry no fractions)."""
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def timestamp(moment: datetime.datetime) -> str:
    """RFC 3339 in UTC with a `Z`, as the API server writes timestamps."""
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
