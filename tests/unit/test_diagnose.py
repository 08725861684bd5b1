"""Readings of children every kind shares, without a cluster: `available` only once a rollout is
complete (so a new tag is not reported as serving while the old pod still is), the causes a
Deployment reports when no pod can be made (a quota refusal never shows on a pod), and a pod's
first problem in words."""

from __future__ import annotations

from typing import Any

from roadie.core import diagnose


def _deployment(generation: int = 2, wanted: int | None = 1, **status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "pr-1-app", "generation": generation},
        "spec": {"replicas": wanted},
        "status": status,
    }


def test_available_once_the_rollout_is_complete() -> None:
    assert diagnose.deployment_available(
        _deployment(observedGeneration=2, replicas=1, updatedReplicas=1, availableReplicas=1)
    )


def test_not_available_while_the_controller_has_not_seen_the_new_spec() -> None:
    stale = _deployment(observedGeneration=1, replicas=1, updatedReplicas=1, availableReplicas=1)
    assert not diagnose.deployment_available(stale)


def test_not_available_while_an_old_pod_still_serves() -> None:
    rolling = _deployment(observedGeneration=2, replicas=2, updatedReplicas=1, availableReplicas=1)
    assert not diagnose.deployment_available(rolling)
    assert diagnose.deployment_available(rolling, all_replicas=False), "one updated available replica serves"


def test_not_available_without_status_or_deployment() -> None:
    assert not diagnose.deployment_available(_deployment())
    assert not diagnose.deployment_available(None)


def test_quota_refusal_and_stalled_progress_are_reported() -> None:
    conditions = [
        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
        {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": "exceeded quota"},
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": "slow"},
    ]
    problems = diagnose.deployment_problems(_deployment(conditions=conditions))
    assert len(problems) == 2
    assert "exceeded quota" in problems[0] and "ProgressDeadlineExceeded" in problems[1]
    assert diagnose.deployment_problems(_deployment()) == []


def test_a_pod_that_cannot_pull_its_image_says_so() -> None:
    pod = {
        "metadata": {"name": "web-1"},
        "status": {
            "containerStatuses": [
                {"name": "app", "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no such tag"}}}
            ]
        },
    }
    assert diagnose.pod_problem(pod) == "container 'app' of pod 'web-1': ImagePullBackOff: no such tag"
    assert diagnose.pod_problem({"metadata": {"name": "fresh"}}) is None


def test_an_unbound_claim_names_what_it_waits_for() -> None:
    claim = {"metadata": {"name": "data"}, "spec": {}, "status": {"phase": "Pending"}}
    assert "waiting for a volume" in (diagnose.claim_problem(claim) or "")
    bound = {"metadata": {"name": "data"}, "spec": {}, "status": {"phase": "Bound"}}
    assert diagnose.claim_problem(bound) is None
