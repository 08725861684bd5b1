"""Prometheus metrics: the operator-wide ones, and the one registry every kind adds its own to.

Served over HTTP by `roadie.core.probes` on the operator's metrics port; kinds declare their
metrics with the names their original operators used (see each kind's `metrics.py`).
"""

from __future__ import annotations

import prometheus_client

REGISTRY = prometheus_client.REGISTRY

RECONCILES = prometheus_client.Counter(
    "roadie_reconcile_total", "Reconciles run, by kind and result.", ["kind", "result"], registry=REGISTRY
)
RECONCILE_SECONDS = prometheus_client.Histogram(
    "roadie_reconcile_duration_seconds", "Time one reconcile took, by kind.", ["kind"], registry=REGISTRY
)
DEADLINES = prometheus_client.Gauge(
    "roadie_scheduled_deadlines", "Deadlines (expiry, warnings, timeouts) waiting to fire.", registry=REGISTRY
)


def exposition() -> tuple[bytes, str]:
    return prometheus_client.generate_latest(REGISTRY), prometheus_client.CONTENT_TYPE_LATEST
