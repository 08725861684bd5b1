"""Operator settings read from `ROADIE_<GROUP>_<FIELD>` environment variables.

One image serves every cluster, configured only through its environment, so a variable that is
misnamed, read as the wrong type, or leaks into another field silently runs the operator with
the wrong port, namespaces or deadlines. These tests load settings from explicit mappings (never
the process environment) and check each conversion and that everything else keeps its default.
"""

from __future__ import annotations

import dataclasses

import pytest

from roadie import settings


def test_no_variables_give_the_defaults() -> None:
    assert settings.load(env={}) == settings.Settings()
    loaded = settings.load(env={})
    assert loaded.operator.controllers == settings.ALL_CONTROLLERS
    assert "workshop" in loaded.operator.controllers
    assert loaded.operator.namespaces == ()
    assert loaded.operator.metrics_port == 8080
    assert loaded.workshop.provisioning_deadline == "10m"
    assert loaded.workshop.container_port == 8787
    assert loaded.workshop.url_scheme == "http"


def test_integer_fields_are_converted() -> None:
    loaded = settings.load(env={"ROADIE_OPERATOR_METRICS_PORT": "9090", "ROADIE_WORKSHOP_CONTAINER_PORT": "8888"})
    assert loaded.operator.metrics_port == 9090
    assert loaded.workshop.container_port == 8888
    assert isinstance(loaded.operator.metrics_port, int)


def test_float_fields_are_converted() -> None:
    loaded = settings.load(env={"ROADIE_OPERATOR_RESYNC_SECONDS": "2.5"})
    assert loaded.operator.resync_seconds == 2.5
    assert isinstance(loaded.operator.resync_seconds, float)
    whole = settings.load(env={"ROADIE_OPERATOR_RESYNC_SECONDS": "30"})
    assert isinstance(whole.operator.resync_seconds, float)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("team-a,team-b", ("team-a", "team-b")),
        (" team-a , team-b ,", ("team-a", "team-b")),
        ("solo", ("solo",)),
        ("", ()),
        (" , ", ()),
    ],
)
def test_tuple_fields_are_split_on_commas(raw: str, expected: tuple[str, ...]) -> None:
    loaded = settings.load(env={"ROADIE_OPERATOR_NAMESPACES": raw})
    assert loaded.operator.namespaces == expected


def test_string_fields_are_taken_as_they_are() -> None:
    env = {
        "ROADIE_WORKSHOP_PROVISIONING_DEADLINE": "5m",
        "ROADIE_PREVIEW_BASE_DOMAIN": "preview.example.com",
        "ROADIE_OPERATOR_LOG_FORMAT": "json",
    }
    loaded = settings.load(env=env)
    assert loaded.workshop.provisioning_deadline == "5m"
    assert loaded.preview.base_domain == "preview.example.com"
    assert loaded.operator.log_format == "json"


def test_only_the_named_field_changes() -> None:
    loaded = settings.load(env={"ROADIE_WORKSHOP_EXPIRY_WARNING": "30m"})
    expected = settings.Settings()
    expected.workshop.expiry_warning = "30m"
    assert loaded == expected


def test_every_field_can_be_set_by_its_variable_name() -> None:
    defaults = settings.Settings()
    for group in dataclasses.fields(defaults):
        section = getattr(defaults, group.name)
        for field in dataclasses.fields(section):
            key = f"ROADIE_{group.name.upper()}_{field.name.upper()}"
            value = getattr(section, field.name)
            raw: str
            wanted: object
            if isinstance(value, tuple):
                raw, wanted = "x,y", ("x", "y")
            elif isinstance(value, bool):
                raw, wanted = str(not value).lower(), not value
            elif isinstance(value, int | float):
                raw, wanted = "7", type(value)(7)
            else:
                raw, wanted = "changed", "changed"
            loaded = getattr(settings.load(env={key: raw}), group.name)
            assert getattr(loaded, field.name) == wanted, key
            assert type(getattr(loaded, field.name)) is type(wanted), key


def test_unrelated_and_misspelled_variables_are_ignored() -> None:
    env = {
        "ROADIE_OPERATOR_METRICSPORT": "1",
        "roadie_operator_metrics_port": "2",
        "ROADIE_NOSUCHGROUP_HOST": "3",
        "OPERATOR_METRICS_PORT": "4",
        "PATH": "/bin",
    }
    assert settings.load(env=env) == settings.Settings()


def test_an_explicit_environment_is_the_only_one_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROADIE_OPERATOR_METRICS_PORT", "1234")
    assert settings.load(env={}).operator.metrics_port == 8080
    assert settings.load().operator.metrics_port == 1234


def test_a_malformed_number_is_refused() -> None:
    with pytest.raises(ValueError, match="eighty"):
        settings.load(env={"ROADIE_OPERATOR_METRICS_PORT": "eighty"})


def test_loads_are_independent() -> None:
    changed = settings.load(env={"ROADIE_OPERATOR_NAMESPACES": "a"})
    assert settings.load(env={}).operator.namespaces == ()
    assert changed.operator.namespaces == ("a",)


def test_security_defaults_start_the_seed_images_and_refuse_snippets() -> None:
    loaded = settings.load(env={})
    assert loaded.workshop.pod_security == "baseline"
    assert loaded.workshop.ingress_annotations_allowed == ("*",)
    assert loaded.workshop.ingress_annotations_refused == ("*-snippet", "*-snippets")
    assert loaded.preview.allowed_cluster_issuers == ()
    assert loaded.preview.allowed_base_domains == ()


def test_security_settings_are_read_from_their_variables() -> None:
    env = {
        "ROADIE_WORKSHOP_POD_SECURITY": "restricted",
        "ROADIE_WORKSHOP_INGRESS_ANNOTATIONS_ALLOWED": "cert-manager.io/*, kubernetes.io/ingress.class",
        "ROADIE_WORKSHOP_INGRESS_ANNOTATIONS_REFUSED": "*-snippet,*auth-url",
        "ROADIE_PREVIEW_ALLOWED_CLUSTER_ISSUERS": "letsencrypt-staging",
        "ROADIE_PREVIEW_ALLOWED_BASE_DOMAINS": "*.preview.example.com,preview.example.org",
    }
    loaded = settings.load(env=env)
    assert loaded.workshop.pod_security == "restricted"
    assert loaded.workshop.ingress_annotations_allowed == ("cert-manager.io/*", "kubernetes.io/ingress.class")
    assert loaded.workshop.ingress_annotations_refused == ("*-snippet", "*auth-url")
    assert loaded.preview.allowed_cluster_issuers == ("letsencrypt-staging",)
    assert loaded.preview.allowed_base_domains == ("*.preview.example.com", "preview.example.org")


def test_an_empty_variable_empties_an_allowlist() -> None:
    loaded = settings.load(env={"ROADIE_WORKSHOP_INGRESS_ANNOTATIONS_ALLOWED": ""})
    assert loaded.workshop.ingress_annotations_allowed == ()
