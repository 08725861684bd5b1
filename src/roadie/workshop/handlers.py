"""Workshop's kopf handlers: the parent, its children, and the resync timer, all calling one
reconcile (see roadie.core.controller)."""

from __future__ import annotations

from roadie import settings as settings_mod
from roadie.core import controller as core_controller
from roadie.workshop import reconcile

CHILDREN = (
    core_controller.ChildKind("apps", "v1", "deployments"),
    core_controller.ChildKind("", "v1", "services"),
    core_controller.ChildKind("", "v1", "persistentvolumeclaims"),
    core_controller.ChildKind("", "v1", "secrets"),
    core_controller.ChildKind("networking.k8s.io", "v1", "ingresses"),
)


def register() -> core_controller.Controller:
    controller = reconcile.controller
    controller.children = CHILDREN
    controller.resync_seconds = settings_mod.current().operator.resync_seconds
    return core_controller.register(controller)
