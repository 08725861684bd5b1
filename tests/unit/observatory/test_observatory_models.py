"""The Observatory API and its CRD without a cluster: the seed's fields and defaults, Roadie's
additions, the CEL rules, and the limits on every list and string from which the API server
estimates what those rules cost (a CRD without them is refused once its rules could cost too
much; `tests/cluster/test_observatory_schema.py` shows the API server's own answer).

Also: the samples in deploy/samples parse, and they are DAGs.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterator
from typing import Any

import pydantic
import pytest
import yaml

from roadie.core import crdgen, cron
from roadie.observatory import models, topology

ROOT = pathlib.Path(__file__).resolve().parents[3]


def crd_version() -> dict[str, Any]:
    (version,) = crdgen.crd(models.API)["spec"]["versions"]
    found: dict[str, Any] = version
    return found


def spec_schema() -> dict[str, Any]:
    found: dict[str, Any] = crd_version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return found


def walk(node: dict[str, Any], path: str = "spec") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, prop in node.get("properties", {}).items():
        yield from walk(prop, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from walk(node["additionalProperties"], f"{path}{{}}")


def test_the_crd_is_the_seeds() -> None:
    crd = crdgen.crd(models.API)
    assert crd["metadata"]["name"] == "observatories.workflow.seventh-horizon.io"
    assert crd["spec"]["scope"] == "Namespaced" and crd["spec"]["names"]["shortNames"] == ["obs"]
    version = crd_version()
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:2] == ["Phase", "Progress"] and "Schedule" in columns and columns[-1] == "Age"
    spec = spec_schema()
    assert spec["required"] == ["tasks"]
    assert spec["properties"]["suspend"]["default"] is False
    assert spec["properties"]["maxConcurrent"]["default"] == 10 and spec["properties"]["maxConcurrent"]["minimum"] == 1
    task = spec["properties"]["tasks"]["items"]
    assert task["required"] == ["name", "image"]
    assert set(task["properties"]) >= {"name", "image", "command", "args", "dependencies", "env"}
    status = crd_version()["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    assert set(status) >= {"phase", "tasks", "startTime", "completionTime", "lastScheduleTime", "conditions"}
    assert set(status["tasks"]["items"]["properties"]) >= {"name", "phase", "startTime", "completionTime", "message"}


def test_every_list_and_string_under_spec_is_bounded_for_the_cel_cost_estimate() -> None:
    unbounded = []
    for path, node in walk(spec_schema()):
        kind = node.get("type")
        if kind == "array" and "maxItems" not in node:
            unbounded.append(path)
        if kind == "string" and "maxLength" not in node and "enum" not in node:
            unbounded.append(path)
        if kind == "object" and "additionalProperties" in node and "maxProperties" not in node:
            unbounded.append(path)
    assert unbounded == []
    tasks = spec_schema()["properties"]["tasks"]
    assert tasks["maxItems"] == models.MAX_TASKS >= 1000
    assert tasks["items"]["properties"]["dependencies"]["maxItems"] == models.MAX_DEPENDENCIES
    assert tasks["items"]["properties"]["name"]["maxLength"] == 63


def test_the_cel_rules_are_in_place_with_their_messages() -> None:
    tasks = spec_schema()["properties"]["tasks"]
    assert tasks["minItems"] == 1
    assert tasks["x-kubernetes-list-type"] == "map" and tasks["x-kubernetes-list-map-keys"] == ["name"]
    messages = {r["message"] for r in tasks["x-kubernetes-validations"]}
    assert "every dependency must name a task of this workflow" in messages
    assert {r["message"] for r in tasks["items"]["x-kubernetes-validations"]} == {"a task cannot depend on itself"}
    transitions = {r["rule"]: r["message"] for r in spec_schema()["x-kubernetes-validations"]}
    assert all("oldSelf" in rule for rule in transitions)
    assert any("tasks cannot change" in m for m in transitions.values())
    assert spec_schema()["properties"]["schedule"]["pattern"] == cron.PATTERN


@pytest.mark.parametrize(
    "bad",
    [
        {"tasks": []},
        {"tasks": [{"name": "a"}]},
        {"tasks": [{"name": "a b", "image": "x"}]},
        {"tasks": [{"name": "a", "image": "x"}], "maxConcurrent": 0},
        {"tasks": [{"name": "a", "image": "x"}], "schedule": "every day"},
        {"tasks": [{"name": "a", "image": "x"}], "concurrencyPolicy": "Sometimes"},
        {"tasks": [{"name": "a", "image": "x", "retryStrategy": {}}]},  # Argo's unset limit means forever
        {"tasks": [{"name": "a", "image": "x", "retryStrategy": {"limit": 1, "backoff": {"duration": "soon"}}}]},
    ],
)
def test_the_model_refuses_what_the_schema_refuses(bad: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        models.ObservatorySpec.model_validate(bad)


def test_the_additions_take_argos_shapes() -> None:
    spec = models.ObservatorySpec.model_validate({
        "tasks": [{
            "name": "train", "image": "python:3.12", "activeDeadlineSeconds": 600,
            "retryStrategy": {"limit": 3, "backoff": {"duration": "10s", "factor": 2, "maxDuration": "1m"}},
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"nvidia.com/gpu": 1}},
            "metadata": {"labels": {"team": "ml"}, "annotations": {"note": "x"}},
        }],
        "failFast": True, "activeDeadlineSeconds": 3600, "ttlSecondsAfterFinished": 300,
        "schedule": "0 3 * * *", "timezone": "Europe/Berlin", "concurrencyPolicy": "Forbid",
        "startingDeadlineSeconds": 120, "successfulRunsHistoryLimit": 2, "failedRunsHistoryLimit": 4,
    })  # fmt: skip
    task = spec.tasks[0]
    assert task.retry_limit == 3 and task.resources and task.resources.limits == {"nvidia.com/gpu": "1"}
    assert spec.is_schedule and spec.concurrencyPolicy == "Forbid"


def test_schedule_defaults_are_cronjobs() -> None:
    spec = models.ObservatorySpec.model_validate({"tasks": [{"name": "a", "image": "x"}]})
    assert (spec.concurrencyPolicy, spec.successfulRunsHistoryLimit, spec.failedRunsHistoryLimit) == ("Allow", 3, 1)
    assert spec.failFast is False and not spec.is_schedule


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "deploy" / "samples" / name).read_text())
    return doc


def test_the_quickstart_sample_is_the_seeds() -> None:
    doc = load("observatory-quickstart.yaml")
    assert doc["apiVersion"] == "workflow.seventh-horizon.io/v1alpha1" and doc["metadata"]["name"] == "my-workflow"
    spec = models.ObservatorySpec.model_validate(doc["spec"])
    assert topology.build(spec.tasks).layers() == [["setup"], ["process"], ["finalize"]]


def test_the_three_task_sample_is_the_details() -> None:
    spec = models.ObservatorySpec.model_validate(load("observatory-three-tasks.yaml")["spec"])
    assert topology.build(spec.tasks).layers() == [["task-1"], ["task-2", "task-3"]]
    assert spec.suspend is False and spec.maxConcurrent == 10
    assert all(re.fullmatch(r"\d", {e.name: e.value for e in t.env}["TASK_ID"]) for t in spec.tasks)
    assert {t.image.split(":")[0] for t in spec.tasks} == {"busybox"}
