"""The operator's client: lightkube's, with a connection pool sized for bursts and the TLS that
lightkube itself builds from the kubeconfig (CA and client certificate), and a clear refusal of a
kubeconfig whose context has no user."""

from __future__ import annotations

import pathlib

import lightkube
import pytest
import yaml

from roadie.core import client
from roadie.devcluster import pki


def _kubeconfig(folder: pathlib.Path, *, user: bool = True) -> pathlib.Path:
    certs = pki.ensure(folder / "pki")
    context = {"cluster": "local", **({"user": "admin"} if user else {})}
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "local", "cluster": {"server": "https://127.0.0.1:1", "certificate-authority": str(certs.ca_cert)}}
        ],
        "users": [{"name": "admin", "user": {"token": "not-a-token"}}],
        "contexts": [{"name": "local", "context": context}],
        "current-context": "local",
    }
    path = folder / "kubeconfig"
    path.write_text(yaml.safe_dump(doc))
    return path


async def test_the_pool_keeps_enough_connections_long_enough(tmp_path: pathlib.Path) -> None:
    kube = client.connect(_kubeconfig(tmp_path))
    try:
        pool = client.http()._transport._pool
        assert pool._max_keepalive_connections == client.POOL.max_keepalive_connections >= 64
        assert pool._keepalive_expiry == client.POOL.keepalive_expiry >= 60
        assert pool._ssl_context.verify_mode.name == "CERT_REQUIRED", "the kubeconfig's CA is still checked"
        assert str(client.http().base_url).startswith("https://127.0.0.1:1")
    finally:
        await client.close()
    assert kube is not None


def test_a_context_without_a_user_is_refused_by_name(tmp_path: pathlib.Path) -> None:
    with pytest.raises(lightkube.ConfigError, match="'local' names no user"):
        client.connect(_kubeconfig(tmp_path, user=False))
