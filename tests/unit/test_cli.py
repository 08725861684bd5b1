"""The command line's contract without a cluster: `roadie crds` prints every CRD, and `roadie run`
refuses what it cannot honour with a message naming the option."""

from __future__ import annotations

import yaml
from typer.testing import CliRunner

from roadie import catalog
from roadie.cli.main import app

runner = CliRunner()


def test_crds_prints_one_definition_per_api() -> None:
    result = runner.invoke(app, ["crds"])
    assert result.exit_code == 0, result.output
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert sorted(d["metadata"]["name"] for d in docs) == sorted(api.crd_name for api in catalog.all_apis())
    assert all(d["kind"] == "CustomResourceDefinition" for d in docs)


def test_run_refuses_an_unknown_controller() -> None:
    result = runner.invoke(app, ["run", "--controllers", "workshop,nosuchkind"])
    assert result.exit_code != 0
    assert "nosuchkind" in result.output and "--controllers" in result.output


def test_run_refuses_an_unknown_log_format() -> None:
    result = runner.invoke(app, ["run", "--log-format", "xml"])
    assert result.exit_code != 0
    assert "text or json" in result.output
