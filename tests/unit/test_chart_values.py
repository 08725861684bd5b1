"""The chart's values cover every operator setting (src/roadie/settings.py), with the settings' own
defaults, and what the chart renders is read back by the operator as those settings: a field added
to a settings dataclass fails here until values.yaml (and the chart) carry it.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import yaml
from tests.unit.test_chart import FULL_NAMESPACE, FULL_VALUES, env_of, objects, render

from roadie import settings
from roadie.cli import install as install_cli

VALUES = yaml.safe_load((install_cli.CHART / "values.yaml").read_text())
#: Operator settings the chart sets through top-level values (flags of `roadie run`, or more than a
#: value: a mounted Secret), not under `settings.operator`.
ELSEWHERE = {
    "controllers": "controllers",
    "namespaces": "watchNamespaces",
    "leader_elect": "leaderElection.enabled",
    "metrics_secure": "metrics.secure",
    "metrics_port": "metrics.port",
    "metrics_host": "metrics.port",
    "enable_http2": "metrics.enableHTTP2",
    "metrics_cert_dir": "metrics.certSecret",
    "health_port": "probes.port",
    "health_host": "probes.port",
}
#: Where the chart's default differs from the settings' on purpose (values.yaml says why).
CHART_DEFAULTS: dict[tuple[str, str], Any] = {
    ("operator", "log_format"): "json",
    ("workspace", "engine_image"): "",  # the operator's own image
}


def fields() -> list[tuple[str, dataclasses.Field[Any], Any]]:
    root = settings.Settings()
    return [
        (group.name, field, getattr(getattr(root, group.name), field.name))
        for group in dataclasses.fields(root)
        for field in dataclasses.fields(getattr(root, group.name))
    ]


def lookup(path: str) -> Any:
    found: Any = VALUES
    for key in path.split("."):
        found = found[key]
    return found


def test_values_cover_every_setting() -> None:
    missing = []
    for group, field, _ in fields():
        if group == "operator" and field.name in ELSEWHERE:
            lookup(ELSEWHERE[field.name])  # a KeyError names the value that went away
            assert field.name not in VALUES["settings"]["operator"], f"{field.name} is set twice"
        elif field.name not in VALUES["settings"].get(group, {}):
            missing.append(f"settings.{group}.{field.name}")
    assert not missing, f"values.yaml lacks {missing}: add each with its default and a comment"
    known = {(group, field.name) for group, field, _ in fields()}
    extra = [(g, f) for g, section in VALUES["settings"].items() for f in section if (g, f) not in known]
    assert not extra, f"values.yaml sets settings that do not exist: {extra}"


def test_values_default_to_the_settings_defaults() -> None:
    for group, field, default in fields():
        if group == "operator" and field.name in ELSEWHERE:
            continue
        value = VALUES["settings"][group][field.name]
        expected = CHART_DEFAULTS.get((group, field.name), list(default) if isinstance(default, tuple) else default)
        assert value == expected, (
            f"settings.{group}.{field.name}: {value!r} in values.yaml, {expected!r} in settings.py"
        )


def test_the_operator_reads_the_default_render_as_its_defaults(tmp_path: pathlib.Path) -> None:
    env = {k: v for k, v in env_of(objects(render(tmp_path))).items() if isinstance(v, str)}
    loaded = settings.load(env)
    expected = settings.Settings()
    expected.operator.log_format = "json"
    # what the flags set (--metrics-bind-address, --leader-elect, ...) is not in the environment
    for name in ELSEWHERE:
        if name not in ("controllers", "namespaces"):
            setattr(loaded.operator, name, getattr(expected.operator, name))
    assert loaded == expected
    assert env["ROADIE_WORKSPACE_ENGINE_IMAGE"] == f"ghcr.io/roadie/roadie:{install_cli.package_version()}"


def test_the_operator_reads_full_values_as_given(tmp_path: pathlib.Path) -> None:
    env = {
        k: v for k, v in env_of(objects(render(tmp_path, FULL_VALUES, FULL_NAMESPACE))).items() if isinstance(v, str)
    }
    loaded = settings.load(env)
    assert loaded.operator.controllers == ("workshop", "preview", "observatory")
    assert loaded.operator.namespaces == ("team-a", "team-b")
    assert (loaded.operator.log_level, loaded.operator.workers, loaded.operator.api_qps) == ("DEBUG", 4, 50.5)
    assert loaded.operator.resync_seconds == 300.0
    assert loaded.workshop.provisioning_deadline == "5m"
    assert loaded.workshop.ingress_annotations_allowed == ("cert-manager.io/*", "x/y")
    assert loaded.preview.allowed_base_domains == ("*.preview.example.com",)
    assert loaded.cyberdesk.pool_namespaces == ()
    assert loaded.cyberdesk.create_table is True
    assert loaded.workspace.engine_image == "registry.example.com/platform/roadie-engine:9.9.9"
