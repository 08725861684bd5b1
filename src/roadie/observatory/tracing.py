"""OpenTelemetry traces of workflows: one trace per run, a span per task attempt under the run's
span, exported over OTLP/HTTP when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set, nothing
(not even an SDK object) otherwise.

Spans are written when what they describe has ended, with the start and end times the pods and
the status record, so nothing is held open in memory: an operator restarted mid-run still emits
every span of the run into the same trace. That works because the ids are derived, not random:
the trace id is the run's uid (a UUID is 128 bits, as a trace id is) and the run's own span id is
a hash of it, so an attempt's span names its parent before the parent span is written (at the
run's end). Other OpenTelemetry settings (`OTEL_SERVICE_NAME`, headers, batch delays) are the
SDK's own environment variables.
"""

from __future__ import annotations

import contextvars
import datetime
import hashlib
import logging
import os
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from roadie.observatory import report

log = logging.getLogger(__name__)
ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACES_ENDPOINT_ENV = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
SERVICE = "roadie"

_forced: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("roadie_trace_ids", default=None)


class _DerivedIds(RandomIdGenerator):
    """Random ids, except for the span being started under `_forced`: then the run's own ids."""

    def generate_span_id(self) -> int:
        forced = _forced.get()
        return forced[1] if forced else super().generate_span_id()

    def generate_trace_id(self) -> int:
        forced = _forced.get()
        return forced[0] if forced else super().generate_trace_id()


def trace_id(uid: str) -> int:
    value = int(uid.replace("-", ""), 16) if len(uid.replace("-", "")) == 32 else 0
    return value or int(hashlib.sha256(uid.encode()).hexdigest()[:32], 16) or 1


def run_span_id(uid: str) -> int:
    return int(hashlib.sha256(f"run\0{uid}".encode()).hexdigest()[:16], 16) or 1


def _ns(moment: datetime.datetime | str | None) -> int | None:
    seconds = report.seconds("1970-01-01T00:00:00Z", moment)
    return int(seconds * 1e9) if seconds is not None else None


class Tracing:
    """The SDK's tracer provider and exporter, or nothing when no endpoint is configured."""

    def __init__(self, provider: Any | None = None) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("roadie.observatory") if provider is not None else None

    @property
    def enabled(self) -> bool:
        return self.tracer is not None

    def attempt(self, body: dict[str, Any], ended: report.Ended) -> None:
        """The span of one task attempt, under its run's span."""
        if self.tracer is None:
            return
        uid = body["metadata"]["uid"]
        parent = trace.SpanContext(
            trace_id(uid), run_span_id(uid), is_remote=False, trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED)
        )
        context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
        end = _ns(ended.finished)
        start = _ns(ended.started) or end
        span = self.tracer.start_span(
            ended.task, context=context, start_time=start, kind=trace.SpanKind.INTERNAL, attributes=_attrs(body)
        )
        span.set_attributes(
            {
                "observatory.task": ended.task,
                "observatory.attempt": ended.attempt,
                "observatory.outcome": ended.outcome,
                "k8s.pod.name": ended.pod,
            }
        )
        if ended.exit_code is not None:
            span.set_attribute("observatory.exit_code", ended.exit_code)
        if ended.outcome != "Succeeded":
            span.set_status(trace.Status(trace.StatusCode.ERROR, ended.reason or "failed"))
        span.end(end_time=end)

    def run(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        """The run's own span, the root of its trace, once the run has ended."""
        if self.tracer is None:
            return
        uid = body["metadata"]["uid"]
        end = _ns(status.get("completionTime"))
        start = _ns(status.get("startTime") or body["metadata"].get("creationTimestamp")) or end
        token = _forced.set((trace_id(uid), run_span_id(uid)))
        try:
            span = self.tracer.start_span(
                f"workflow {body['metadata']['name']}",
                context=trace.set_span_in_context(trace.INVALID_SPAN),
                start_time=start,
                kind=trace.SpanKind.INTERNAL,
                attributes=_attrs(body),
            )
        finally:
            _forced.reset(token)
        span.set_attributes(
            {
                "observatory.phase": str(status.get("phase")),
                "observatory.progress": str(status.get("progress") or ""),
                "observatory.tasks": len(status.get("tasks") or []),
            }
        )
        if status.get("phase") != "Succeeded":
            span.set_status(trace.Status(trace.StatusCode.ERROR, str(status.get("message") or "failed")))
        span.end(end_time=end)

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()


def _attrs(body: dict[str, Any]) -> dict[str, str]:
    meta = body["metadata"]
    return {
        "k8s.namespace.name": meta.get("namespace") or "",
        "observatory.workflow": meta["name"],
        "observatory.uid": meta.get("uid") or "",
    }


def configured(env: dict[str, str] | None = None) -> bool:
    env = dict(os.environ) if env is None else env
    return bool(env.get(ENDPOINT_ENV) or env.get(TRACES_ENDPOINT_ENV))


def build(env: dict[str, str] | None = None) -> Tracing:
    """Tracing as the environment asks: OTLP/HTTP export when an endpoint is set, else off."""
    if not configured(env):
        return Tracing()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE)}),
        id_generator=_DerivedIds(),
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    log.info("exporting workflow traces over OTLP/HTTP")
    return Tracing(provider)
