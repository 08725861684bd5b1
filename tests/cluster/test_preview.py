"""PreviewEnvironment end to end against the local control plane, with the operator running as a
process: the seed example and the objects of its namespace, rolling a new tag, putting back a
hand-deleted Deployment, deletion through the finalizer, TTL at the exact second, the name
conflicts that must leave the other party untouched, a changed pr_number, the metrics as scraped
over HTTP, and a restart that recreates nothing.

Preview namespaces are cluster-wide names, so each test draws PR numbers of its own; every object
a test makes is deleted (and waited for) before its namespace goes.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import pathlib
import random
import time
from collections.abc import Iterator
from typing import Any

import lightkube
import pytest
import yaml
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment, ReplicaSet
from lightkube.resources.core_v1 import LimitRange, Namespace, ResourceQuota, Service
from lightkube.resources.networking_v1 import Ingress, NetworkPolicy
from lightkube.types import PatchType
from prometheus_client.parser import text_string_to_metric_families
from tests.cluster.conftest import OperatorProcess, deletion_seen, gone, wait_for, wait_for_events

pytestmark = pytest.mark.usefixtures("operator")

SAMPLE = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "samples" / "preview-example.yaml"
PreviewEnvironment = create_namespaced_resource("devops.orima.com", "v1", "PreviewEnvironment", "previewenvironments")
CHILD_KINDS = (Deployment, Service, Ingress, NetworkPolicy, ResourceQuota, LimitRange)
READY_TIMEOUT = 60


def _pr() -> int:
    return random.randint(100000, 999999)


def _ts(text: str) -> float:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class Previews:
    """Makes PreviewEnvironments for one test and deletes them all (waiting) at its end."""

    def __init__(self, kube: lightkube.Client) -> None:
        self.kube = kube
        self.made: list[tuple[str, str]] = []

    def create(self, namespace: str, name: str, **spec: Any) -> Any:
        doc = {
            "apiVersion": "devops.orima.com/v1",
            "kind": "PreviewEnvironment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"branch_name": "feature/test", "image": "registry.invalid/app", "image_tag": "v1", **spec},
        }
        return self.create_doc(doc)

    def create_doc(self, doc: dict[str, Any]) -> Any:
        self.made.append((doc["metadata"]["namespace"], doc["metadata"]["name"]))
        return self.kube.create(codecs.from_dict(copy.deepcopy(doc)))

    def get(self, namespace: str, name: str) -> Any:
        return self.kube.get(PreviewEnvironment, name, namespace=namespace)

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        return self.get(namespace, name).status or {}

    def wait_phase(self, namespace: str, name: str, phase: str, timeout: float = READY_TIMEOUT) -> Any:
        def check() -> Any:
            obj = self.get(namespace, name)
            return obj if (obj.status or {}).get("phase") == phase else None

        return wait_for(f"{namespace}/{name} {phase}", check, timeout)

    def delete_and_wait(self, namespace: str, name: str, timeout: float = 90) -> None:
        with contextlib.suppress(ApiError):
            self.kube.delete(PreviewEnvironment, name, namespace=namespace)
        wait_for(f"{namespace}/{name} gone", gone(lambda: self.get(namespace, name)), timeout)

    def cleanup(self) -> None:
        for namespace, name in reversed(self.made):
            self.delete_and_wait(namespace, name)


@pytest.fixture
def previews(kube: lightkube.Client, namespace: str) -> Iterator[Previews]:
    made = Previews(kube)
    yield made
    made.cleanup()


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status.get("conditions") or [] if c["type"] == type_)


def _children(kube: lightkube.Client, namespace: str) -> dict[str, list[str]]:
    return {
        kind.__name__: sorted(o.metadata.name for o in kube.list(kind, namespace=namespace)) for kind in CHILD_KINDS
    }


def _versions(kube: lightkube.Client, pr: int) -> dict[str, tuple[str, str]]:
    """uid and resourceVersion of the namespace and everything Roadie put in it."""
    ns_name = f"preview-pr-{pr}"
    ns = kube.get(Namespace, ns_name)
    found = {f"Namespace/{ns_name}": (ns.metadata.uid, ns.metadata.resourceVersion)}
    for kind in CHILD_KINDS:
        for obj in kube.list(kind, namespace=ns_name):
            found[f"{kind.__name__}/{obj.metadata.name}"] = (obj.metadata.uid, obj.metadata.resourceVersion)
    return found


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a /metrics scrape (0 when absent, as Prometheus treats it)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def _live(kube: lightkube.Client) -> int:
    """How many PreviewEnvironments in the cluster are provisioned: what the active gauge says."""
    phases = [(o.status or {}).get("phase") for o in kube.list(PreviewEnvironment, namespace=lightkube.ALL_NS)]
    return sum(1 for phase in phases if phase in ("Creating", "Updating", "Ready"))


def _settled(obj: Any) -> Any:
    """Ready, carrying Roadie's finalizer and nothing the framework added (the resync is Roadie's
    own deadline, not a kopf timer, so kopf puts no finalizer of its own)."""
    ready = (obj.status or {}).get("phase") == "Ready"
    assert (obj.metadata.finalizers or []) in ([], ["roadie.dev/preview-namespace"]), obj.metadata.finalizers
    return obj if ready and obj.metadata.finalizers else None


def _ensure_namespace(kube: lightkube.Client, name: str) -> None:
    try:
        kube.create(Namespace(metadata=ObjectMeta(name=name)))
    except ApiError as error:
        if error.status.code != 409:
            raise


def test_seed_example_reaches_ready_and_its_namespace_holds_the_objects(
    kube: lightkube.Client, previews: Previews
) -> None:
    doc = yaml.safe_load(SAMPLE.read_text())
    namespace, name = doc["metadata"]["namespace"], doc["metadata"]["name"]
    _ensure_namespace(kube, namespace)
    previews.delete_and_wait(namespace, name)  # a leftover of an interrupted run
    wait_for("no preview-pr-42 left over", gone(lambda: kube.get(Namespace, "preview-pr-42")), 90)

    started = time.monotonic()
    previews.create_doc(doc)
    obj = previews.wait_phase(namespace, name, "Ready")
    print(f"seed example: apply to Ready in {time.monotonic() - started:.2f}s")

    status = obj.status
    assert status["url"] == "https://pr-42.preview.orimatest.com"
    assert status["namespace"] == "preview-pr-42"
    assert _ts(status["expiresAt"]) - obj.metadata.creationTimestamp.timestamp() == 3600
    assert _condition(status, "Ready")["status"] == "True"
    assert _condition(status, "Ready")["observedGeneration"] == obj.metadata.generation
    assert "roadie.dev/preview-namespace" in obj.metadata.finalizers

    ns = kube.get(Namespace, "preview-pr-42")
    labels = ns.metadata.labels
    assert labels["managed-by"] == "preview-operator" and labels["pr-number"] == "42"
    assert labels["roadie.dev/owner-uid"] == obj.metadata.uid
    assert labels["roadie.dev/branch"] != "feature/my-feature", "a branch is made label-safe"
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"

    assert _children(kube, "preview-pr-42") == {
        "Deployment": ["pr-42-app"],
        "Service": ["pr-42-svc"],
        "Ingress": ["pr-42-ingress"],
        "NetworkPolicy": ["pr-42-app-netpol"],
        "ResourceQuota": ["pr-42-quota"],
        "LimitRange": ["pr-42-limits"],
    }
    deployment = kube.get(Deployment, "pr-42-app", namespace="preview-pr-42")
    container = deployment.spec.template.spec.containers[0]
    assert (container.name, container.image) == ("app", "youruser/my-app:a3f9c2d")
    assert container.ports[0].containerPort == 8000
    assert container.livenessProbe.httpGet.path == "/" and container.readinessProbe.httpGet.path == "/"
    assert container.resources.requests == {"cpu": "100m", "memory": "128Mi"}
    assert container.resources.limits == {"cpu": "250m", "memory": "256Mi"}
    assert deployment.status.availableReplicas == 1, "pods were admitted under Pod Security `restricted`"

    service = kube.get(Service, "pr-42-svc", namespace="preview-pr-42")
    assert service.spec.type == "ClusterIP"
    assert (service.spec.ports[0].port, service.spec.ports[0].targetPort) == (80, 8000)

    ingress = kube.get(Ingress, "pr-42-ingress", namespace="preview-pr-42")
    assert ingress.spec.ingressClassName == "nginx"
    assert ingress.metadata.annotations["cert-manager.io/cluster-issuer"] == "letsencrypt-prod"
    assert ingress.spec.tls[0].hosts == ["pr-42.preview.orimatest.com"]
    assert ingress.spec.tls[0].secretName == "pr-42.preview.orimatest.com-tls"
    assert ingress.spec.rules[0].http.paths[0].backend.service.name == "pr-42-svc"

    policy = kube.get(NetworkPolicy, "pr-42-app-netpol", namespace="preview-pr-42")
    sources = policy.spec.ingress[0].from_
    assert sources[0].namespaceSelector.matchLabels == {"kubernetes.io/metadata.name": "ingress-nginx"}
    assert sources[1].podSelector is not None and sources[1].namespaceSelector is None
    wait_for_events(kube, namespace, {"Ready"}, kind="PreviewEnvironment", name=name)


def test_new_tag_rolls_the_deployment_and_a_deleted_one_comes_back(
    kube: lightkube.Client, namespace: str, previews: Previews
) -> None:
    pr = _pr()
    ns, app = f"preview-pr-{pr}", f"pr-{pr}-app"
    previews.create(namespace, "roll", pr_number=pr, image_tag="v1")
    previews.wait_phase(namespace, "roll", "Ready")
    before = kube.get(Deployment, app, namespace=ns)

    kube.patch(
        PreviewEnvironment, "roll", {"spec": {"image_tag": "v2"}}, namespace=namespace, patch_type=PatchType.MERGE
    )

    def rolled() -> Any:
        obj = previews.get(namespace, "roll")
        status = obj.status or {}
        ready = status.get("phase") == "Ready" and status.get("observedGeneration") == obj.metadata.generation
        return obj if ready else None

    obj = wait_for("Ready at the new tag", rolled, READY_TIMEOUT)
    assert obj.status["image"] == "registry.invalid/app:v2"
    after = kube.get(Deployment, app, namespace=ns)
    assert after.metadata.uid == before.metadata.uid, "rolled in place, not replaced"
    assert after.spec.template.spec.containers[0].image == "registry.invalid/app:v2"
    assert after.metadata.generation > before.metadata.generation
    assert after.status.updatedReplicas == after.status.replicas == after.status.availableReplicas == 1
    assert len(list(kube.list(ReplicaSet, namespace=ns))) == 2, "a new ReplicaSet for the new tag"

    kube.delete(Deployment, app, namespace=ns)
    back = wait_for(
        "the Deployment made again",
        lambda: (d := kube.get(Deployment, app, namespace=ns)).metadata.uid != before.metadata.uid and d,
        30,
    )
    assert back.spec.template.spec.containers[0].image == "registry.invalid/app:v2"
    previews.wait_phase(namespace, "roll", "Ready")


def test_deleting_the_object_deletes_its_namespace(kube: lightkube.Client, namespace: str, previews: Previews) -> None:
    pr = _pr()
    previews.create(namespace, "gone", pr_number=pr)
    previews.wait_phase(namespace, "gone", "Ready")

    kube.delete(PreviewEnvironment, "gone", namespace=namespace)
    wait_for("the namespace gone", gone(lambda: kube.get(Namespace, f"preview-pr-{pr}")), 90)
    wait_for("the object gone after its namespace", gone(lambda: previews.get(namespace, "gone")), 30)


def test_ttl_deletes_at_creation_plus_ttl_within_a_second(
    kube: lightkube.Client, operator: OperatorProcess, namespace: str, previews: Previews
) -> None:
    expired_before = _metric(operator.metrics(), "preview_environments_expired_total")
    pr = _pr()
    obj = previews.create(namespace, "brief", pr_number=pr, ttl_seconds=60)
    previews.wait_phase(namespace, "brief", "Ready")
    expires_at = _ts(previews.status(namespace, "brief")["expiresAt"])
    assert expires_at - obj.metadata.creationTimestamp.timestamp() == 60

    deleting = deletion_seen(lambda: previews.get(namespace, "brief"))

    wait_for("20s before expiry", lambda: time.time() >= expires_at - 20, 70, interval=0.5)
    assert deleting() is None, "not deleted early"
    observed = wait_for("the object deleted at expiresAt", deleting, 30, interval=0.05)
    print(f"TTL: deletion seen {observed - expires_at:+.3f}s from expiresAt")
    assert -0.05 <= observed - expires_at < 1.0, f"deleted {observed - expires_at:+.3f}s from expiresAt"
    wait_for("the namespace gone", gone(lambda: kube.get(Namespace, f"preview-pr-{pr}")), 90)
    wait_for_events(kube, namespace, {"Expired"}, kind="PreviewEnvironment", name="brief")
    assert _metric(operator.metrics(), "preview_environments_expired_total") == expired_before + 1


def test_second_object_for_the_same_pr_fails_and_leaves_the_holder_untouched(
    kube: lightkube.Client, namespace: str, previews: Previews
) -> None:
    pr = _pr()
    previews.create(namespace, "first", pr_number=pr)
    holder = previews.wait_phase(namespace, "first", "Ready")
    before = _versions(kube, pr)

    previews.create(namespace, "second", pr_number=pr, image_tag="other")
    newcomer = previews.wait_phase(namespace, "second", "Failed", 30)
    provisioned = _condition(newcomer.status, "Provisioned")
    assert provisioned["reason"] == "NamespaceConflict"
    assert f"PreviewEnvironment {namespace}/first" in provisioned["message"]
    assert newcomer.status.get("namespace") is None and newcomer.status.get("url") is None
    wait_for_events(kube, namespace, {"Failed"}, kind="PreviewEnvironment", name="second", type_="Warning")

    previews.delete_and_wait(namespace, "second", timeout=30)
    assert _versions(kube, pr) == before, "the holder's namespace and objects were not written"
    after = previews.get(namespace, "first")
    assert after.status == holder.status and after.status["phase"] == "Ready", "the holder's status was not written"
    assert after.metadata.generation == holder.metadata.generation


def test_the_newcomer_takes_the_name_once_the_holder_is_gone(
    kube: lightkube.Client, namespace: str, previews: Previews
) -> None:
    pr = _pr()
    previews.create(namespace, "holder", pr_number=pr)
    previews.wait_phase(namespace, "holder", "Ready")
    previews.create(namespace, "waiting", pr_number=pr, image_tag="next")
    previews.wait_phase(namespace, "waiting", "Failed", 30)

    previews.delete_and_wait(namespace, "holder", timeout=90)
    taken = previews.wait_phase(namespace, "waiting", "Ready", 60)
    assert taken.status["namespace"] == f"preview-pr-{pr}"
    ns = kube.get(Namespace, f"preview-pr-{pr}")
    assert ns.metadata.labels["roadie.dev/owner-uid"] == taken.metadata.uid


def test_foreign_namespace_of_that_name_is_never_touched(
    kube: lightkube.Client, namespace: str, previews: Previews
) -> None:
    pr = _pr()
    foreign = f"preview-pr-{pr}"
    kube.create(Namespace(metadata=ObjectMeta(name=foreign, labels={"team": "someone-else"})))
    try:
        before = kube.get(Namespace, foreign)
        previews.create(namespace, "intruder", pr_number=pr)
        obj = previews.wait_phase(namespace, "intruder", "Failed", 30)
        message = _condition(obj.status, "Provisioned")["message"]
        assert foreign in message and "not made by Roadie" in message

        previews.delete_and_wait(namespace, "intruder", timeout=30)
        after = kube.get(Namespace, foreign)
        assert (after.metadata.uid, after.metadata.resourceVersion) == (
            before.metadata.uid,
            before.metadata.resourceVersion,
        )
        assert after.metadata.deletionTimestamp is None
        assert not any(_children(kube, foreign).values())
    finally:
        kube.delete(Namespace, foreign)


def test_changing_pr_number_moves_to_a_new_namespace_and_deletes_the_old(
    kube: lightkube.Client, namespace: str, previews: Previews
) -> None:
    old_pr, new_pr = _pr(), _pr()
    previews.create(namespace, "renumbered", pr_number=old_pr)
    previews.wait_phase(namespace, "renumbered", "Ready")

    kube.patch(
        PreviewEnvironment,
        "renumbered",
        {"spec": {"pr_number": new_pr}},
        namespace=namespace,
        patch_type=PatchType.MERGE,
    )
    wait_for("the old namespace gone", gone(lambda: kube.get(Namespace, f"preview-pr-{old_pr}")), 90)
    obj = wait_for(
        "Ready in the new namespace",
        lambda: (
            (o := previews.get(namespace, "renumbered")).status.get("namespace") == f"preview-pr-{new_pr}"
            and o.status.get("phase") == "Ready"
            and o
        ),
        READY_TIMEOUT,
    )
    assert obj.status["url"] == f"https://pr-{new_pr}.preview.orimatest.com"
    assert kube.get(Deployment, f"pr-{new_pr}-app", namespace=f"preview-pr-{new_pr}")


def test_metrics_scraped_over_http_count_what_happened(
    kube: lightkube.Client, operator: OperatorProcess, namespace: str, previews: Previews
) -> None:
    branch = "Feature/Ünïcode work/#123"
    pr = _pr()
    before = operator.metrics()
    previews.create(namespace, "counted", pr_number=pr, branch_name=branch)
    previews.wait_phase(namespace, "counted", "Ready")
    previews.create(namespace, "clash", pr_number=pr)
    previews.wait_phase(namespace, "clash", "Failed", 30)

    failed = "preview_environments_failed_total"

    def scraped() -> str | None:  # both counted (the test may see a phase before its reconcile ends)
        text = operator.metrics()
        created = _metric(text, "preview_environments_created_total", branch_name=branch) == 1
        return (
            text
            if created and _metric(text, failed, step="namespace") > _metric(before, failed, step="namespace")
            else None
        )

    after = wait_for("created_total and failed_total counted", scraped, 10)
    count = "preview_environment_creation_duration_seconds_count"
    assert _metric(after, count) == _metric(before, count) + 1
    assert _metric(after, "preview_environment_creation_duration_seconds_bucket", le="60.0") >= 1
    assert _metric(after, failed, step="namespace") == _metric(before, failed, step="namespace") + 1
    assert _metric(after, "preview_environments_reconcile_total", pr_number=str(pr)) >= 2
    assert _metric(after, "preview_environments_active") == _live(kube) >= 1

    previews.cleanup()
    wait_for(
        "the PR's reconcile series dropped with its last object",
        lambda: _metric(operator.metrics(), "preview_environments_reconcile_total", pr_number=str(pr)) == 0,
        10,
    )


def test_restart_recreates_nothing_and_the_gauge_is_right_again(
    kube: lightkube.Client, operator: OperatorProcess, namespace: str, previews: Previews
) -> None:
    prs = [_pr(), _pr()]
    for i, pr in enumerate(prs):
        previews.create(namespace, f"env{i}", pr_number=pr)
    names = [f"env{i}" for i in range(len(prs))]
    objects = [wait_for(f"{name} settled", lambda name=name: _settled(previews.get(namespace, name))) for name in names]
    children = {pr: _versions(kube, pr) for pr in prs}

    operator.kill()
    operator.start()

    def resumed() -> str | None:
        # a second reconcile (the resync) has started, so the first one after the restart is done
        text = operator.metrics()
        seen = all(_metric(text, "preview_environments_reconcile_total", pr_number=str(pr)) >= 2 for pr in prs)
        return text if seen else None

    text = wait_for("every environment reconciled after the restart", resumed, 30)
    assert _metric(text, "preview_environments_active") == _live(kube) >= len(prs)
    assert _metric(text, "preview_environments_created_total", branch_name="feature/test") == 0, "nothing counted"
    for pr in prs:
        assert _versions(kube, pr) == children[pr], f"children of PR {pr} were rewritten"
    for name, obj in zip(names, objects, strict=True):
        assert previews.get(namespace, name).metadata.resourceVersion == obj.metadata.resourceVersion, name
