"""User input that reaches other systems: what a Workshop may put on its Ingress, and which
issuer and domain a PreviewEnvironment may ask cert-manager and DNS for.

Whoever may create these objects would otherwise configure the cluster's ingress controller
(snippet annotations, CVE-2021-25742) or have certificates issued by any ClusterIssuer for any
domain. The refusals are pure functions of the spec and the operator's settings; the reconcile
turns a refusal into `Failed` with the returned message, so the message must name what to change.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pydantic
import pytest

from roadie import settings
from roadie.core import crdgen
from roadie.preview import admission as preview_admission
from roadie.preview import models as preview_models
from roadie.workshop import admission as workshop_admission
from roadie.workshop import models as workshop_models


def workshop(annotations: dict[str, str]) -> workshop_models.WorkshopSpec:
    return workshop_models.WorkshopSpec.model_validate(
        {"name": "intro-r", "ingress": {"host": "r.example.com", "annotations": annotations}}
    )


def ws_settings(**fields: Any) -> settings.WorkshopSettings:
    return dataclasses.replace(settings.WorkshopSettings(), **fields)


@pytest.mark.parametrize(
    "annotations",
    [
        {},
        {"kubernetes.io/ingress.class": "traefik"},
        {"nginx.ingress.kubernetes.io/proxy-body-size": "0", "cert-manager.io/cluster-issuer": "letsencrypt"},
    ],
)
def test_ordinary_annotations_pass_by_default(annotations: dict[str, str]) -> None:
    assert workshop_admission.refused(workshop(annotations), settings.WorkshopSettings()) is None


@pytest.mark.parametrize(
    "key",
    [
        "nginx.ingress.kubernetes.io/location-snippet",
        "nginx.ingress.kubernetes.io/Server-Snippet",
        "example.com/custom-snippet",
        "nginx.org/stream-snippets",
    ],
)
def test_snippet_annotations_are_refused_by_default_and_named(key: str) -> None:
    message = workshop_admission.refused(workshop({key: "x", "team": "data"}), settings.WorkshopSettings())
    assert message is not None
    assert key in message and "team" not in message.split("(")[0]


@pytest.mark.parametrize("key", workshop_models.SNIPPET_ANNOTATIONS)
def test_the_known_snippet_keys_do_not_even_parse(key: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="CVE-2021-25742"):
        workshop({key: "more_set_headers 'x: y';"})


def test_the_crd_refuses_the_known_snippet_keys_with_a_cel_rule() -> None:
    schema = crdgen.crd(workshop_models.API)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    annotations = schema["properties"]["spec"]["properties"]["ingress"]["properties"]["annotations"]
    (rule,) = annotations["x-kubernetes-validations"]
    for key in workshop_models.SNIPPET_ANNOTATIONS:
        assert f"'{key}'" in rule["rule"]
    assert rule["rule"].endswith(".all(key, !(key in self))"), "iterate the fixed list: cost independent of the map"
    assert "CVE-2021-25742" in rule["message"]


def test_an_allowlist_admits_only_what_matches() -> None:
    cfg = ws_settings(ingress_annotations_allowed=("cert-manager.io/*", "kubernetes.io/ingress.class"))
    assert workshop_admission.refused(workshop({"cert-manager.io/cluster-issuer": "x"}), cfg) is None
    message = workshop_admission.refused(workshop({"nginx.ingress.kubernetes.io/rewrite-target": "/"}), cfg)
    assert message is not None and "nginx.ingress.kubernetes.io/rewrite-target" in message
    assert "cert-manager.io/*" in message, "the message says what is allowed"


def test_refused_patterns_win_over_allowed_ones() -> None:
    cfg = ws_settings(
        ingress_annotations_allowed=("nginx.ingress.kubernetes.io/*",),
        ingress_annotations_refused=("*-snippet", "nginx.ingress.kubernetes.io/auth-url"),
    )
    assert workshop_admission.refused(workshop({"nginx.ingress.kubernetes.io/auth-url": "http://x"}), cfg)
    assert workshop_admission.refused(workshop({"nginx.ingress.kubernetes.io/ssl-redirect": "true"}), cfg) is None


def test_an_empty_allowlist_refuses_every_annotation() -> None:
    cfg = ws_settings(ingress_annotations_allowed=())
    assert workshop_admission.refused(workshop({}), cfg) is None
    assert workshop_admission.refused(workshop({"a": "b"}), cfg) is not None


def test_snippet_keys_stay_refused_even_if_the_settings_allow_everything() -> None:
    cfg = ws_settings(ingress_annotations_allowed=("*",), ingress_annotations_refused=())
    spec = workshop({}).model_copy(deep=True)
    spec.ingress.annotations["nginx.ingress.kubernetes.io/server-snippet"] = "x"  # as if stored before the CRD rule
    assert workshop_admission.refused(spec, cfg) is not None


def test_the_refused_keys_are_listed_sorted() -> None:
    found = workshop_admission.refused_annotations({"z-snippet": "", "a": "", "b-snippet": ""}, ws_settings())
    assert found == ["b-snippet", "z-snippet"]


def preview(**fields: Any) -> preview_models.PreviewEnvironmentSpec:
    return preview_models.PreviewEnvironmentSpec.model_validate(
        {"pr_number": 7, "branch_name": "b", "image": "app", "image_tag": "v1", **fields}
    )


def pe_settings(**fields: Any) -> settings.PreviewSettings:
    return dataclasses.replace(settings.PreviewSettings(), **fields)


def test_a_preview_without_overrides_and_one_naming_the_operators_own_pass() -> None:
    cfg = settings.PreviewSettings()
    assert preview_admission.refused(preview(), cfg) is None
    own = preview(cluster_issuer=cfg.cluster_issuer, base_domain=cfg.base_domain)
    assert preview_admission.refused(own, cfg) is None


def test_another_issuer_is_refused_by_default_and_named() -> None:
    message = preview_admission.refused(preview(cluster_issuer="internal-ca"), settings.PreviewSettings())
    assert message is not None
    assert "cluster_issuer 'internal-ca'" in message and "letsencrypt-prod" in message


def test_another_base_domain_is_refused_by_default_and_named() -> None:
    message = preview_admission.refused(preview(base_domain="bank.example.com"), settings.PreviewSettings())
    assert message is not None
    assert "base_domain 'bank.example.com'" in message and "preview.orimatest.com" in message


def test_both_refusals_are_reported_at_once() -> None:
    message = preview_admission.refused(preview(cluster_issuer="x", base_domain="y.com"), settings.PreviewSettings())
    assert message is not None and "cluster_issuer" in message and "base_domain" in message


def test_listed_issuers_and_domain_patterns_are_allowed() -> None:
    cfg = pe_settings(allowed_cluster_issuers=("staging",), allowed_base_domains=("*.preview.example.com",))
    assert preview_admission.refused(preview(cluster_issuer="staging"), cfg) is None
    assert preview_admission.refused(preview(base_domain="team-a.preview.example.com"), cfg) is None
    assert preview_admission.refused(preview(base_domain="preview.example.com"), cfg) is not None
    assert preview_admission.refused(preview(base_domain="evil-preview.example.com"), cfg) is not None
    assert preview_admission.refused(preview(cluster_issuer="stagingx"), cfg) is not None


def test_the_operators_base_domain_follows_its_setting() -> None:
    cfg = pe_settings(base_domain="pr.example.org")
    assert preview_admission.refused(preview(base_domain="pr.example.org"), cfg) is None
    assert preview_admission.refused(preview(base_domain="preview.orimatest.com"), cfg) is not None
