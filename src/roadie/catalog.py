"""Every kind Roadie serves: its controller name, its APIs, and the module that registers its
handlers. The one list that `roadie run`, `roadie crds` and the tests read."""

from __future__ import annotations

import dataclasses
import importlib

from roadie.core import api as api_mod


@dataclasses.dataclass(frozen=True)
class KindEntry:
    controller: str
    models_module: str
    handlers_module: str

    def apis(self) -> list[api_mod.Api]:
        module = importlib.import_module(self.models_module)
        return list(getattr(module, "APIS", [module.API]))

    def register(self) -> None:
        importlib.import_module(self.handlers_module).register()


KINDS: tuple[KindEntry, ...] = (
    KindEntry("workshop", "roadie.workshop.models", "roadie.workshop.handlers"),
    KindEntry("preview", "roadie.preview.models", "roadie.preview.handlers"),
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
