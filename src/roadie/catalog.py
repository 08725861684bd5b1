"""Every kind Roadie serves: its controller name, its APIs, and the module that holds its
controllers. The one list that `roadie run`, `roadie crds` and the tests read; a new kind is one
line here."""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any

from roadie.core import api as api_mod


@dataclasses.dataclass(frozen=True)
class KindEntry:
    controller: str
    models_module: str
    #: the module whose `controller` (or `CONTROLLERS`) the operator runs
    reconcile_module: str

    def apis(self) -> list[api_mod.Api]:
        module = importlib.import_module(self.models_module)
        return list(module.APIS) if hasattr(module, "APIS") else [module.API]

    def controllers(self) -> list[Any]:
        module = importlib.import_module(self.reconcile_module)
        return list(getattr(module, "CONTROLLERS", [getattr(module, "controller", None)]))


KINDS: tuple[KindEntry, ...] = (
    KindEntry("workshop", "roadie.workshop.models", "roadie.workshop.reconcile"),
    KindEntry("preview", "roadie.preview.models", "roadie.preview.reconcile"),
    KindEntry("cyberdesk", "roadie.cyberdesk.models", "roadie.cyberdesk.reconcile"),
    KindEntry("workspace", "roadie.workspace.models", "roadie.workspace.reconcile"),
    KindEntry("observatory", "roadie.observatory.models", "roadie.observatory.reconcile"),
)


def enabled(names: tuple[str, ...]) -> list[KindEntry]:
    unknown = set(names) - {k.controller for k in KINDS}
    if unknown:
        raise ValueError(f"unknown controller(s) {', '.join(sorted(unknown))}; known: {names_known()}")
    return [k for k in KINDS if k.controller in names]


def names_known() -> str:
    return ", ".join(k.controller for k in KINDS)


def all_apis() -> list[api_mod.Api]:
    return [api for kind in KINDS for api in kind.apis()]
