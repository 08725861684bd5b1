"""The Grafana dashboard Roadie ships: it is what `deploy/monitoring/dashboard.py` generates from
today's registry (and so is the metrics table in docs/monitoring.md), every metric Roadie
registers has a panel, every panel query selects metrics that exist and is valid PromQL, and the
JSON has the shape Grafana imports (unique ids, a datasource variable every panel uses, targets).
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import re
import subprocess
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import yaml

from roadie.devcluster import tools

ROOT = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/helm/roadie/files/grafana-dashboard.json"
DOCS = ROOT / "docs/monitoring.md"
#: series a panel may use beside Roadie's own: the scrape's and prometheus-client's process metrics
OUTSIDE = {"up", "process_cpu_seconds_total", "process_resident_memory_bytes"}


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "roadie_monitoring_dashboard", ROOT / "deploy/monitoring/dashboard.py"
    )
    assert spec is not None and spec.loader is not None
    module = sys.modules.get(spec.name) or importlib.util.module_from_spec(spec)
    if spec.name not in sys.modules:
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    return module


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _exprs() -> list[str]:
    return [target["expr"] for panel in _panels(_dashboard()["panels"]) for target in panel.get("targets", [])]


def test_the_committed_dashboard_is_generated_from_the_registry() -> None:
    generator = _generator()
    assert DASHBOARD.read_text() == generator.render(), "run .venv/bin/python deploy/monitoring/dashboard.py"


def test_the_docs_metrics_table_is_generated_from_the_registry() -> None:
    generator = _generator()
    docs = DOCS.read_text()
    table = generator.metrics_table()
    assert table in docs, "run .venv/bin/python deploy/monitoring/dashboard.py"
    assert table.count("\n| `") == len(generator.metrics())


def test_every_registered_metric_has_a_panel() -> None:
    used = {name for expr in _exprs() for name in _generator().promql_metric_names(expr)}
    found = _generator().metrics()
    assert len(found) >= 30
    missing = [metric.exposed for metric in found if not set(metric.series) & used]
    assert not missing, f"metrics without a panel: {missing}"


def test_every_kind_metric_sits_in_its_kinds_row() -> None:
    rows = {panel["title"]: panel for panel in _dashboard()["panels"] if panel["type"] == "row"}
    assert next(iter(rows)) == "Operator"
    for metric in _generator().metrics():
        if metric.area == "operator":
            continue
        (row,) = [r for r in rows.values() if any(metric.exposed == p["title"] for p in r["panels"])]
        exprs = " ".join(t["expr"] for p in row["panels"] for t in p["targets"])
        assert metric.series[0] in exprs


def test_panels_select_only_metrics_that_exist() -> None:
    known = {series for metric in _generator().metrics() for series in metric.series} | OUTSIDE
    for expr in _exprs():
        names = _generator().promql_metric_names(expr)
        assert names, expr
        assert names <= known, f"{expr} selects {sorted(names - known)}"


def test_the_dashboard_is_a_valid_grafana_dashboard() -> None:
    dashboard = _dashboard()
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"] == "roadie-operator"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "namespace", "kind"} <= set(variables)
    for variable in variables.values():
        if variable["type"] == "query":
            assert variable["datasource"]["uid"] == "${datasource}"
    panels = list(_panels(dashboard["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids are not unique"
    used_variables: set[str] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
            assert target["expr"].strip()
            used_variables |= set(re.findall(r"\$(\w+)", target["expr"]))
    assert used_variables - {"__rate_interval"} <= set(variables)
    assert {"job", "namespace", "kind"} <= used_variables


@pytest.mark.timeout(1800)
def test_panel_queries_are_valid_promql(tmp_path: pathlib.Path) -> None:
    """promtool parses each query, Grafana's variables replaced by what Grafana sends."""
    promtool = tools.resolve("promtool", report=lambda line: print(line, file=sys.stderr))
    rules = []
    for i, expr in enumerate(_exprs()):
        plain = expr.replace("$__rate_interval", "5m")
        rules.append({"record": f"dashboard_query_{i}", "expr": re.sub(r"\$\w+", ".*", plain)})
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(rules)} rules found" in done.stdout
