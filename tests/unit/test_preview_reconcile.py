"""The reconcile's readings of a Deployment, without a cluster: `Ready` only once a rollout is
complete (so a new tag is not reported as serving while the old pod still is), and the causes a
Deployment reports when no pod can be made (a quota refusal never shows on a pod); and which
errors are retried and which make the object `Failed`, each counted once under its step."""

from __future__ import annotations

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.apps_v1 import DeploymentCondition, DeploymentSpec, DeploymentStatus
from lightkube.models.core_v1 import PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta, Status
from lightkube.resources.apps_v1 import Deployment

from roadie.preview import metrics, reconcile


def _deployment(generation: int = 2, **status: object) -> Deployment:
    return Deployment(
        metadata=ObjectMeta(name="pr-1-app", generation=generation),
        spec=DeploymentSpec(replicas=1, selector=LabelSelector(matchLabels={"app": "x"}), template=PodTemplateSpec()),
        status=DeploymentStatus(**status) if status else None,  # type: ignore[arg-type]
    )


def test_available_once_the_rollout_is_complete() -> None:
    done = _deployment(observedGeneration=2, replicas=1, updatedReplicas=1, availableReplicas=1)
    assert reconcile.available(done)


def test_not_available_while_the_controller_has_not_seen_the_new_spec() -> None:
    stale = _deployment(observedGeneration=1, replicas=1, updatedReplicas=1, availableReplicas=1)
    assert not reconcile.available(stale)


def test_not_available_while_an_old_pod_still_serves() -> None:
    rolling = _deployment(observedGeneration=2, replicas=2, updatedReplicas=1, availableReplicas=1)
    assert not reconcile.available(rolling)


def test_not_available_without_status_or_deployment() -> None:
    assert not reconcile.available(_deployment())
    assert not reconcile.available(None)


def test_quota_refusal_and_stalled_progress_are_reported() -> None:
    conditions = [
        DeploymentCondition(type="Available", status="False", reason="MinimumReplicasUnavailable"),
        DeploymentCondition(type="ReplicaFailure", status="True", reason="FailedCreate", message="exceeded quota"),
        DeploymentCondition(type="Progressing", status="False", reason="ProgressDeadlineExceeded", message="slow"),
    ]
    problems = reconcile.deployment_problems(_deployment(conditions=conditions))
    assert len(problems) == 2
    assert "exceeded quota" in problems[0] and "ProgressDeadlineExceeded" in problems[1]
    assert reconcile.deployment_problems(_deployment()) == []


def _api_error(code: int) -> ApiError:
    return ApiError(status=Status(code=code, message=f"refused with {code}"))


async def _raise(error: Exception) -> None:
    raise error


async def test_a_refused_child_is_a_lasting_failure_named_by_its_step() -> None:
    before = metrics.FAILED.labels("ingress")._value.get()
    with pytest.raises(reconcile.RejectedError) as caught:
        await reconcile._step("ingress", _raise(_api_error(422)), rejectable=True)
    assert caught.value.step == "ingress" and "refused with 422" in str(caught.value)
    assert metrics.FAILED.labels("ingress")._value.get() == before, "counted once, when it goes Failed"


async def test_a_transient_error_is_counted_and_retried() -> None:
    before = metrics.FAILED.labels("service")._value.get()
    with pytest.raises(ApiError):
        await reconcile._step("service", _raise(_api_error(500)), rejectable=True)
    with pytest.raises(ApiError):
        await reconcile._step("service", _raise(_api_error(422)))
    assert metrics.FAILED.labels("service")._value.get() == before + 2
