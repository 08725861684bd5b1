"""Workshop end to end against the local control plane, with the operator running as a process:
the seed's examples, expiry at the exact second, extension, self-healing, restarts, validation,
multi-participant sessions and clean deletion."""

from __future__ import annotations

import datetime
import time
from typing import Any

import lightkube
import pytest
from lightkube import codecs
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import PersistentVolumeClaim, Secret, Service
from lightkube.resources.networking_v1 import Ingress
from lightkube.types import PatchType
from tests.cluster import workshops
from tests.cluster.conftest import OperatorProcess, deletion_seen, wait_for, wait_for_events

pytestmark = pytest.mark.usefixtures("operator")


def _children(kube: lightkube.Client, namespace: str, name: str) -> dict[str, list[str]]:
    selector = {"workshop": name}
    return {
        kind.__name__: sorted(o.metadata.name for o in kube.list(kind, namespace=namespace, labels=selector))
        for kind in (Deployment, Service, PersistentVolumeClaim, Ingress, Secret)
    }


def _ready(kube: lightkube.Client, namespace: str, name: str) -> Any:
    return wait_for(f"workshop {name} Ready", lambda: workshops.phase(kube, namespace, name) == "Ready", 60)


def test_seed_example_reaches_ready_with_the_seed_children(kube: lightkube.Client, namespace: str) -> None:
    workshops.create(kube, workshops.sample("workshop-bioconductor.yaml", namespace))
    _ready(kube, namespace, "data-science-101")

    obj = workshops.get(kube, namespace, "data-science-101")
    assert obj.spec["participants"] == 1, "the CRD's defaults are visible on the object"
    assert obj.status["url"] == "http://data-science-101.orchestraplatform.org/"
    created = datetime.datetime.fromisoformat(obj.status["createdAt"].replace("Z", "+00:00"))
    expires = datetime.datetime.fromisoformat(obj.status["expiresAt"].replace("Z", "+00:00"))
    assert expires - created == datetime.timedelta(hours=4)
    ready = next(c for c in obj.status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == obj.metadata.generation

    assert _children(kube, namespace, "data-science-101") == {
        "Deployment": ["data-science-101-deployment"],
        "Service": ["data-science-101-service"],
        "PersistentVolumeClaim": ["data-science-101-pvc"],
        "Ingress": ["data-science-101-ingress"],
        "Secret": ["data-science-101-credentials"],
    }
    service = kube.get(Service, "data-science-101-service", namespace=namespace)
    assert (service.spec.ports[0].port, service.spec.ports[0].targetPort) == (80, 8787)
    ingress = kube.get(Ingress, "data-science-101-ingress", namespace=namespace)
    assert ingress.metadata.annotations["kubernetes.io/ingress.class"] == "traefik"
    deployment = kube.get(Deployment, "data-science-101-deployment", namespace=namespace)
    assert deployment.metadata.ownerReferences[0].uid == obj.metadata.uid
    assert deployment.metadata.labels["app.kubernetes.io/managed-by"] == "roadie"
    wait_for_events(kube, namespace, {"Ready"}, kind="Workshop", name="data-science-101")


def test_missing_storage_class_is_named_then_fails_at_the_deadline(kube: lightkube.Client, namespace: str) -> None:
    workshops.create(kube, workshops.sample("workshop-example.yaml", namespace))

    def creating_with_cause() -> Any:
        obj = workshops.get(kube, namespace, "data-science-101")
        status = obj.status or {}
        return status.get("phase") == "Creating" and "fast-ssd" in (status.get("message") or "") and status

    status = wait_for("Creating with the missing StorageClass named", creating_with_cause, 30)
    assert "does not exist" in status["message"]
    wait_for(
        "Failed after the provisioning deadline (15s in tests)",
        lambda: workshops.phase(kube, namespace, "data-science-101") == "Failed",
        40,
    )
    obj = workshops.get(kube, namespace, "data-science-101")
    provisioned = next(c for c in obj.status["conditions"] if c["type"] == "Provisioned")
    assert provisioned["reason"] == "ProvisioningDeadlineExceeded" and "fast-ssd" in provisioned["message"]
    wait_for_events(kube, namespace, {"Failed"}, kind="Workshop", name="data-science-101", type_="Warning")


def test_expiry_happens_within_a_second_of_expires_at(kube: lightkube.Client, namespace: str) -> None:
    workshops.create(kube, workshops.manifest(namespace, "brief", duration="7s"))
    obj = wait_for(
        "expiresAt in status",
        lambda: (o := workshops.get(kube, namespace, "brief")).status and o.status.get("expiresAt") and o,
    )
    expires_at = datetime.datetime.fromisoformat(obj.status["expiresAt"].replace("Z", "+00:00")).timestamp()

    deleting = deletion_seen(lambda: workshops.get(kube, namespace, "brief"))
    observed = wait_for("the workshop deleted at expiry", deleting, 30, interval=0.05)
    assert -0.05 <= observed - expires_at < 1.0, f"deleted {observed - expires_at:+.3f}s from expiresAt"
    # the delete goes first; the `Expired` event is posted right after it
    wait_for_events(kube, namespace, {"ExpiringSoon", "Expired"}, kind="Workshop", name="brief")
    wait_for(
        "children removed with it",
        lambda: not any(_children(kube, namespace, "brief").values()),
        30,
    )


def test_changing_duration_moves_expiry(kube: lightkube.Client, namespace: str) -> None:
    workshops.create(kube, workshops.manifest(namespace, "extend", duration="12s"))
    _ready(kube, namespace, "extend")
    first = workshops.get(kube, namespace, "extend").status["expiresAt"]
    kube.patch(
        workshops.Workshop, "extend", {"spec": {"duration": "1h"}}, namespace=namespace, patch_type=PatchType.MERGE
    )
    moved = wait_for(
        "expiresAt moved",
        lambda: (s := workshops.get(kube, namespace, "extend").status["expiresAt"]) != first and s,
    )
    delta = datetime.datetime.fromisoformat(moved.replace("Z", "+00:00")) - datetime.datetime.fromisoformat(
        first.replace("Z", "+00:00")
    )
    assert delta == datetime.timedelta(hours=1) - datetime.timedelta(seconds=12)
    wait_for_events(kube, namespace, {"ExpiryChanged"}, kind="Workshop", name="extend")
    time.sleep(
        max(0.0, 14 - (time.time() - workshops.get(kube, namespace, "extend").metadata.creationTimestamp.timestamp()))
    )
    assert workshops.phase(kube, namespace, "extend") == "Ready", "still there after the original expiry"


def test_a_deleted_child_is_put_back(kube: lightkube.Client, namespace: str) -> None:
    workshops.create(kube, workshops.manifest(namespace, "heal"))
    _ready(kube, namespace, "heal")
    old = kube.get(Deployment, "heal-deployment", namespace=namespace).metadata.uid
    kube.delete(Deployment, "heal-deployment", namespace=namespace)
    kube.delete(Service, "heal-service", namespace=namespace)
    wait_for(
        "the deployment recreated",
        lambda: kube.get(Deployment, "heal-deployment", namespace=namespace).metadata.uid != old,
        30,
    )
    wait_for("the service recreated", lambda: kube.get(Service, "heal-service", namespace=namespace), 30)
    _ready(kube, namespace, "heal")


def test_killed_mid_provisioning_converges_without_duplicates(
    kube: lightkube.Client, namespace: str, operator: OperatorProcess
) -> None:
    workshops.create(kube, workshops.manifest(namespace, "crash", participants=2, ingress={"host": "crash.test"}))
    time.sleep(0.3)  # the operator is mid-way through its first reconcile
    operator.kill()
    try:
        partial = _children(kube, namespace, "crash")
        passwords_before = {name: kube.get(Secret, name, namespace=namespace).data for name in partial["Secret"]}
    finally:
        operator.start()
    _ready(kube, namespace, "crash")
    assert _children(kube, namespace, "crash") == {
        "Deployment": ["crash-deployment", "crash-p2-deployment"],
        "Service": ["crash-p2-service", "crash-service"],
        "PersistentVolumeClaim": ["crash-p2-pvc", "crash-pvc"],
        "Ingress": ["crash-ingress"],
        "Secret": ["crash-credentials", "crash-p2-credentials"],
    }
    for name, data in passwords_before.items():
        assert kube.get(Secret, name, namespace=namespace).data == data, "credentials are never regenerated"


@pytest.mark.parametrize(
    ("spec", "field", "text"),
    [
        ({"duration": "4 hours"}, "spec.duration", "should match"),
        ({"participants": 0}, "spec.participants", "should be greater than or equal to 1"),
        ({"resources": {"memory": "lots"}}, "spec.resources.memory", "should match"),
        ({"name": "Not_A_Name"}, "spec.name", "should match"),
    ],
)
def test_invalid_specs_are_refused_by_the_api_server(
    kube: lightkube.Client, namespace: str, spec: dict[str, Any], field: str, text: str
) -> None:
    doc = workshops.manifest(namespace, "invalid")
    doc["spec"].update(spec)
    with pytest.raises(ApiError) as caught:
        kube.create(codecs.from_dict(doc))
    message = caught.value.status.message
    assert caught.value.status.code == 422 and field in message and text in message, message


def test_two_participants_get_two_isolated_sessions(kube: lightkube.Client, namespace: str) -> None:
    workshops.create(kube, workshops.manifest(namespace, "pair", participants=2, ingress={"host": "pair.example.com"}))
    _ready(kube, namespace, "pair")
    status = workshops.get(kube, namespace, "pair").status
    sessions = status["sessions"]
    assert [s["url"] for s in sessions] == ["http://pair.example.com/", "http://p2.pair.example.com/"]
    assert status["readySessions"] == 2
    secrets = [kube.get(Secret, s["credentialsSecret"], namespace=namespace) for s in sessions]
    assert secrets[0].data["password"] != secrets[1].data["password"]
    claims = {
        kube.get(Deployment, f"{s['name']}-deployment", namespace=namespace)
        .spec.template.spec.volumes[0]
        .persistentVolumeClaim.claimName
        for s in sessions
    }
    assert claims == {"pair-pvc", "pair-p2-pvc"}
    ingress = kube.get(Ingress, "pair-ingress", namespace=namespace)
    assert sorted(r.host for r in ingress.spec.rules) == ["p2.pair.example.com", "pair.example.com"]


def test_deleting_the_workshop_removes_every_child(kube: lightkube.Client, namespace: str) -> None:
    workshops.create(kube, workshops.manifest(namespace, "bye", participants=2, ingress={"host": "bye.test"}))
    _ready(kube, namespace, "bye")
    kube.delete(workshops.Workshop, "bye", namespace=namespace)
    wait_for("every child gone", lambda: not any(_children(kube, namespace, "bye").values()), 60)


def test_a_name_taken_by_another_workshop_fails_and_leaves_it_alone(kube: lightkube.Client, namespace: str) -> None:
    workshops.create(kube, workshops.manifest(namespace, "first"))
    _ready(kube, namespace, "first")
    intruder = workshops.manifest(namespace, "second")
    intruder["spec"]["name"] = "first"
    intruder["spec"]["image"] = "other/image:1"
    workshops.create(kube, intruder)
    wait_for("the newcomer Failed", lambda: workshops.phase(kube, namespace, "second") == "Failed", 30)
    message = workshops.get(kube, namespace, "second").status["message"]
    assert "belongs to Workshop 'first'" in message, message
    deployment = kube.get(Deployment, "first-deployment", namespace=namespace)
    assert deployment.spec.template.spec.containers[0].image == "rocker/rstudio:latest"
    assert workshops.phase(kube, namespace, "first") == "Ready"


def test_expiry_survives_an_operator_restart(kube: lightkube.Client, namespace: str, operator: OperatorProcess) -> None:
    workshops.create(kube, workshops.manifest(namespace, "outlive", duration="10s"))
    _ready(kube, namespace, "outlive")
    expires_at = datetime.datetime.fromisoformat(
        workshops.get(kube, namespace, "outlive").status["expiresAt"].replace("Z", "+00:00")
    ).timestamp()
    operator.kill()
    operator.start()  # the deadline is known only from the object itself now
    assert time.time() < expires_at, "the restart took longer than the workshop's life; the test proves nothing"

    deleting = deletion_seen(lambda: workshops.get(kube, namespace, "outlive"))
    observed = wait_for("deleted at expiry after a restart", deleting, 30, interval=0.05)
    assert -0.05 <= observed - expires_at < 1.0, f"deleted {observed - expires_at:+.3f}s from expiresAt"
