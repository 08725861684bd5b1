"""The Workshop's pure builders: a spec in, the manifests of its children out.

Existing workshops, dashboards and scripts depend on the seed's names (`<name>-deployment`, ...)
and labels (`app`, `component`, `workshop`); garbage collection depends on the owner reference;
the API server's Pod Security admission refuses a pod whose security context does not meet the
level it is built for; and a participant reaches RStudio only through the right service, host and
password. All of that is decided here, so it is checked here, without a cluster.
"""

from __future__ import annotations

import re
from typing import Any

import pydantic
import pytest

from roadie.core import labels
from roadie.workshop import children, models

NAMESPACE = "class-room"
UID = "3f2a9c1e-0000-4000-8000-000000000001"
PORT = 8787
INGRESS_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def body(name: str = "intro-r") -> dict[str, Any]:
    return {
        "apiVersion": "orchestra.io/v1",
        "kind": "Workshop",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": UID},
    }


def spec(**fields: Any) -> models.WorkshopSpec:
    return models.WorkshopSpec.model_validate({"name": "intro-r", **fields})


def first(workshop: models.WorkshopSpec) -> children.Session:
    return children.sessions(workshop)[0]


def all_children(parent: dict[str, Any], workshop: models.WorkshopSpec) -> list[dict[str, Any]]:
    made: list[dict[str, Any]] = []
    for session in children.sessions(workshop):
        made += [
            children.credentials(parent, workshop, session, "rstudio", "secret-password"),
            children.claim(parent, workshop, session),
            children.deployment(parent, workshop, session, PORT),
            children.service(parent, workshop, session, PORT),
        ]
    ingress = children.ingress(parent, workshop, children.sessions(workshop))
    if ingress is not None:
        made.append(ingress)
    return made


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (found,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = found
    return result


def test_first_session_uses_the_seed_names() -> None:
    workshop = spec(ingress={"host": "r.example.com"})
    session = first(workshop)
    parent = body()
    assert children.claim(parent, workshop, session)["metadata"]["name"] == "intro-r-pvc"
    assert children.deployment(parent, workshop, session, PORT)["metadata"]["name"] == "intro-r-deployment"
    assert children.service(parent, workshop, session, PORT)["metadata"]["name"] == "intro-r-service"
    ingress = children.ingress(parent, workshop, [session])
    assert ingress is not None
    assert ingress["metadata"]["name"] == "intro-r-ingress"
    assert children.credentials(parent, workshop, session, "u", "p")["metadata"]["name"] == "intro-r-credentials"


def test_children_are_named_after_the_spec_name() -> None:
    workshop = spec(name="other-name")
    deployment = children.deployment(body("intro-r"), workshop, first(workshop), PORT)
    assert deployment["metadata"]["name"] == "other-name-deployment"


def test_every_child_is_in_the_parents_namespace_with_the_seed_labels() -> None:
    workshop = spec(participants=2, ingress={"host": "r.example.com"})
    made = all_children(body(), workshop)
    assert {m["kind"] for m in made} == {"Secret", "PersistentVolumeClaim", "Deployment", "Service", "Ingress"}
    for manifest in made:
        meta = manifest["metadata"]
        assert meta["namespace"] == NAMESPACE, manifest["kind"]
        assert meta["labels"]["app"] == "intro-r", manifest["kind"]
        assert meta["labels"]["workshop"] == "intro-r", manifest["kind"]
        assert meta["labels"]["component"], manifest["kind"]


def test_components_say_what_each_child_is() -> None:
    workshop = spec()
    session = first(workshop)
    parent = body()
    assert children.claim(parent, workshop, session)["metadata"]["labels"]["component"] == "storage"
    assert children.deployment(parent, workshop, session, PORT)["metadata"]["labels"]["component"] == "rstudio"
    assert children.service(parent, workshop, session, PORT)["metadata"]["labels"]["component"] == "rstudio"
    secret = children.credentials(parent, workshop, session, "u", "p")
    assert secret["metadata"]["labels"]["component"] == "credentials"


def test_every_child_carries_the_standard_labels_and_parent_pointer() -> None:
    workshop = spec(participants=2, ingress={"host": "r.example.com"})
    for manifest in all_children(body(), workshop):
        meta = manifest["metadata"]
        assert meta["labels"][labels.NAME] == "workshop"
        assert meta["labels"][labels.INSTANCE] == "intro-r"
        assert meta["labels"][labels.PART_OF] == "roadie"
        assert meta["labels"][labels.MANAGED_BY] == "roadie"
        assert meta["labels"][labels.COMPONENT] == meta["labels"]["component"]
        assert meta["annotations"][labels.PARENT] == f"Workshop/{NAMESPACE}/intro-r"


def test_every_child_is_owned_by_the_workshop_as_controller() -> None:
    workshop = spec(participants=2, ingress={"host": "r.example.com"})
    for manifest in all_children(body(), workshop):
        assert manifest["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "orchestra.io/v1",
                "kind": "Workshop",
                "name": "intro-r",
                "uid": UID,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ], manifest["kind"]


def test_pod_template_has_the_seed_labels_and_matches_the_selector() -> None:
    workshop = spec(participants=2)
    for session in children.sessions(workshop):
        deployment = children.deployment(body(), workshop, session, PORT)
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["app"] == "intro-r"
        assert pod_labels["component"] == "rstudio"
        assert pod_labels["workshop"] == "intro-r"
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()


def test_each_sessions_service_selects_only_its_own_pods() -> None:
    workshop = spec(participants=3)
    parent = body()
    selectors = []
    for session in children.sessions(workshop):
        service = children.service(parent, workshop, session, PORT)
        pods = children.deployment(parent, workshop, session, PORT)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pods.items()
        selectors.append(tuple(sorted(service["spec"]["selector"].items())))
    assert len(set(selectors)) == 3


def test_service_maps_port_80_to_rstudio() -> None:
    workshop = spec()
    service = children.service(body(), workshop, first(workshop), PORT)
    assert service["spec"]["type"] == "ClusterIP"
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert port["targetPort"] == 8787


def test_container_runs_rstudio_on_its_port_with_the_claim_mounted() -> None:
    workshop = spec(image="rocker/rstudio:4.4.1")
    session = first(workshop)
    deployment = children.deployment(body(), workshop, session, PORT)
    rstudio = container(deployment)
    assert rstudio["name"] == "rstudio"
    assert rstudio["image"] == "rocker/rstudio:4.4.1"
    assert [p["containerPort"] for p in rstudio["ports"]] == [8787]
    (mount,) = rstudio["volumeMounts"]
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes[mount["name"]]["persistentVolumeClaim"]["claimName"] == "intro-r-pvc"
    assert mount["mountPath"] == "/home/rstudio"
    assert deployment["spec"]["replicas"] == 1


def test_container_resources_come_from_the_spec() -> None:
    workshop = spec(resources={"cpu": 2, "memory": "4Gi", "cpuRequest": "750m", "memoryRequest": "3Gi"})
    rstudio = container(children.deployment(body(), workshop, first(workshop), PORT))
    assert rstudio["resources"] == {
        "limits": {"cpu": "2", "memory": "4Gi"},
        "requests": {"cpu": "750m", "memory": "3Gi"},
    }


def test_container_resources_default_to_the_seeds() -> None:
    workshop = spec()
    rstudio = container(children.deployment(body(), workshop, first(workshop), PORT))
    assert rstudio["resources"] == {
        "limits": {"cpu": "1", "memory": "2Gi"},
        "requests": {"cpu": "500m", "memory": "1Gi"},
    }


def test_by_default_the_pod_runs_the_images_root_init_with_only_the_capabilities_it_needs() -> None:
    workshop = spec()
    deployment = children.deployment(body(), workshop, first(workshop), PORT)
    pod = deployment["spec"]["template"]["spec"]
    rstudio = container(deployment)["securityContext"]
    assert "runAsNonRoot" not in pod["securityContext"] and "runAsUser" not in pod["securityContext"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["fsGroup"] == 1000, "the rstudio user must be able to write its home"
    assert rstudio["allowPrivilegeEscalation"] is False
    assert rstudio["capabilities"]["drop"] == ["ALL"]
    assert sorted(rstudio["capabilities"]["add"]) == ["CHOWN", "DAC_OVERRIDE", "FOWNER", "KILL", "SETGID", "SETUID"]
    assert rstudio.get("privileged") is not True
    assert pod["automountServiceAccountToken"] is False


def test_the_restricted_level_runs_as_uid_1000_with_no_capability() -> None:
    workshop = spec()
    deployment = children.deployment(body(), workshop, first(workshop), PORT, pod_security=children.RESTRICTED)
    pod = deployment["spec"]["template"]["spec"]
    rstudio = container(deployment)["securityContext"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    assert rstudio["allowPrivilegeEscalation"] is False
    assert rstudio["capabilities"] == {"drop": ["ALL"]}
    assert rstudio["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False


def test_an_unknown_pod_security_level_is_refused_with_the_setting_named() -> None:
    workshop = spec()
    with pytest.raises(ValueError, match="ROADIE_WORKSHOP_POD_SECURITY"):
        children.deployment(body(), workshop, first(workshop), PORT, pod_security="privileged")


def test_password_comes_from_the_sessions_secret_and_auth_stays_on() -> None:
    workshop = spec(participants=2)
    for session in children.sessions(workshop):
        rstudio = container(children.deployment(body(), workshop, session, PORT))
        env = {e["name"]: e for e in rstudio["env"]}
        assert env["PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": session.secret, "key": "password"}
        assert "value" not in env["PASSWORD"]
        assert env["USER"]["valueFrom"]["secretKeyRef"] == {"name": session.secret, "key": "username"}
        assert env.get("DISABLE_AUTH", {}).get("value", "false").lower() != "true"


def test_credentials_secret_holds_username_and_password() -> None:
    workshop = spec()
    secret = children.credentials(body(), workshop, first(workshop), "rstudio", "s3cret")
    assert secret["type"] == "kubernetes.io/basic-auth"
    assert secret["stringData"] == {"username": "rstudio", "password": "s3cret"}


def test_claim_requests_the_spec_size() -> None:
    workshop = spec(storage={"size": "25Gi"})
    claim = children.claim(body(), workshop, first(workshop))
    assert claim["spec"]["resources"]["requests"]["storage"] == "25Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]


@pytest.mark.parametrize("storage", [{}, {"storageClass": None}, {"storageClass": ""}])
def test_claim_leaves_the_storage_class_to_the_cluster_when_unset(storage: dict[str, Any]) -> None:
    workshop = spec(storage=storage)
    assert "storageClassName" not in children.claim(body(), workshop, first(workshop))["spec"]


def test_claim_uses_the_storage_class_when_set() -> None:
    workshop = spec(storage={"storageClass": "fast-ssd"})
    assert children.claim(body(), workshop, first(workshop))["spec"]["storageClassName"] == "fast-ssd"


def test_no_ingress_without_a_host() -> None:
    workshop = spec(participants=2)
    assert children.ingress(body(), workshop, children.sessions(workshop)) is None


def test_ingress_routes_the_host_to_the_service_and_keeps_the_annotations() -> None:
    annotations = {"nginx.ingress.kubernetes.io/proxy-body-size": "0", "team": "data"}
    workshop = spec(ingress={"host": "r.example.com", "annotations": annotations, "className": "nginx"})
    ingress = children.ingress(body(), workshop, children.sessions(workshop))
    assert ingress is not None
    assert ingress["metadata"]["annotations"].items() >= annotations.items()
    assert ingress["metadata"]["annotations"][labels.PARENT] == f"Workshop/{NAMESPACE}/intro-r"
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "r.example.com"
    (path,) = rule["http"]["paths"]
    assert path["backend"]["service"] == {"name": "intro-r-service", "port": {"number": 80}}
    assert "tls" not in ingress["spec"]


def test_ingress_class_is_left_out_when_unset() -> None:
    workshop = spec(ingress={"host": "r.example.com"})
    ingress = children.ingress(body(), workshop, children.sessions(workshop))
    assert ingress is not None
    assert "ingressClassName" not in ingress["spec"]


def test_three_participants_get_three_distinct_sessions() -> None:
    workshop = spec(participants=3, ingress={"host": "r.example.com"})
    sessions = children.sessions(workshop)
    assert [s.index for s in sessions] == [1, 2, 3]
    assert sessions[0].deployment == "intro-r-deployment"
    assert sessions[0].pvc == "intro-r-pvc"
    assert sessions[0].service == "intro-r-service"
    for attribute in ("base", "pvc", "deployment", "service", "secret"):
        assert len({getattr(s, attribute) for s in sessions}) == 3, attribute
    hosts = [children.session_host(workshop, s) for s in sessions]
    assert hosts[0] == "r.example.com"
    assert len(set(hosts)) == 3
    assert all(h.endswith(".r.example.com") for h in hosts[1:])

    ingress = children.ingress(body(), workshop, sessions)
    assert ingress is not None
    routes = {r["host"]: r["http"]["paths"][0]["backend"]["service"]["name"] for r in ingress["spec"]["rules"]}
    assert routes == {h: s.service for h, s in zip(hosts, sessions, strict=True)}


def test_every_childs_name_is_a_valid_dns_label_for_the_largest_workshop() -> None:
    workshop = spec(name="w" * 40, participants=100, ingress={"host": "r.example.com"})
    for manifest in all_children(body("w" * 40), workshop):
        name = manifest["metadata"]["name"]
        assert len(name) <= 63
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name


def test_session_urls_without_a_host_use_the_cluster_dns_name() -> None:
    workshop = spec(participants=2)
    urls = [children.session_url(workshop, s, NAMESPACE, "https") for s in children.sessions(workshop)]
    assert urls == [
        f"http://intro-r-service.{NAMESPACE}.svc.cluster.local/",
        f"http://intro-r-p2-service.{NAMESPACE}.svc.cluster.local/",
    ]


def test_session_urls_with_a_host_use_the_configured_scheme() -> None:
    workshop = spec(participants=2, ingress={"host": "r.example.com"})
    urls = [children.session_url(workshop, s, NAMESPACE, "http") for s in children.sessions(workshop)]
    assert urls == ["http://r.example.com/", "http://p2.r.example.com/"]


def test_tls_secret_serves_every_host_and_makes_urls_https() -> None:
    workshop = spec(participants=3, ingress={"host": "r.example.com", "tlsSecretName": "r-tls"})
    sessions = children.sessions(workshop)
    ingress = children.ingress(body(), workshop, sessions)
    assert ingress is not None
    (tls,) = ingress["spec"]["tls"]
    assert tls["secretName"] == "r-tls"
    assert tls["hosts"] == [r["host"] for r in ingress["spec"]["rules"]]
    urls = [children.session_url(workshop, s, NAMESPACE, "http") for s in sessions]
    assert urls == ["https://r.example.com/", "https://p2.r.example.com/", "https://p3.r.example.com/"]


def test_a_wildcard_host_is_refused_since_a_workshop_reports_its_url() -> None:
    with pytest.raises(pydantic.ValidationError, match=r"ingress\.host"):
        spec(participants=2, ingress={"host": "*.example.com"})


def test_builders_are_pure() -> None:
    workshop = spec(participants=2, ingress={"host": "r.example.com", "annotations": {"a": "b"}})
    parent = body()
    before = (workshop.model_dump(), repr(parent))
    assert all_children(parent, workshop) == all_children(parent, workshop)
    assert (workshop.model_dump(), repr(parent)) == before
