"""PreviewEnvironment reconcile: ordered steps over one object, then one status write.

Level-based, so one function serves creation, spec changes (a new `image_tag` is a new apply,
which rolls the Deployment), hand-deleted children (put back on their DELETED event), restarts
(what exists is read from the cache and left alone) and deadlines. The TTL deletes the object at
creation plus `ttl_seconds` exactly (the core scheduler fires then); deletion, by a user or the
TTL, waits on Roadie's finalizer until the namespace made for this object is gone. A rollout
that does not finish fails when the Deployment's own progress deadline passes.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable
from typing import Any, TypeVar

import pydantic
from lightkube.core.exceptions import ApiError

from roadie import settings as settings_mod
from roadie.core import cache, diagnose, events, models, reconciler, sources
from roadie.core import children as core_children
from roadie.core import status as status_writer
from roadie.core.controller import WAIT, Controller
from roadie.preview import admission, children, metrics, ownership, status
from roadie.preview import models as pe_models

T = TypeVar("T")
WAITING = ("Pending", "Creating", "Updating")
PR_INDEX = "pr_number"
ROLLOUT_DEADLINE = "RolloutDeadlineExceeded"


class RejectedError(Exception):
    """The API server refused a child as built from this spec: no retry will change that."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


async def _step(name: str, action: Awaitable[T], *, rejectable: bool = False) -> T:
    """Run one step; count a failure under its name (the seed's `failed_total{step}`).

    With `rejectable`, the API server refusing what the spec asks for is a lasting failure
    (RejectedError, counted once when the object goes Failed), not one to retry.
    """
    try:
        return await action
    except ApiError as error:
        if rejectable and error.status.code in core_children.REJECTED:
            raise RejectedError(name, f"the API server refused the {name}: {error.status.message}") from error
        metrics.FAILED.labels(name).inc()
        raise
    except Exception:
        metrics.FAILED.labels(name).inc()
        raise


def _key(body: dict[str, Any]) -> metrics.Key:
    return (body["metadata"]["namespace"], body["metadata"]["name"])


def _pr_number(body: dict[str, Any]) -> int | None:
    value = (body.get("spec") or {}).get("pr_number")
    return value if isinstance(value, int) else None


async def reconcile(body: dict[str, Any]) -> float | None:
    meta = body["metadata"]
    old = body.get("status") or {}
    now = datetime.datetime.now(datetime.UTC)
    seen = status.Observed(generation=meta.get("generation"))
    metrics.reconciled(_key(body), _pr_number(body))

    if meta.get("deletionTimestamp"):
        return await _tear_down(body, old, seen, now)
    await _step("namespace", ownership.add_finalizer(body))

    try:
        spec = pe_models.PreviewEnvironmentSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        seen.failure = (status.INVALID_SPEC, f"fix the spec: {error}")
        return await _finish(body, old, seen, now, failed_step="namespace")

    created_at = models.parse_timestamp(meta.get("creationTimestamp"))
    assert created_at is not None
    if spec.ttl_seconds is not None:
        seen.expires_at = created_at + datetime.timedelta(seconds=spec.ttl_seconds)
        if now >= seen.expires_at:
            await _step("expiry", _expire(body, old, seen, now))
            return None
    reconciler.schedule(controller, body, now, {"expiry": seen.expires_at})

    cfg = settings_mod.current().preview
    refusal = admission.refused(spec, cfg)
    if refusal:
        seen.failure = (admission.REASON, refusal)
        return await _finish(body, old, seen, now, failed_step="admission")
    eff = children.effective(spec, cfg)
    wanted = children.names(spec, eff).namespace
    if old.get("namespace") != wanted:  # new, renumbered, or not provisioned: look for what else it holds
        released, _ = await _step("cleanup", ownership.release(body, keep=wanted))
        for name in released:
            await events.emit(body, events.NORMAL, "NamespaceReleased", f"deleted {name}: pr_number changed")

    try:
        manifest = children.namespace(body, spec, eff)
        claim = await _step("namespace", ownership.claim(manifest, meta["uid"]), rejectable=True)
        if claim.failure or claim.waiting:
            seen.failure, seen.waiting = claim.failure, claim.waiting
            return await _finish(body, old, seen, now, failed_step="namespace")
        seen.namespace, seen.url, seen.image = wanted, children.url(spec, eff), children.image(spec)
        await _provision(body, spec, eff, seen)
    except RejectedError as error:
        seen.failure = (status.CHILD_REJECTED, str(error))
        return await _finish(body, old, seen, now, failed_step=error.step)
    return await _finish(body, old, seen, now)


async def _provision(
    body: dict[str, Any], spec: pe_models.PreviewEnvironmentSpec, eff: children.Effective, seen: status.Observed
) -> None:
    applied: dict[str, Any] = {}
    for round_ in children.rounds(children.inside(body, spec, eff)):
        written = await core_children.together(
            *(_step(step, core_children.apply(manifest), rejectable=True) for step, manifest in round_)
        )
        applied.update(zip((step for step, _ in round_), written, strict=True))
    deployment = applied.get("deployment")
    seen.applied = True
    seen.available = diagnose.deployment_available(deployment)
    if not seen.available:
        problems = diagnose.deployment_problems(deployment)
        if _past_progress_deadline(deployment):
            seen.failure = (ROLLOUT_DEADLINE, "the rollout did not finish in time: " + "; ".join(problems))
        seen.problems += problems
        seen.problems += diagnose.pod_problems(body, children.selector(spec))


def _past_progress_deadline(deployment: dict[str, Any] | None) -> bool:
    """The Deployment controller's own verdict (`progressDeadlineSeconds`, 10 minutes by default):
    the rollout is stuck, and no retry of Roadie's will change that without a new spec."""
    for cond in ((deployment or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return True
    return False


def _keep_where(seen: status.Observed, old: dict[str, Any]) -> None:
    """Terminating: the status goes on saying where the environment was, and when it expired,
    until it is gone."""
    seen.terminating = True
    seen.namespace, seen.url, seen.image = old.get("namespace"), old.get("url"), old.get("image")
    seen.expires_at = seen.expires_at or models.parse_timestamp(old.get("expiresAt"))


async def _expire(body: dict[str, Any], old: dict[str, Any], seen: status.Observed, now: datetime.datetime) -> None:
    """TTL reached: say so, then delete the object; the finalizer then takes its namespace down."""
    _keep_where(seen, old)
    new = status.compute(old, seen, now)
    if await reconciler.expire(pe_models.API, body, old, new, seen.expires_at, "ttl_seconds", foreground=False):
        metrics.EXPIRED.inc()
    metrics.set_live(_key(body), False)


async def _tear_down(
    body: dict[str, Any], old: dict[str, Any], seen: status.Observed, now: datetime.datetime
) -> float | None:
    """Deleted: delete every namespace made for this object, and let the object go once none is left."""
    metrics.set_live(_key(body), False)
    if not ownership.has_finalizer(body):
        return None
    deleted, remaining = await _step("cleanup", ownership.release(body))
    if remaining:
        _keep_where(seen, old)
        new = status.compute(old, seen, now)
        await status_writer.write(pe_models.API, body, new)
        if deleted:
            await events.emit(body, events.NORMAL, "Terminating", f"deleting namespace {', '.join(deleted)}")
        return WAIT  # the namespace's DELETED event wakes it
    await _step("cleanup", ownership.remove_finalizer(body))
    return None


async def _finish(
    body: dict[str, Any],
    old: dict[str, Any],
    seen: status.Observed,
    now: datetime.datetime,
    failed_step: str | None = None,
) -> float | None:
    new = status.compute(old, seen, now)
    await status_writer.write(pe_models.API, body, new)
    metrics.set_live(_key(body), status.is_live(new))
    if status.first_ready(old, new):
        created_at = models.parse_timestamp(body["metadata"].get("creationTimestamp"))
        branch = (body.get("spec") or {}).get("branch_name", "")
        metrics.CREATED.labels(branch).inc()
        if created_at is not None:
            metrics.CREATION_SECONDS.observe(max(0.0, (now - created_at).total_seconds()))
    if new["phase"] == "Failed" and old.get("phase") != "Failed" and failed_step:
        metrics.FAILED.labels(failed_step).inc()  # a lasting failure counts once, not every resync
    await reconciler.announce_phase(body, old, new, _phase_message)
    return WAIT if new["phase"] in WAITING else None


def _phase_message(new: dict[str, Any]) -> str:
    if new["phase"] == "Ready":
        return f"{new.get('image')} is serving at {new.get('url')}"
    return "cannot be provisioned" if new["phase"] == "Failed" else f"phase is now {new['phase']}"


async def deleted(body: dict[str, Any]) -> None:
    """The object is gone from the API: drop it from the gauges and its PR's series, and wake every
    other object of the same pr_number, which may have failed or waited because this one held the
    name (its finalizer went only after the namespace did, so the name is free now)."""
    metrics.forget(_key(body))
    pr = (body.get("spec") or {}).get("pr_number")
    for other in cache.by_index(controller.source, PR_INDEX, str(pr)):
        if other["metadata"].get("uid") != body["metadata"].get("uid"):
            controller.requeue(other["metadata"].get("namespace"), other["metadata"]["name"])


def _pr_index(obj: dict[str, Any]) -> list[str]:
    pr = (obj.get("spec") or {}).get("pr_number")
    return [str(pr)] if pr is not None else []


controller = Controller(
    api=pe_models.API,
    reconcile=reconcile,
    children=(
        sources.NAMESPACES,
        sources.DEPLOYMENTS,
        sources.SERVICES,
        sources.INGRESSES,
        sources.NETWORK_POLICIES,
        sources.RESOURCE_QUOTAS,
        sources.LIMIT_RANGES,
        sources.PODS,
    ),
    deleted=deleted,
    indexes={PR_INDEX: _pr_index},
)
