"""Prometheus metrics of Cyberdesk, on Roadie's shared registry (served on the operator's `/metrics`).

The sink's metrics say whether the database or webhook keeps up: a `pending` gauge that does not
go back to zero, or `retries` climbing, means rows lag behind the Cyberdesks' statuses. The
desktop metrics count what users feel: how long a desktop took to run, and how many ran out.
"""

from __future__ import annotations

import prometheus_client

from roadie.core import metrics

SINK_WRITES = prometheus_client.Counter(
    "roadie_cyberdesk_sink_writes_total",
    "Writes to a status sink, by sink (postgres, supabase, webhook) and result "
    "(ok, error: retried; rejected: refused for good; missing: no row to update).",
    ["sink", "result"],
    registry=metrics.REGISTRY,
)
SINK_RETRIES = prometheus_client.Counter(
    "roadie_cyberdesk_sink_retries_total",
    "Writes put back to be retried after a failure, by sink.",
    ["sink"],
    registry=metrics.REGISTRY,
)
SINK_PENDING = prometheus_client.Gauge(
    "roadie_cyberdesk_sink_pending",
    "Rows or events waiting to be written (latest value per key), by sink.",
    ["sink"],
    registry=metrics.REGISTRY,
)
STARTUP_SECONDS = prometheus_client.Histogram(
    "roadie_cyberdesk_startup_seconds",
    "From a Cyberdesk's creation until its VM first ran, by source (new VM or warm pool).",
    ["source"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300),
    registry=metrics.REGISTRY,
)
TIMED_OUT = prometheus_client.Counter(
    "roadie_cyberdesk_timed_out_total", "Desktops stopped because their timeoutMs ran out.", registry=metrics.REGISTRY
)
