"""Prometheus metrics: the operator-wide ones, and the one registry every kind adds its own to.

Served over HTTP by `roadie.core.probes` on the operator's metrics port; kinds declare their
metrics with the names their original operators used (see each kind's `metrics.py`). The core's
own series say what the operator costs: reconciles, API requests by verb, the work queue's depth
and waits, informer events and watch failures, and deadlines pending.
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
DEADLINE_LATENESS = prometheus_client.Histogram(
    "roadie_deadline_lateness_seconds",
    "How late a deadline fired after the moment it was due.",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
API_REQUESTS = prometheus_client.Counter(
    "roadie_api_requests_total", "Requests sent to the API server, by verb.", ["verb"], registry=REGISTRY
)
API_THROTTLED_SECONDS = prometheus_client.Counter(
    "roadie_api_throttled_seconds_total",
    "Time requests waited for the client-side rate limit (QPS and burst settings).",
    registry=REGISTRY,
)
QUEUE_DEPTH = prometheus_client.Gauge(
    "roadie_workqueue_depth", "Objects waiting for a reconcile worker, by kind.", ["kind"], registry=REGISTRY
)
QUEUE_WAIT_SECONDS = prometheus_client.Histogram(
    "roadie_workqueue_wait_seconds",
    "Time from an object being queued to a worker taking it, by kind.",
    ["kind"],
    registry=REGISTRY,
)
QUEUE_RETRIES = prometheus_client.Counter(
    "roadie_workqueue_retries_total", "Reconciles retried after a failure, by kind.", ["kind"], registry=REGISTRY
)
INFORMER_EVENTS = prometheus_client.Counter(
    "roadie_informer_events_total",
    "Watch events received, by resource and type (server-side selectors keep unrelated objects out).",
    ["resource", "type"],
    registry=REGISTRY,
)
INFORMER_OBJECTS = prometheus_client.Gauge(
    "roadie_informer_objects", "Objects held in the cache, by resource.", ["resource"], registry=REGISTRY
)
WATCH_FAILURES = prometheus_client.Counter(
    "roadie_informer_watch_failures_total",
    "Lists or watches that failed and are retried with a backoff, by resource (a cache going stale).",
    ["resource"],
    registry=REGISTRY,
)

LEADER = prometheus_client.Gauge(
    "roadie_leader",
    "1 while this replica is the active one (it holds the leader Lease, or runs without election); 0 on standby.",
    registry=REGISTRY,
)


def exposition() -> tuple[bytes, str]:
    return prometheus_client.generate_latest(REGISTRY), prometheus_client.CONTENT_TYPE_LATEST
