"""Observatory workflows run by the operator on the local control plane: the seed's examples end
Succeeded in dependency order, maxConcurrent holds at every moment, failures skip their
dependents, retries and deadlines behave, suspend holds and resumes, a killed operator runs no
task twice, a schedule fires on a real tick, and deleting a workflow deletes its pods.

Task pods "run" through kwok's `pod-complete-never` stage (the duration is the pod's
`pod-complete.stage.kwok.x-k8s.io/delay` annotation, set through the task's `metadata`) and fail
through its failure stage (`pod-container-running-failed.stage.kwok.x-k8s.io`): the containers
are stood in for, the operator's side is real.
"""

from __future__ import annotations

import pathlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import lightkube
import pytest
import yaml
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Pod
from lightkube.types import PatchType
from tests.cluster.conftest import OperatorProcess, instead_of, wait_for, wait_for_events

from roadie.core import models as core_models
from roadie.observatory import children, models

Observatory = create_namespaced_resource(
    models.API.group, models.API.version, models.API.kind, models.API.plural, verbs=None
)
SAMPLES = pathlib.Path(__file__).parents[2] / "deploy" / "samples"
DELAY = "pod-complete.stage.kwok.x-k8s.io/delay"
FAIL = "pod-container-running-failed.stage.kwok.x-k8s.io"
EXIT_CODE = f"{FAIL}/exit-code"


def task(name: str, *deps: str, delay: str | None = None, **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "image": "busybox:1.36", "command": ["true"], "dependencies": list(deps)}
    annotations = {DELAY: delay} if delay else {}
    annotations.update(extra.pop("annotations", {}))
    if annotations:
        found["metadata"] = {"annotations": annotations}
    return {**found, **extra}


def workflow(name: str, tasks: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": models.API.api_version,
        "kind": models.API.kind,
        "metadata": {"name": name},
        "spec": {"tasks": tasks, **spec},
    }


def apply(kube: lightkube.Client, namespace: str, manifest: dict[str, Any]) -> None:
    kube.create(Observatory.from_dict({**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}))


def get(kube: lightkube.Client, namespace: str, name: str) -> dict[str, Any]:
    return kube.get(Observatory, name, namespace=namespace).to_dict()


def phase_is(kube: lightkube.Client, namespace: str, name: str, *phases: str) -> Any:
    def check() -> dict[str, Any] | None:
        found = get(kube, namespace, name)
        return found if (found.get("status") or {}).get("phase") in phases else None

    return check


def finished(kube: lightkube.Client, namespace: str, name: str, timeout: float = 60) -> dict[str, Any]:
    found: dict[str, Any] = wait_for(
        f"{name} to finish", phase_is(kube, namespace, name, "Succeeded", "Failed"), timeout=timeout
    )
    return found


def tasks_of(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in body["status"]["tasks"]}


def pods_of(kube: lightkube.Client, namespace: str, name: str) -> list[dict[str, Any]]:
    return [p.to_dict() for p in kube.list(Pod, namespace=namespace, labels={children.WORKFLOW_LABEL: name})]


def task_of(pod: dict[str, Any]) -> str:
    return str(pod["metadata"]["labels"][children.TASK_LABEL])


def ended_at(pod: dict[str, Any]) -> float:
    return when(pod["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"])


def when(text: str | None) -> float:
    moment = core_models.parse_timestamp(text)
    assert moment is not None
    return moment.timestamp()


def assert_order(kube: lightkube.Client, namespace: str, body: dict[str, Any], before: str, after: str) -> None:
    """`after` started only once `before` had finished: by status times and by the pods' own."""
    entries = tasks_of(body)
    assert when(entries[after]["startTime"]) >= when(entries[before]["completionTime"]), entries
    pods = {task_of(p): p for p in pods_of(kube, namespace, body["metadata"]["name"])}
    assert when(pods[after]["metadata"]["creationTimestamp"]) >= ended_at(pods[before])


def test_quickstart_runs_in_dependency_order(operator: OperatorProcess, kube: lightkube.Client, namespace: str) -> None:
    manifest = yaml.safe_load((SAMPLES / "observatory-quickstart.yaml").read_text())
    apply(kube, namespace, manifest)
    body = finished(kube, namespace, "my-workflow")
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert body["status"]["progress"] == "3/3"
    assert {t["phase"] for t in body["status"]["tasks"]} == {"Succeeded"}
    assert_order(kube, namespace, body, "setup", "process")
    assert_order(kube, namespace, body, "process", "finalize")
    assert len(pods_of(kube, namespace, "my-workflow")) == 3


def test_three_task_sample_runs_two_in_parallel(
    operator: OperatorProcess, kube: lightkube.Client, namespace: str
) -> None:
    manifest = yaml.safe_load((SAMPLES / "observatory-three-tasks.yaml").read_text())
    apply(kube, namespace, manifest)
    body = finished(kube, namespace, "observatory-sample")
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert_order(kube, namespace, body, "task-1", "task-2")
    assert_order(kube, namespace, body, "task-1", "task-3")
    entries = tasks_of(body)
    # in parallel: task-3 started before task-2 ended, and the other way round
    assert when(entries["task-2"]["startTime"]) <= when(entries["task-3"]["completionTime"])
    assert when(entries["task-3"]["startTime"]) <= when(entries["task-2"]["completionTime"])
    wait_for_events(kube, namespace, {"TaskStarted", "Succeeded"})


class PodWatch:
    """Every pod event of a namespace, from a watch, to count pods alive at each moment."""

    def __init__(self, kube: lightkube.Client, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.phases: dict[str, str] = {}
        self.most = 0
        self.seen: set[str] = set()
        self._stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for kind, pod in self.kube.watch(Pod, namespace=self.namespace):
            if self._stop:
                return
            name = str(pod.metadata.name if pod.metadata else "")
            self.seen.add(name)
            if kind == "DELETED":
                self.phases.pop(name, None)
            else:
                self.phases[name] = pod.status.phase if pod.status and pod.status.phase else "Pending"
            self.most = max(self.most, sum(1 for p in self.phases.values() if p in ("Pending", "Running")))

    def __enter__(self) -> PodWatch:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop = True


def test_max_concurrent_is_never_exceeded(operator: OperatorProcess, kube: lightkube.Client, namespace: str) -> None:
    with PodWatch(kube, namespace) as watch:
        time.sleep(0.5)
        apply(kube, namespace, workflow("ten", [task(f"t{i}") for i in range(10)], maxConcurrent=2))
        body = finished(kube, namespace, "ten", timeout=90)
    assert body["status"]["phase"] == "Succeeded"
    assert len(watch.seen) == 10
    assert watch.most == 2, f"at most two pods at once, saw {watch.most}"


def test_a_failed_task_skips_its_dependents(operator: OperatorProcess, kube: lightkube.Client, namespace: str) -> None:
    failing = task("b", "a", annotations={FAIL: "true", EXIT_CODE: "3"})
    tasks = [task("a"), failing, task("c", "b"), task("d", "c"), task("other", "a", delay="2s")]
    apply(kube, namespace, workflow("fails", tasks))
    body = finished(kube, namespace, "fails")
    entries = tasks_of(body)
    assert body["status"]["phase"] == "Failed"
    assert "b" in body["status"]["message"]
    assert entries["b"]["phase"] == "Failed" and entries["b"]["exitCode"] == 3
    assert entries["c"]["phase"] == "Skipped" and "b" in entries["c"]["message"]
    assert entries["d"]["phase"] == "Skipped" and "b failed" in entries["d"]["message"]
    assert entries["other"]["phase"] == "Succeeded", "an independent branch runs to its end"
    names = {task_of(p) for p in pods_of(kube, namespace, "fails")}
    assert names == {"a", "b", "other"}
    wait_for_events(kube, namespace, {"TaskFailed", "Failed"})


def test_a_retry_succeeds_on_the_second_attempt(
    operator: OperatorProcess, kube: lightkube.Client, namespace: str
) -> None:
    retried = task("flaky", delay="4s", retryStrategy={"limit": 2, "backoff": {"duration": "1s"}})
    apply(kube, namespace, workflow("retry", [retried, task("after", "flaky")]))
    first = children.pod_name("retry", "flaky", 1)
    wait_for("the first attempt's pod", lambda: kube.get(Pod, first, namespace=namespace))
    # only the first attempt fails: kwok's failure stage, asked for on that pod alone
    kube.patch(Pod, first, {"metadata": {"annotations": {FAIL: "true", EXIT_CODE: "7"}}}, namespace=namespace)
    body = finished(kube, namespace, "retry")
    entries = tasks_of(body)
    assert body["status"]["phase"] == "Succeeded", body["status"]
    assert entries["flaky"]["attempts"] == 2
    assert entries["flaky"]["podName"] == children.pod_name("retry", "flaky", 2)
    pods = {p["metadata"]["name"]: p for p in pods_of(kube, namespace, "retry")}
    assert pods[first]["status"]["phase"] == "Failed"
    # the backoff: the second attempt was created at least a second after the first one ended
    second = when(pods[children.pod_name("retry", "flaky", 2)]["metadata"]["creationTimestamp"])
    assert second - ended_at(pods[first]) >= 1
    wait_for_events(kube, namespace, {"TaskAttemptFailed", "TaskRetried"})


def test_a_task_past_its_deadline_fails(operator: OperatorProcess, kube: lightkube.Client, namespace: str) -> None:
    apply(kube, namespace, workflow("slow", [task("slow", delay="60s", activeDeadlineSeconds=2), task("next", "slow")]))
    started = time.monotonic()
    body = finished(kube, namespace, "slow", timeout=30)
    assert time.monotonic() - started < 20
    entries = tasks_of(body)
    assert body["status"]["phase"] == "Failed"
    assert entries["slow"]["phase"] == "Failed" and entries["slow"]["reason"] == "DeadlineExceeded"
    assert entries["next"]["phase"] == "Skipped"
    wait_for("the slow pod to be stopped", lambda: not pods_of(kube, namespace, "slow"))


def test_a_cycle_fails_the_workflow_naming_it(
    operator: OperatorProcess, kube: lightkube.Client, namespace: str
) -> None:
    apply(kube, namespace, workflow("loop", [task("a", "c"), task("b", "a"), task("c", "b"), task("free")]))
    body = finished(kube, namespace, "loop")
    assert body["status"]["phase"] == "Failed"
    assert "dependency cycle: a -> c -> b -> a" in body["status"]["message"]
    valid = next(c for c in body["status"]["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False" and "a -> c -> b -> a" in valid["message"]
    time.sleep(1)
    assert pods_of(kube, namespace, "loop") == [], "nothing of an invalid workflow runs"


def test_an_unknown_dependency_is_refused(operator: OperatorProcess, kube: lightkube.Client, namespace: str) -> None:
    with pytest.raises(ApiError) as refused:
        apply(kube, namespace, workflow("unknown", [task("a", "nowhere")]))
    assert "every dependency must name a task of this workflow" in str(refused.value.status.message)


def test_suspend_holds_new_tasks_and_resume_finishes(
    operator: OperatorProcess, kube: lightkube.Client, namespace: str
) -> None:
    apply(kube, namespace, workflow("held", [task("a", delay="3s"), task("b", "a")]))
    first = children.pod_name("held", "a", 1)
    wait_for("a's pod", lambda: kube.get(Pod, first, namespace=namespace))
    kube.patch(Observatory, "held", {"spec": {"suspend": True}}, namespace=namespace, patch_type=PatchType.MERGE)

    def a_done_and_held() -> bool:
        entries = tasks_of(get(kube, namespace, "held"))
        return entries["a"]["phase"] == "Succeeded"

    wait_for("a to finish while suspended", a_done_and_held, timeout=20)
    time.sleep(2)
    body = get(kube, namespace, "held")
    assert tasks_of(body)["b"]["phase"] == "Pending"
    assert body["status"]["phase"] == "Running"
    suspended = next(c for c in body["status"]["conditions"] if c["type"] == "Suspended")
    assert suspended["status"] == "True"
    assert [p["metadata"]["name"] for p in pods_of(kube, namespace, "held")] == [first]
    kube.patch(Observatory, "held", {"spec": {"suspend": False}}, namespace=namespace, patch_type=PatchType.MERGE)
    body = finished(kube, namespace, "held")
    assert body["status"]["phase"] == "Succeeded"


def test_deleting_a_workflow_deletes_its_pods(
    operator: OperatorProcess, kube: lightkube.Client, namespace: str
) -> None:
    apply(kube, namespace, workflow("gone", [task(f"t{i}", delay="60s") for i in range(3)]))
    wait_for("three running pods", lambda: len(pods_of(kube, namespace, "gone")) == 3)
    kube.delete(Observatory, "gone", namespace=namespace)
    wait_for("the pods to go", lambda: not pods_of(kube, namespace, "gone"), timeout=60)


def test_ttl_deletes_a_finished_workflow(operator: OperatorProcess, kube: lightkube.Client, namespace: str) -> None:
    apply(kube, namespace, workflow("brief", [task("a")], ttlSecondsAfterFinished=2))
    finished(kube, namespace, "brief")

    def deleted() -> bool:
        try:
            get(kube, namespace, "brief")
        except ApiError as error:
            return error.status.code == 404
        return False

    wait_for("the workflow to be deleted after its TTL", deleted, timeout=30)


def test_a_schedule_fires_on_a_real_tick(operator: OperatorProcess, kube: lightkube.Client, namespace: str) -> None:
    apply(kube, namespace, workflow("every-minute", [task("a")], schedule="* * * * *"))
    schedule = wait_for(
        "the next tick to be recorded",
        lambda: (get(kube, namespace, "every-minute").get("status") or {}).get("nextScheduleTime"),
    )
    tick = when(schedule)

    def run() -> dict[str, Any] | None:
        runs = [
            o.to_dict()
            for o in kube.list(Observatory, namespace=namespace, labels={children.SCHEDULE_LABEL: "every-minute"})
        ]
        return runs[0] if runs else None

    found = wait_for("a run at the tick", run, timeout=75)
    created = when(found["metadata"]["creationTimestamp"])
    assert tick <= created <= tick + 5, "the run is created at its tick, to the second"
    assert found["metadata"]["ownerReferences"][0]["name"] == "every-minute"
    assert "schedule" not in found["spec"]
    body = finished(kube, namespace, found["metadata"]["name"])
    assert body["status"]["phase"] == "Succeeded"
    parent = wait_for(
        "the schedule to record the run",
        lambda: (s := get(kube, namespace, "every-minute")["status"]).get("lastScheduleTime") and s,
    )
    assert when(parent["lastScheduleTime"]) == tick


@pytest.fixture
def own_operator(
    operator: OperatorProcess, kubeconfig: pathlib.Path, tmp_path: pathlib.Path
) -> Iterator[OperatorProcess]:
    """The shared operator stopped, and one this test may kill, in its place."""
    args = ["--resync-seconds", "5", "--controllers", "observatory"]
    with instead_of(operator, OperatorProcess(kubeconfig, tmp_path / "killed.log", args)) as own:
        yield own


def test_a_killed_operator_runs_no_task_twice(
    own_operator: OperatorProcess, kube: lightkube.Client, namespace: str
) -> None:
    own_operator.start()
    chain = [task("a", delay="2s"), task("b", "a", delay="3s"), task("c", "b", delay="2s"), task("d", "c")]
    wide = [task(f"w{i}", "a", delay="3s") for i in range(4)]
    apply(kube, namespace, workflow("resilient", chain + wide, maxConcurrent=3))
    wait_for("b's pod", lambda: kube.get(Pod, children.pod_name("resilient", "b", 1), namespace=namespace), 30)
    own_operator.kill()
    time.sleep(4)  # b finishes while nobody watches
    own_operator.start()
    body = finished(kube, namespace, "resilient", timeout=60)
    assert body["status"]["phase"] == "Succeeded", body["status"]
    pods = pods_of(kube, namespace, "resilient")
    assert len(pods) == 8, sorted(p["metadata"]["name"] for p in pods)
    assert {p["metadata"]["labels"][children.ATTEMPT_LABEL] for p in pods} == {"1"}
    assert all(t["attempts"] == 1 for t in body["status"]["tasks"])
