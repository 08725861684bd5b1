"""Helpers shared by the Workshop cluster tests: the resource class, and reading a sample."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import lightkube
import yaml
from lightkube import codecs
from lightkube.generic_resource import create_namespaced_resource

SAMPLES = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "samples"
Workshop = create_namespaced_resource("orchestra.io", "v1", "Workshop", "workshops")


def sample(name: str, namespace: str) -> dict[str, Any]:
    doc = yaml.safe_load((SAMPLES / name).read_text())
    doc["metadata"]["namespace"] = namespace
    return doc


def manifest(namespace: str, name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "orchestra.io/v1",
        "kind": "Workshop",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"name": name, **spec},
    }


def create(kube: lightkube.Client, doc: dict[str, Any]) -> Any:
    return kube.create(codecs.from_dict(copy.deepcopy(doc)))


def get(kube: lightkube.Client, namespace: str, name: str) -> Any:
    return kube.get(Workshop, name, namespace=namespace)


def phase(kube: lightkube.Client, namespace: str, name: str) -> str | None:
    return (get(kube, namespace, name).status or {}).get("phase")
