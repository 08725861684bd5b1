"""Workflow traces reach an OTLP/HTTP endpoint: a local receiver (aiohttp on 127.0.0.1) decodes
the protobuf the SDK's exporter sends, and finds one trace per run, the run's span as its root and
a span per task attempt under it, with the times the pods recorded. Without an endpoint, nothing
is built at all."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from roadie.observatory import report, tracing

UID = "0b7c6f0e-6a51-4d55-9a34-3f0f3c1ad2b7"
BODY = {"metadata": {"name": "wf", "namespace": "ns", "uid": UID, "creationTimestamp": "2026-05-01T12:00:00Z"}}
T0 = datetime.datetime(2026, 5, 1, 12, 0, 0, tzinfo=datetime.UTC)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[trace_service_pb2.ExportTraceServiceRequest]]]:
    received: list[trace_service_pb2.ExportTraceServiceRequest] = []

    async def traces(request: web.Request) -> web.Response:
        message = trace_service_pb2.ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        return web.Response(body=trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", received
    await runner.cleanup()


def test_nothing_is_built_without_an_endpoint() -> None:
    assert not tracing.build({}).enabled
    assert tracing.configured({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})


async def test_a_run_is_one_trace_with_a_span_per_attempt(
    receiver: tuple[str, list[trace_service_pb2.ExportTraceServiceRequest]], monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, received = receiver
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    traces = tracing.build()
    assert traces.enabled
    second = datetime.timedelta(seconds=1)
    traces.attempt(BODY, report.Ended("a", 1, "wf-a-1", "Failed", T0, T0 + 3 * second, "Error", 1))
    traces.attempt(BODY, report.Ended("a", 2, "wf-a-2", "Succeeded", T0 + 4 * second, T0 + 6 * second))
    traces.run(
        BODY,
        {"phase": "Succeeded", "startTime": "2026-05-01T12:00:00Z", "completionTime": "2026-05-01T12:00:06Z"},
    )
    await asyncio.to_thread(traces.shutdown)  # flushes: the exporter posts from its own thread

    spans = [s for m in received for r in m.resource_spans for ss in r.scope_spans for s in ss.spans]
    assert len(spans) == 3
    assert {s.trace_id.hex() for s in spans} == {UID.replace("-", "")}, "one trace, named by the run's uid"
    root = next(s for s in spans if s.name == "workflow wf")
    assert root.parent_span_id == b""
    attempts = sorted((s for s in spans if s.name == "a"), key=lambda s: s.start_time_unix_nano)
    assert [s.parent_span_id for s in attempts] == [root.span_id, root.span_id]
    assert attempts[0].end_time_unix_nano - attempts[0].start_time_unix_nano == 3 * 10**9
    assert attempts[0].status.code == 2  # ERROR
    attrs = {a.key: a.value for a in attempts[1].attributes}
    assert attrs["observatory.attempt"].int_value == 2
    assert attrs["k8s.pod.name"].string_value == "wf-a-2"
    assert root.end_time_unix_nano - root.start_time_unix_nano == 6 * 10**9
    service = {a.key: a.value.string_value for m in received for r in m.resource_spans for a in r.resource.attributes}
    assert service["service.name"] == "roadie"
