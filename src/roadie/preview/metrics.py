"""The original preview operator's Prometheus metrics, same names, types and labels, on Roadie's
shared registry (served on the operator's `/metrics`).

Where the original drifted, these cannot: the active gauge is not incremented and decremented
but set from the set of objects whose last reconcile found them live, which the first listing
after a restart fills again; `created_total` and the creation histogram count the transition to
a first `readyAt`, which is in the object's status and so survives restarts. The `pr_number`
label of `reconcile_total` is removed with the last object of that number, which bounds it by
the number of live objects.
"""

from __future__ import annotations

import contextlib

import prometheus_client

from roadie.core import metrics

Key = tuple[str, str]

CREATED = prometheus_client.Counter(
    "preview_environments_created_total",
    "Environments that came up (Deployment available for the first time), by branch.",
    ["branch_name"],
    registry=metrics.REGISTRY,
)
FAILED = prometheus_client.Counter(
    "preview_environments_failed_total",
    "Failures by step (namespace, resourcequota, limitrange, networkpolicy, deployment, service, "
    "ingress, cleanup, expiry).",
    ["step"],
    registry=metrics.REGISTRY,
)
ACTIVE = prometheus_client.Gauge(
    "preview_environments_active",
    "Environments currently provisioned (Creating, Updating or Ready).",
    registry=metrics.REGISTRY,
)
RECONCILES = prometheus_client.Counter(
    "preview_environments_reconcile_total", "Reconciles per pull request.", ["pr_number"], registry=metrics.REGISTRY
)
CREATION_SECONDS = prometheus_client.Histogram(
    "preview_environment_creation_duration_seconds",
    "From creation of the object until its Deployment is first available.",
    buckets=(1, 2, 5, 10, 20, 30, 60),
    registry=metrics.REGISTRY,
)
EXPIRED = prometheus_client.Counter(
    "preview_environments_expired_total", "Environments deleted because their TTL ran out.", registry=metrics.REGISTRY
)

_live: set[Key] = set()
_pr_of: dict[Key, str] = {}


def reconciled(key: Key, pr_number: int | None) -> None:
    """Count one reconcile of `key`, remembering its PR number so the series can be dropped."""
    if pr_number is None:
        return
    label = str(pr_number)
    previous = _pr_of.get(key)
    _pr_of[key] = label
    if previous is not None and previous != label:
        _drop_series(previous)
    RECONCILES.labels(label).inc()


def set_live(key: Key, live: bool) -> None:
    if live:
        _live.add(key)
    else:
        _live.discard(key)
    ACTIVE.set(len(_live))


def forget(key: Key) -> None:
    """The object is gone: it is not live, and its PR's series goes with the last holder."""
    set_live(key, False)
    label = _pr_of.pop(key, None)
    if label is not None:
        _drop_series(label)


def _drop_series(label: str) -> None:
    if label not in _pr_of.values():
        with contextlib.suppress(KeyError):
            RECONCILES.remove(label)
