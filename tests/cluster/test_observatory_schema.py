"""The Observatory CRD in a real API server: it is accepted (so its CEL rules fit the API server's
cost budget), it refuses the manifests the issue says it must refuse, each with its message, and
it accepts a 1,000-task workflow (and one of the maximum size) within the runtime CEL budget.

No operator runs here: these are the API server's own answers, which no controller can give as fast.
"""

from __future__ import annotations

import copy
import datetime
import json
import pathlib
import subprocess
from collections.abc import Iterator
from typing import Any

import lightkube
import pytest
import yaml
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.types import PatchType

from roadie.cli import operator as cli_operator
from roadie.core import crdgen
from roadie.observatory import dag, models, status, topology

Observatory = create_namespaced_resource(
    models.API.group, models.API.version, models.API.kind, models.API.plural, verbs=None
)


@pytest.fixture(scope="module")
def crd(kubeconfig: pathlib.Path) -> Iterator[None]:
    """The CRD applied as `roadie install` applies CRDs: server-side, then waited for."""
    text = yaml.safe_dump(crdgen.crd(models.API), sort_keys=False)
    base = [cli_operator.kubectl(), f"--kubeconfig={kubeconfig}"]
    applied = subprocess.run(
        [*base, "apply", "--server-side", "--force-conflicts", "-f", "-"],
        input=text, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert applied.returncode == 0, f"the API server refused the CRD: {applied.stderr}"
    subprocess.run(
        [*base, "wait", "--for=condition=Established", "--timeout=60s", f"crd/{models.API.crd_name}"], check=True
    )
    yield


def manifest(name: str, tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": models.API.api_version,
        "kind": models.API.kind,
        "metadata": {"name": name},
        "spec": {"tasks": tasks, **spec},
    }


def task(name: str, *deps: str) -> dict[str, Any]:
    return {"name": name, "image": "busybox:1.36", "command": ["true"], "dependencies": list(deps)}


GOOD = [task("setup"), task("process", "setup"), task("finalize", "process")]


def create(kube: lightkube.Client, namespace: str, body: dict[str, Any]) -> Any:
    obj = Observatory.from_dict(copy.deepcopy(body))
    return kube.create(obj, namespace=namespace)


def refusal(kube: lightkube.Client, namespace: str, body: dict[str, Any]) -> str:
    with pytest.raises(ApiError) as caught:
        create(kube, namespace, body)
    assert caught.value.status.code == 422, caught.value.status
    return str(caught.value.status.message)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"tasks": []}, "should have at least 1 items"),
        ({"tasks": [task("a"), task("a")]}, "Duplicate value"),
        ({"tasks": [task("a"), task("b", "nope")]}, "every dependency must name a task of this workflow"),
        ({"tasks": [task("a", "a")]}, "a task cannot depend on itself"),
        ({"tasks": GOOD, "maxConcurrent": 0}, "should be greater than or equal to 1"),
        ({"tasks": GOOD, "schedule": "every day"}, "spec.schedule"),
        ({"tasks": GOOD, "schedule": "* * * *"}, "spec.schedule"),
        ({"tasks": [{"name": "Bad Name", "image": "x"}]}, "spec.tasks[0].name"),
        ({"tasks": [{"name": "no-image"}]}, "spec.tasks[0].image: Required value"),
    ],
    ids=["no-tasks", "duplicate", "unknown-dependency", "self-dependency", "max-concurrent", "cron-words",
         "cron-four-fields", "task-name", "no-image"],
)  # fmt: skip
def test_bad_manifests_are_refused_with_their_message(
    kube: lightkube.Client, namespace: str, crd: None, spec: dict[str, Any], message: str
) -> None:
    body = manifest("bad", **spec)
    assert message in refusal(kube, namespace, body)


def test_the_seed_example_and_defaults(kube: lightkube.Client, namespace: str, crd: None) -> None:
    created = create(kube, namespace, manifest("my-workflow", GOOD))
    spec = created.to_dict()["spec"] if hasattr(created, "to_dict") else created["spec"]
    assert spec["suspend"] is False and spec["maxConcurrent"] == 10 and spec["failFast"] is False
    assert "retryStrategy" not in spec["tasks"][0], "no retries unless asked for"


def test_tasks_cannot_change_once_created_but_suspend_and_max_concurrent_can(
    kube: lightkube.Client, namespace: str, crd: None
) -> None:
    create(kube, namespace, manifest("run", GOOD))
    patch = {"spec": {"suspend": True, "maxConcurrent": 3}}
    kube.patch(Observatory, "run", patch, namespace=namespace, patch_type=PatchType.MERGE)
    changed = {"spec": {"tasks": [*GOOD, task("extra", "finalize")]}}
    with pytest.raises(ApiError) as caught:
        kube.patch(Observatory, "run", changed, namespace=namespace, patch_type=PatchType.MERGE)
    assert "tasks cannot change once the workflow exists" in str(caught.value.status.message)
    with pytest.raises(ApiError) as caught:
        kube.patch(
            Observatory, "run", {"spec": {"schedule": "@daily"}}, namespace=namespace,
            patch_type=PatchType.MERGE,
        )  # fmt: skip
    assert "schedule cannot be added or removed" in str(caught.value.status.message)


def test_a_schedule_may_change_its_tasks(kube: lightkube.Client, namespace: str, crd: None) -> None:
    create(kube, namespace, manifest("nightly", GOOD, schedule="0 3 * * *", timezone="Europe/Berlin"))
    changed = {"spec": {"tasks": [*GOOD, task("extra", "finalize")]}}
    updated = kube.patch(Observatory, "nightly", changed, namespace=namespace, patch_type=PatchType.MERGE)
    assert len(updated["spec"]["tasks"]) == 4


def fan_join_fan(count: int) -> list[dict[str, Any]]:
    """A fan-out, a join naming the most dependencies a task can, and a second fan-out after it."""
    fan = [task(f"a{i:04d}", "start") for i in range(models.MAX_DEPENDENCIES)]
    rest = [task(f"b{i:04d}", "join") for i in range(count - len(fan) - 2)]
    return [task("start"), *fan, task("join", *(t["name"] for t in fan)), *rest]


def chain(count: int) -> list[dict[str, Any]]:
    return [task(f"t{i:04d}", *([f"t{i - 1:04d}"] if i else [])) for i in range(count)]


@pytest.mark.parametrize(("shape", "count"), [(fan_join_fan, 1000), (chain, models.MAX_TASKS)])
def test_a_large_workflow_is_accepted_within_the_runtime_budget(
    kube: lightkube.Client, namespace: str, crd: None, shape: Any, count: int
) -> None:
    created = create(kube, namespace, manifest(f"big-{count}", shape(count)))
    assert len(created["spec"]["tasks"]) == count
    # an update runs every rule again, the transition rules too
    patched = kube.patch(
        Observatory, f"big-{count}", {"spec": {"suspend": True}}, namespace=namespace,
        patch_type=PatchType.MERGE,
    )  # fmt: skip
    assert patched["spec"]["suspend"] is True


def test_one_task_too_many_is_refused(kube: lightkube.Client, namespace: str, crd: None) -> None:
    message = refusal(kube, namespace, manifest("too-big", chain(models.MAX_TASKS + 1)))
    assert f"must have at most {models.MAX_TASKS} items" in message


def test_a_finished_two_thousand_task_workflow_fits_in_etcd(kube: lightkube.Client, namespace: str, crd: None) -> None:
    """Measured on the local API server (the object as stored and served, managedFields included):
    910,935 bytes for 2,000 finished tasks, two dependencies each (the spec's managedFields hold an
    entry per task, since tasks are a map keyed by name); etcd's limit is 1.5 MiB."""
    tasks = [task(f"l{layer}-{i}", *({f"l{layer - 1}-{i}", f"l{layer - 1}-{(i + 1) % 100}"} if layer else ()))
             for layer in range(20) for i in range(100)]  # fmt: skip
    create(kube, namespace, manifest("huge", tasks))
    spec = models.ObservatorySpec.model_validate({"tasks": tasks})
    start = datetime.datetime(2026, 5, 1, 12, tzinfo=datetime.UTC)
    graph = topology.build(spec.tasks)
    states = {
        name: dag.TaskState(attempts=1, pod="Succeeded", exit_code=0, attempt_started=start + datetime.timedelta(
            seconds=graph.layer[i]), attempt_finished=start + datetime.timedelta(seconds=graph.layer[i] + 1),
            recorded="Running", ready_at=start + datetime.timedelta(seconds=graph.layer[i]))
        for i, name in enumerate(graph.names)
    }  # fmt: skip
    decision = dag.decide(spec, graph, states, now=start + datetime.timedelta(seconds=21), started=start)
    assert decision.phase == "Succeeded"
    written = status.compute({}, decision, states, workflow="huge", generation=1, now=start)
    kube.patch(Observatory.Status, "huge", {"status": written}, namespace=namespace, patch_type=PatchType.MERGE)
    stored = kube.get(Observatory, "huge", namespace=namespace)
    assert stored["status"]["phase"] == "Succeeded" and len(stored["status"]["tasks"]) == 2000
    size = len(json.dumps(stored.to_dict(), separators=(",", ":")))
    print(f"a finished 2,000-task Observatory is {size} bytes")
    assert size < 0.75 * 1.5 * 1024 * 1024


def test_roadie_graph_reads_the_workflow_from_the_cluster(
    kube: lightkube.Client, namespace: str, crd: None, kubeconfig: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    import typer
    from typer.testing import CliRunner

    from roadie.cli import graph as cli_graph

    create(kube, namespace, manifest("drawn", GOOD))
    app = typer.Typer()
    app.command("graph")(cli_graph.graph_command)
    app.command("unused")(lambda: None)
    env = {"KUBECONFIG": str(kubeconfig)}
    shown = CliRunner().invoke(app, ["graph", "obs/drawn", "-n", namespace], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"Namespace:   {namespace}" in shown.output and "└─◷ finalize" in shown.output
    drawn = CliRunner().invoke(app, ["graph", "obs/drawn", "-n", namespace, "-o", str(tmp_path / "g.svg")], env=env)
    assert drawn.exit_code == 0 and (tmp_path / "g.svg").read_text().startswith("<svg")
    missing = CliRunner().invoke(app, ["graph", "obs/nope", "-n", namespace], env=env)
    assert missing.exit_code != 0 and "not found" in missing.output
