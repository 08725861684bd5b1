"""Kubeconfig files for the local cluster: one per component, and the user's own.

Written by hand rather than by kubectl because they are a dozen lines and kubectl may not be
installed yet when the cluster first comes up.
"""

from __future__ import annotations

import pathlib

import yaml

from roadie.devcluster import pki as pki_mod


def render(server: str, pki: pki_mod.Pki, stem: str, context: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)}}],
        "users": [
            {
                "name": f"{context}-{stem}",
                "user": {
                    "client-certificate": str(pki.client_cert(stem)),
                    "client-key": str(pki.client_key(stem)),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": f"{context}-{stem}"}}],
        "current-context": context,
        "preferences": {},
    }
    return yaml.safe_dump(config, sort_keys=False)


def write(path: pathlib.Path, server: str, pki: pki_mod.Pki, stem: str, context: str) -> pathlib.Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(server, pki, stem, context))
    path.chmod(0o600)
    return path
