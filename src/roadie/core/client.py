"""The one asynchronous Kubernetes client the operator uses, built at startup, never at import.

lightkube's AsyncClient: typed models for the built-in kinds, generic resources for CRDs, and
server-side apply as a first-class call, all on an async HTTP stack, so no handler ever blocks the
event loop on I/O. Every write carries the same field manager, so `managedFields` show one owner.
The informers stream their lists and watches over the same HTTP client, so one kubeconfig (exec
plugins included), one connection pool and one client-side rate limit serve every request.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any

import lightkube
from lightkube import generic_resource
from lightkube.config import client_adapter
from lightkube.core.exceptions import ApiError

from roadie.core import api as api_mod
from roadie.core import ratelimit, transport

FIELD_MANAGER = "roadie"

_client: lightkube.AsyncClient | None = None


def connect(kubeconfig: pathlib.Path | None = None, *, qps: float = 0.0, burst: int = 0) -> lightkube.AsyncClient:
    """Build the shared client (from a kubeconfig file, $KUBECONFIG or the in-cluster account),
    with a client-side rate limit of `qps` requests a second and bursts of `burst` (0: none)."""
    global _client
    config = (lightkube.KubeConfig.from_file(kubeconfig) if kubeconfig else lightkube.KubeConfig.from_env()).get()
    assert config.user is not None, "the kubeconfig's context names no user"
    tls = client_adapter.verify_cluster(config.cluster, config.user, config.abs_file)  # as lightkube's own
    _client = lightkube.AsyncClient(
        config=config, field_manager=FIELD_MANAGER, transport=transport.AiohttpTransport(tls)
    )
    ratelimit.install(http(), ratelimit.TokenBucket(qps, burst or max(1, int(qps * 2))))
    return _client


def http() -> Any:
    """The HTTP client under lightkube's (base URL, credentials and TLS from the kubeconfig): the
    informers speak the list/watch protocol over it directly, as plain JSON."""
    return get()._client._client


def get() -> lightkube.AsyncClient:
    if _client is None:
        return connect()
    return _client


async def close() -> None:
    global _client
    if _client is not None:
        await _client.close()
        _client = None


@functools.cache
def resource(api: api_mod.Api) -> Any:
    """The lightkube resource class of a Roadie kind (a generic resource, with its /status)."""
    if api.namespaced:
        return generic_resource.create_namespaced_resource(api.group, api.version, api.kind, api.plural)
    return generic_resource.create_global_resource(api.group, api.version, api.kind, api.plural)


def transient(error: BaseException) -> bool:
    """Errors a retry is expected to cure (a conflict, throttling, a server error, a dropped
    connection): logged briefly, not as a failure with a traceback, and retried."""
    if isinstance(error, ApiError):
        return error.status.code in (409, 429) or (error.status.code or 0) >= 500
    return type(error).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "h11", "anyio")
