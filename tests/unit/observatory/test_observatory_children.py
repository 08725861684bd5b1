"""The pure builders of task pods and of a schedule's runs.

A pod's name is how a restarted operator knows it already started an attempt, so it must be the
same every time and never the same for two attempts; its labels are how the operator selects its
pods server-side; its owner reference is how deleting a workflow deletes its pods. A run must be
a workflow the API server accepts, owned by its schedule, without the schedule's fields.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from tests.unit.observatory import workflows as wf

from roadie.core import labels
from roadie.observatory import children, models

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
UID = "0b8a2f4e-0000-4000-8000-00000000000a"


def body(name: str = "my-workflow", namespace: str = "pipelines") -> dict[str, Any]:
    return {
        "apiVersion": models.API.api_version,
        "kind": "Observatory",
        "metadata": {"name": name, "namespace": namespace, "uid": UID},
    }


def one_task(**fields: Any) -> models.Task:
    return models.Task.model_validate(wf.task("setup", **fields))


def test_pod_names_are_deterministic_dns_labels_with_the_attempt_last() -> None:
    name = children.pod_name("my-workflow", "setup", 1)
    assert name == children.pod_name("my-workflow", "setup", 1)
    assert re.fullmatch(r"my-workflow-setup-[0-9a-f]{6}-1", name)
    assert children.pod_name("my-workflow", "setup", 2) != name


def test_names_split_differently_do_not_collide() -> None:
    assert children.pod_name("a", "b-c", 1) != children.pod_name("a-b", "c", 1)


@pytest.mark.parametrize(
    ("workflow", "task"),
    [("w" * 253, "t" * 63), ("nightly-etl-29671200", "Load_Data.v2"), ("x", "UPPER"), ("a.b.c", "-")],
)
def test_every_name_is_a_dns_label_of_at_most_63(workflow: str, task: str) -> None:
    for attempt in (1, 9, 101):
        name = children.pod_name(workflow, task, attempt)
        assert len(name) <= 63 and DNS_LABEL.match(name), name
        assert name.endswith(f"-{attempt}")


def test_long_names_stay_unique() -> None:
    long = "w" * 200
    tasks = [f"task-{i}" + "x" * 60 for i in range(50)]
    names = {children.pod_name(long, t, a) for t, a in itertools.product(tasks, (1, 2))}
    assert len(names) == 100


def test_the_pod_is_owned_labelled_and_selected_by_the_operator() -> None:
    pod = children.pod(body(), one_task(), 2)
    meta = pod["metadata"]
    assert meta["namespace"] == "pipelines" and meta["name"] == children.pod_name("my-workflow", "setup", 2)
    assert meta["labels"][labels.NAME] == "observatory"
    assert meta["labels"][labels.MANAGED_BY] == "roadie"
    assert meta["labels"][children.WORKFLOW_LABEL] == "my-workflow"
    assert meta["labels"][children.TASK_LABEL] == "setup"
    assert meta["labels"][children.ATTEMPT_LABEL] == "2"
    (owner,) = meta["ownerReferences"]
    assert owner["uid"] == UID and owner["kind"] == "Observatory" and owner["controller"] is True
    assert meta["annotations"][labels.PARENT] == "Observatory/pipelines/my-workflow"
    selector = dict(part.split("=") for part in children.POD_SELECTOR.split(","))
    assert all(meta["labels"][k] == v for k, v in selector.items())


def test_the_pod_runs_the_task_once() -> None:
    task = one_task(
        command=["sh", "-c"], args=["echo hi"], env=[{"name": "TASK_ID", "value": "1"}], activeDeadlineSeconds=90,
        resources={"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}},
    )  # fmt: skip
    spec = children.pod(body(), task, 1)["spec"]
    assert spec["restartPolicy"] == "Never" and spec["activeDeadlineSeconds"] == 90
    (container,) = spec["containers"]
    assert container["name"] == "main" and container["image"] == "busybox:1.36"
    assert container["command"] == ["sh", "-c"] and container["args"] == ["echo hi"]
    assert container["resources"] == {"requests": {"cpu": "100m"}, "limits": {"memory": "64Mi"}}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["TASK_ID"] == "1" and env["OBSERVATORY_TASK"] == "setup" and env["OBSERVATORY_ATTEMPT"] == "1"
    assert env["OBSERVATORY_WORKFLOW"] == "my-workflow"


def test_the_task_env_wins_over_the_operators() -> None:
    env = children.pod(body(), one_task(env=[{"name": "OBSERVATORY_TASK", "value": "mine"}]), 1)
    values = [e["value"] for e in env["spec"]["containers"][0]["env"] if e["name"] == "OBSERVATORY_TASK"]
    assert values[-1] == "mine", "a later entry wins in a container's env"


def test_without_command_the_image_entrypoint_runs() -> None:
    task = models.Task.model_validate({"name": "plain", "image": "alpine"})
    (container,) = children.pod(body(), task, 1)["spec"]["containers"]
    assert "command" not in container and "args" not in container and "resources" not in container
    assert "activeDeadlineSeconds" not in children.pod(body(), task, 1)["spec"]


def test_a_restricted_security_context_that_any_image_can_run_under() -> None:
    spec = children.pod(body(), one_task(), 1)["spec"]
    context = spec["containers"][0]["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_task_metadata_reaches_the_pod_but_never_replaces_the_operators_labels() -> None:
    metadata = {
        "labels": {"team": "data", children.TASK_LABEL: "forged", labels.NAME: "other"},
        "annotations": {"kwok.x-k8s.io/duration": "3s", labels.PARENT: "forged"},
    }
    meta = children.pod(body(), one_task(metadata=metadata), 1)["metadata"]
    assert meta["labels"]["team"] == "data" and meta["annotations"]["kwok.x-k8s.io/duration"] == "3s"
    assert meta["labels"][children.TASK_LABEL] == "setup" and meta["labels"][labels.NAME] == "observatory"
    assert meta["annotations"][labels.PARENT] == "Observatory/pipelines/my-workflow"


def test_a_run_is_the_schedule_without_its_schedule() -> None:
    schedule = wf.spec(
        wf.task("a"), wf.task("b", "a"), schedule="0 3 * * *", timezone="Europe/Berlin", concurrencyPolicy="Forbid",
        startingDeadlineSeconds=60, successfulRunsHistoryLimit=5, failedRunsHistoryLimit=2, maxConcurrent=3,
        failFast=True, suspend=True, ttlSecondsAfterFinished=600,
    )  # fmt: skip
    run = children.run(body("nightly"), schedule, "nightly-29671200", "2026-05-01T03:00:00Z")
    assert run["kind"] == "Observatory" and run["apiVersion"] == "workflow.seventh-horizon.io/v1alpha1"
    meta = run["metadata"]
    assert meta["name"] == "nightly-29671200" and meta["namespace"] == "pipelines"
    assert meta["ownerReferences"][0]["uid"] == UID
    assert meta["labels"][children.SCHEDULE_LABEL] == "nightly"
    assert meta["annotations"][children.SCHEDULED_AT] == "2026-05-01T03:00:00Z"
    spec = run["spec"]
    assert not set(children.SCHEDULE_FIELDS) & set(spec)
    assert spec["suspend"] is False, "a run of a suspended schedule is never created; a created one runs"
    assert spec["maxConcurrent"] == 3 and spec["failFast"] is True and spec["ttlSecondsAfterFinished"] == 600
    parsed = models.ObservatorySpec.model_validate(spec)
    assert [t.name for t in parsed.tasks] == ["a", "b"] and parsed.tasks[1].dependencies == ["a"]
    assert not parsed.is_schedule
