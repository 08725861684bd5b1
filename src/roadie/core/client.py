"""The one asynchronous Kubernetes client the operator uses, built at startup, never at import.

lightkube's AsyncClient: typed models for the built-in kinds, generic resources for CRDs, and
server-side apply as a first-class call, all on an async HTTP stack, so no handler ever blocks the
event loop on I/O. Every write carries the same field manager, so `managedFields` show one owner.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any

import lightkube
from lightkube import generic_resource

from roadie.core import api as api_mod

FIELD_MANAGER = "roadie"

_client: lightkube.AsyncClient | None = None


def connect(kubeconfig: pathlib.Path | None = None) -> lightkube.AsyncClient:
    """Build the shared client (from a kubeconfig file, $KUBECONFIG or the in-cluster account)."""
    global _client
    config = lightkube.KubeConfig.from_file(kubeconfig) if kubeconfig else None
    _client = lightkube.AsyncClient(config=config, field_manager=FIELD_MANAGER)
    return _client


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
