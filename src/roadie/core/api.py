"""How a kind is addressed and presented: group, version, names, scope, printer columns.

Kept apart from the data models (as lightkube keeps models apart from resources) so that the CRD
generator, the client and the handlers all read one description of each kind.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pydantic


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0

    def manifest(self) -> dict[str, Any]:
        column: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.description:
            column["description"] = self.description
        if self.priority:
            column["priority"] = self.priority
        return column


AGE = PrinterColumn("Age", ".metadata.creationTimestamp", "date")


@dataclasses.dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry. Frozen (not a dict) so that an `Api` stays hashable:
    the client caches one resource class per `Api`."""

    rule: str
    message: str = ""
    field_path: str = ""
    reason: str = ""
    #: a transition rule (uses `oldSelf`) is only checked on updates; see the Kubernetes docs
    optional_old_self: bool = False

    def manifest(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rule": self.rule}
        if self.message:
            out["message"] = self.message
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        if self.optional_old_self:
            out["optionalOldSelf"] = True
        return out


@dataclasses.dataclass(frozen=True)
class Api:
    group: str
    version: str
    kind: str
    plural: str
    spec: type[pydantic.BaseModel]
    status: type[pydantic.BaseModel] | None = None
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ("roadie",)
    namespaced: bool = True
    printer_columns: tuple[PrinterColumn, ...] = (AGE,)
    spec_required: bool = True
    #: CEL rules on the whole spec (`x-kubernetes-validations`), for rules across fields.
    spec_rules: tuple[CelRule, ...] = ()

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"
