"""PreviewEnvironment's kopf handlers: the parent, its children (the namespace included, so that
its disappearance wakes the finalizer at once) and the resync, all calling one reconcile
(see roadie.core.controller)."""

from __future__ import annotations

from roadie import settings as settings_mod
from roadie.core import controller as core_controller
from roadie.preview import reconcile

CHILDREN = (
    core_controller.ChildKind("", "v1", "namespaces"),
    core_controller.ChildKind("apps", "v1", "deployments"),
    core_controller.ChildKind("", "v1", "services"),
    core_controller.ChildKind("networking.k8s.io", "v1", "ingresses"),
    core_controller.ChildKind("networking.k8s.io", "v1", "networkpolicies"),
    core_controller.ChildKind("", "v1", "resourcequotas"),
    core_controller.ChildKind("", "v1", "limitranges"),
)


def register() -> core_controller.Controller:
    controller = reconcile.controller
    controller.children = CHILDREN
    controller.deleted = reconcile.deleted
    controller.resync_seconds = settings_mod.current().operator.resync_seconds
    return core_controller.register(controller)
