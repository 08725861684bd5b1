"""What `make crds` writes for the chart is never edited by hand: the chart's generated files (CRDs,
RBAC, the namespace policy, the Cyberdesk template) match the models and src/roadie/rbac.py, and
deploy/operator/roadie.yaml matches a fresh `helm template` of the chart. Either drifts, this fails;
`make crds` writes both again. The chart is versioned with the package.
"""

from __future__ import annotations

import yaml

from roadie.cli import install as install_cli


def test_chart_generated_files_match_their_sources() -> None:
    expected = install_cli.chart_files()
    found = {
        str(path.relative_to(install_cli.CHART)): path.read_text()
        for path in (install_cli.CHART / "generated").rglob("*.yaml")
    }
    assert sorted(found) == sorted(expected), "deploy/helm/roadie/generated/ lists other files: run `make crds`"
    for name, text in expected.items():
        assert found[name] == text, f"deploy/helm/roadie/{name} is stale: run `make crds`"


def test_plain_manifests_are_the_chart_rendered_with_its_defaults() -> None:
    assert install_cli.MANIFESTS.read_text() == install_cli.manifests_text(), (
        "deploy/operator/roadie.yaml differs from `helm template` of the chart: run `make crds`"
    )


def test_the_plain_manifests_make_their_namespace_first() -> None:
    docs = install_cli.documents(install_cli.MANIFESTS.read_text())
    assert (docs[0]["kind"], docs[0]["metadata"]["name"]) == ("Namespace", "roadie-system")


def test_chart_is_versioned_with_the_package() -> None:
    chart = yaml.safe_load((install_cli.CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["version"] == chart["appVersion"] == install_cli.package_version()
