"""kwok's stages agree with the executor and with what tests annotate.

The stages file and the executor are configured apart (a YAML file for kwok, a flag for the
executor); if a pod stage stopped excluding the executor's pods, kwok and the executor would both
write those pods' status and the engine's results would be overwritten at random. The annotations
the Observatory tests rely on are checked here too, by structure, since kwok's jq selectors cannot
be evaluated without kwok.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from roadie.devcluster import nodes, podexec

FAIL = "pod-container-running-failed.stage.kwok.x-k8s.io"
COMPLETE = "pod-complete.stage.kwok.x-k8s.io"


def stages() -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for doc in yaml.safe_load_all(nodes.STAGES_FILE.read_text()) if doc}


def expressions(stage: dict[str, Any]) -> dict[str, tuple[str, list[str]]]:
    return {e["key"]: (e["operator"], e.get("values", [])) for e in stage["spec"]["selector"]["matchExpressions"]}


POD_STAGES = ["pod-ready", "pod-complete", "pod-complete-never", "pod-delete", "pod-container-running-failed"]


def test_every_pod_stage_is_listed() -> None:
    assert sorted(name for name, s in stages().items() if s["spec"]["resourceRef"]["kind"] == "Pod") == sorted(
        POD_STAGES
    )


@pytest.mark.parametrize("name", POD_STAGES)
def test_every_pod_stage_leaves_the_executors_pods_alone(name: str) -> None:
    ((key, value),) = podexec.parse_selector(podexec.DEFAULT_SELECTOR).items()

    assert expressions(stages()[name])[f'.metadata.labels["{key}"]'] == ("NotIn", [value])


def test_standalone_never_pods_complete_after_the_delay_annotation() -> None:
    stage = stages()["pod-complete-never"]
    found = expressions(stage)

    assert found[".spec.restartPolicy"] == ("In", ["Never"])
    assert found["(.metadata.ownerReferences // [])[].kind"] == ("NotIn", ["Job"])
    assert found[f'.metadata.labels["{FAIL}"] // .metadata.annotations["{FAIL}"]'] == ("NotIn", ["true"])
    delay = stage["spec"]["delay"]
    assert delay["durationMilliseconds"] == 1000
    assert delay["durationFrom"]["expressionFrom"] == f'.metadata.annotations["{COMPLETE}/delay"]'


def test_failure_is_asked_for_by_label_or_annotation() -> None:
    found = expressions(stages()["pod-container-running-failed"])

    assert found[f'.metadata.labels["{FAIL}"] // .metadata.annotations["{FAIL}"]'] == ("In", ["true"])
    assert found[".status.phase"] == ("In", ["Running"])


@pytest.mark.parametrize("name", ["pod-complete", "pod-complete-never", "pod-container-running-failed"])
def test_a_delay_annotation_alone_is_exact(name: str) -> None:
    """kwok takes the jitter instead of the delay when the jitter is shorter: each jitter expression
    falls back to the delay annotation, so `delay: 5s` means five seconds, not the default jitter."""
    delay = stages()[name]["spec"]["delay"]
    own = delay["durationFrom"]["expressionFrom"]

    assert delay["jitterDurationFrom"]["expressionFrom"].endswith(f" // {own}")
