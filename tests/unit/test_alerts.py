"""The alerting rules Roadie ships: promtool accepts them and their unit tests pass, every alert is
tested firing and quiet, carries what an on-call person needs (for, severity, summary,
description, a runbook section that exists), and selects only metrics Roadie registers.

promtool comes from `roadie.devcluster.tools` (built once into ~/.cache/roadie/tools; a cold build
takes about five minutes, hence the longer timeout on the tests that need it).
"""

from __future__ import annotations

import importlib.util
import pathlib
import re
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest
import yaml

from roadie.devcluster import tools

ROOT = pathlib.Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/helm/roadie/files/prometheus-rules.yaml"
TESTS = sorted((ROOT / "deploy/monitoring/tests").glob("*.yaml"))
DOCS = ROOT / "docs/monitoring.md"
RUNBOOK = "https://github.com/roadie/roadie/blob/main/docs/monitoring.md#"
JOB = 'job="roadie-metrics"'
BUILD_TIMEOUT = 1800


def _dashboard_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "roadie_monitoring_dashboard", ROOT / "deploy/monitoring/dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
    if spec.name not in sys.modules:
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def _cases() -> list[dict[str, Any]]:
    return [
        case for path in TESTS for test in yaml.safe_load(path.read_text())["tests"] for case in test["alert_rule_test"]
    ]


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.fixture(scope="module")
def promtool() -> pathlib.Path:
    return tools.resolve("promtool", report=lambda line: print(line, file=sys.stderr))


def _run(*args: str | pathlib.Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_promtool_checks_the_rule_file(promtool: pathlib.Path) -> None:
    done = _run(promtool, "check", "rules", RULES)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in done.stdout


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_promtool_rule_tests_pass(promtool: pathlib.Path) -> None:
    assert TESTS, "no promtool test files"
    done = _run(promtool, "test", "rules", *TESTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(TESTS)


@pytest.mark.timeout(BUILD_TIMEOUT)
def test_promtool_rule_tests_catch_a_wrong_expectation(promtool: pathlib.Path, tmp_path: pathlib.Path) -> None:
    """The cases compare exact annotations: one changed word fails them."""
    copy = tmp_path / "case.yaml"
    text = (ROOT / "deploy/monitoring/tests/operator.yaml").read_text()
    assert "summary: Roadie operator is down" in text
    copy.write_text(
        text.replace("summary: Roadie operator is down", "summary: Roadie operator is up").replace(
            "../../helm/roadie/files/prometheus-rules.yaml", str(RULES)
        )
    )
    done = _run(promtool, "test", "rules", copy)
    assert done.returncode != 0
    assert "Roadie operator is up" in done.stdout + done.stderr


def test_the_preview_seeds_alerts_are_there() -> None:
    exprs = {rule["alert"]: rule["expr"] for rule in _rules()}
    names = _dashboard_module().promql_metric_names
    assert "up" in names(exprs["RoadieOperatorDown"])
    assert names(exprs["PreviewEnvironmentFailures"]) == {"preview_environments_failed_total"}
    assert "> 3" in exprs["PreviewEnvironmentFailures"]
    assert "[5m]" in exprs["PreviewEnvironmentFailures"]
    assert names(exprs["PreviewEnvironmentCreationSlow"]) == {"preview_environment_creation_duration_seconds_bucket"}
    assert "histogram_quantile(0.95" in exprs["PreviewEnvironmentCreationSlow"]
    assert "> 30" in exprs["PreviewEnvironmentCreationSlow"]


def test_every_alert_is_tested_firing_and_quiet() -> None:
    cases = _cases()
    for rule in _rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        firing = [case for case in mine if case.get("exp_alerts")]
        quiet = [case for case in mine if not case.get("exp_alerts")]
        assert firing, f"{rule['alert']} is never tested firing"
        assert quiet, f"{rule['alert']} is never tested quiet"
        for case in firing:
            for alert in case["exp_alerts"]:
                assert alert["exp_labels"]["severity"] == rule["labels"]["severity"]
                assert set(alert["exp_annotations"]) == set(rule["annotations"]), rule["alert"]


def test_every_alert_says_what_is_wrong_and_where_to_read_more() -> None:
    anchors = {_slug(line.lstrip("#")) for line in DOCS.read_text().splitlines() if line.startswith("#")}
    rules = _rules()
    assert len({rule["alert"] for rule in rules}) == len(rules)
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name} has no `for`"
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert "$labels" in annotations["summary"] + annotations["description"], name
        url = annotations["runbook_url"]
        assert url.startswith(RUNBOOK), name
        assert url.removeprefix(RUNBOOK) == name.lower(), name
        assert name.lower() in anchors, f"docs/monitoring.md has no section {name}"


def test_alerts_select_only_roadies_job_and_metrics() -> None:
    dashboard = _dashboard_module()
    known = {series for metric in dashboard.metrics() for series in metric.series} | {"up"}
    used: set[str] = set()
    for rule in _rules():
        names = dashboard.promql_metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= known, f"{rule['alert']} selects {sorted(names - known)}, not in Roadie's registry"
        used |= names
        for selector in re.findall(r"\{[^}]*\}", rule["expr"]):
            assert JOB in selector, f"{rule['alert']}: {selector} does not select {JOB}"
    core = {
        "roadie_reconcile_total",
        "roadie_deadline_lateness_seconds_bucket",
        "roadie_workqueue_depth",
        "roadie_workqueue_wait_seconds_bucket",
        "roadie_informer_watch_failures_total",
    }
    assert core <= used
    if "roadie_leader" in known:
        assert "roadie_leader" in used, "the leader gauge exists: alert when no replica leads"


def test_the_metric_name_parser() -> None:
    names = _dashboard_module().promql_metric_names
    expr = (
        'histogram_quantile(0.95, sum by (job, le) (rate(a_bucket{job="x", le=~"1.0|+Inf"}[5m] offset 1m)))'
        ' / on (job) group_left sum without (pod) (b_total) > bool 1e3 or absent(c{d="e(f)"}) unless d'
    )
    assert names(expr) == {"a_bucket", "b_total", "c", "d"}
