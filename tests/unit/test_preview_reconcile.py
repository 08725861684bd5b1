"""The reconcile's judgements without a cluster: a rollout stuck past the Deployment's own
progress deadline fails the object, and which errors are retried and which make the object
`Failed`, each counted once under its step."""

from __future__ import annotations

import pytest
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import Status

from roadie.preview import metrics, reconcile, status


def _deployment(**conditions: str) -> dict[str, object]:
    conds = [{"type": "Progressing", "status": "False", "reason": reason} for reason in conditions.values()]
    return {"metadata": {"name": "pr-1-app", "generation": 1}, "status": {"conditions": conds}}


def test_a_rollout_past_the_deployments_progress_deadline_is_a_lasting_failure() -> None:
    assert reconcile._past_progress_deadline(_deployment(progressing="ProgressDeadlineExceeded"))
    assert not reconcile._past_progress_deadline(_deployment(progressing="ReplicaSetUpdated"))
    assert not reconcile._past_progress_deadline(None)


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


def test_terminating_keeps_where_it_was_and_when_it_expired() -> None:
    old = {
        "namespace": "preview-pr-1",
        "url": "https://pr-1.example/",
        "image": "app:1",
        "expiresAt": "2024-05-01T12:00:00Z",
    }
    seen = status.Observed(generation=1)
    reconcile._keep_where(seen, old)
    assert (seen.terminating, seen.namespace, seen.url, seen.image) == (
        True,
        "preview-pr-1",
        "https://pr-1.example/",
        "app:1",
    )
    assert seen.expires_at is not None and status.compute(old, seen, seen.expires_at)["expiresAt"] == old["expiresAt"]
