"""The Cyberdesk API as served: the original's CRD shape (short names, `timeoutMs` a required
integer of at least 1000, status subresource), Roadie's optional additions, the bootstrap kind
`StartCyberdeskOperator`, and the samples under deploy/samples/ parsed by the models."""

from __future__ import annotations

import pathlib

import pydantic
import pytest
import yaml

from roadie.core import crdgen
from roadie.cyberdesk import models

SAMPLES = pathlib.Path(__file__).resolve().parents[3] / "deploy" / "samples"


def test_the_cyberdesk_crd_has_the_originals_shape() -> None:
    crd = crdgen.crd(models.CYBERDESK_API)
    assert crd["metadata"]["name"] == "cyberdesks.cyberdesk.io"
    assert crd["spec"]["names"]["shortNames"] == ["cd", "cds"] and crd["spec"]["scope"] == "Namespaced"
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert spec["required"] == ["timeoutMs"]
    assert spec["properties"]["timeoutMs"]["type"] == "integer" and spec["properties"]["timeoutMs"]["minimum"] == 1000
    assert "description" in spec["properties"]["userDataSecretRef"]
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[:2] == ["Phase", "IP"] and "Expires" in columns


def test_timeout_below_a_second_is_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        models.CyberdeskSpec.model_validate({"timeoutMs": 999})
    with pytest.raises(pydantic.ValidationError):
        models.CyberdeskSpec.model_validate({})
    spec = models.CyberdeskSpec.model_validate({"timeoutMs": 1000})
    assert spec.userDataSecretRef is None and spec.template is None and spec.pool is True


def test_user_data_secret_ref_defaults_its_key() -> None:
    spec = models.CyberdeskSpec.model_validate({"timeoutMs": 5000, "userDataSecretRef": {"name": "desk-init"}})
    assert spec.userDataSecretRef is not None and spec.userDataSecretRef.key == "userdata"


def test_start_cyberdesk_operator_is_served_with_an_open_empty_spec() -> None:
    crd = crdgen.crd(models.START_API)
    assert crd["metadata"]["name"] == "startcyberdeskoperators.cyberdesk.io"
    assert crd["spec"]["names"]["shortNames"] == ["sco"]
    root = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "required" not in root
    assert root["properties"]["spec"]["x-kubernetes-preserve-unknown-fields"] is True
    assert models.APIS == [models.CYBERDESK_API, models.START_API]


@pytest.mark.parametrize(
    ("sample", "api"),
    [("cyberdesk-example.yaml", models.CYBERDESK_API), ("start-cyberdesk-operator.yaml", models.START_API)],
)
def test_samples_are_valid(sample: str, api: object) -> None:
    doc = yaml.safe_load((SAMPLES / sample).read_text())
    assert doc["apiVersion"] == "cyberdesk.io/v1alpha1" and doc["kind"] == api.kind  # type: ignore[attr-defined]
    api.spec.model_validate(doc.get("spec") or {})  # type: ignore[attr-defined]


def test_the_example_is_the_originals() -> None:
    doc = yaml.safe_load((SAMPLES / "cyberdesk-example.yaml").read_text())
    assert doc["spec"] == {"timeoutMs": 86400000}
    assert len(doc["metadata"]["name"]) == 36 and doc["metadata"]["name"].count("-") == 4
