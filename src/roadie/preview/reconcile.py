"""PreviewEnvironment reconcile: ordered steps over one object, then one status write.

Level-based, so one function serves creation, spec changes (a new `image_tag` is a new apply,
which rolls the Deployment), hand-deleted children (put back on their DELETED event), restarts
(apply of what exists changes nothing) and deadlines. The TTL deletes the object at creation plus
`ttl_seconds` exactly (the core scheduler fires then); deletion, by a user or the TTL, waits on
Roadie's finalizer until the namespace made for this object is gone.
"""

from __future__ import annotations

import datetime
from collections.abc import Awaitable
from typing import Any, TypeVar

import pydantic
from lightkube.core.exceptions import ApiError

from roadie import settings as settings_mod
from roadie.core import children as core_children
from roadie.core import client, diagnose, events, models
from roadie.core import status as status_writer
from roadie.core.controller import Controller
from roadie.preview import children, metrics, ownership, status
from roadie.preview import models as pe_models

T = TypeVar("T")
WAIT_REQUEUE = 2.0
TEARDOWN_REQUEUE = 1.0


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
        controller.at(meta["namespace"], meta["name"], "expiry", seen.expires_at, _refresh(body))

    eff = children.effective(spec, settings_mod.current().preview)
    wanted = children.names(spec, eff).namespace
    if old.get("namespace") != wanted:  # new, renumbered, or not provisioned: look for what else it holds
        released, _ = await _step("cleanup", ownership.release(meta["uid"], keep=wanted))
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
    deployment = None
    for step, manifest in children.inside(body, spec, eff):
        applied = await _step(step, core_children.apply(manifest), rejectable=True)
        if step == "deployment":
            deployment = applied
    seen.applied = True
    seen.available = available(deployment)
    if not seen.available:
        seen.problems += deployment_problems(deployment)
        assert seen.namespace is not None
        seen.problems += await diagnose.pod_problems(seen.namespace, children.selector(spec))


def available(deployment: Any) -> bool:
    """Available at the current spec: the rollout is done and no pod of an older one is left."""
    st = deployment.status if deployment is not None else None
    if st is None:
        return False
    wanted = deployment.spec.replicas if deployment.spec.replicas is not None else 1
    current = (st.observedGeneration or 0) >= (deployment.metadata.generation or 0)
    updated = st.updatedReplicas or 0
    return current and updated >= wanted and (st.availableReplicas or 0) >= wanted and (st.replicas or 0) == updated


def deployment_problems(deployment: Any) -> list[str]:
    """What the Deployment itself reports: quota refusals (no pod is ever made) and timeouts."""
    st = deployment.status if deployment is not None else None
    found = []
    for cond in (st.conditions if st else None) or []:
        if (cond.type == "ReplicaFailure" and cond.status == "True") or (
            cond.type == "Progressing" and cond.status == "False"
        ):
            found.append(f"deployment {deployment.metadata.name}: {cond.reason}: {cond.message}")
    return found


def _refresh(body: dict[str, Any]) -> Any:
    namespace, name = _key(body)
    return lambda: controller.fetch_and_run(namespace, name)


def _keep_where(seen: status.Observed, old: dict[str, Any]) -> None:
    """Terminating: the status goes on saying where the environment was until it is gone."""
    seen.terminating = True
    seen.namespace, seen.url, seen.image = old.get("namespace"), old.get("url"), old.get("image")


async def _expire(body: dict[str, Any], old: dict[str, Any], seen: status.Observed, now: datetime.datetime) -> None:
    """TTL reached: say so, then delete the object; the finalizer then takes its namespace down."""
    meta = body["metadata"]
    _keep_where(seen, old)
    await status_writer.write(pe_models.API, body, status.compute(old, seen, now))
    expires = models.timestamp(seen.expires_at) if seen.expires_at else "now"
    await events.emit(body, events.NORMAL, "Expired", f"ttl_seconds ran out at {expires}; deleting it")
    if await core_children.delete(client.resource(pe_models.API), meta["name"], meta["namespace"]):
        metrics.EXPIRED.inc()
    metrics.set_live(_key(body), False)


async def _tear_down(
    body: dict[str, Any], old: dict[str, Any], seen: status.Observed, now: datetime.datetime
) -> float | None:
    """Deleted: delete every namespace made for this object, and let the object go once none is left."""
    metrics.set_live(_key(body), False)
    if not ownership.has_finalizer(body):
        return None
    deleted, remaining = await _step("cleanup", ownership.release(body["metadata"]["uid"]))
    if remaining:
        _keep_where(seen, old)
        new = status.compute(old, seen, now)
        await status_writer.write(pe_models.API, body, new)
        if deleted:
            await events.emit(body, events.NORMAL, "Terminating", f"deleting namespace {', '.join(deleted)}")
        return TEARDOWN_REQUEUE
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
    await _announce(body, old, new)
    if new["phase"] in ("Pending", "Creating", "Updating"):
        return WAIT_REQUEUE
    return None


async def _announce(body: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> None:
    if old.get("phase") == new["phase"]:
        return
    if new["phase"] == "Failed":
        await events.emit(body, events.WARNING, "Failed", new.get("message") or "cannot be provisioned")
    elif new["phase"] == "Ready":
        await events.emit(body, events.NORMAL, "Ready", f"{new.get('image')} is serving at {new.get('url')}")
    else:
        await events.emit(body, events.NORMAL, new["phase"], new.get("message") or f"phase is now {new['phase']}")


async def deleted(body: dict[str, Any]) -> None:
    """The object is gone from the API: drop it from the gauges and its PR's series, and wake any
    other object of the same pr_number that failed because this one held the name (its finalizer
    went only after the namespace did, so the name is free now)."""
    metrics.forget(_key(body))
    pr = (body.get("spec") or {}).get("pr_number")
    async for other in client.get().list(client.resource(pe_models.API), namespace="*"):
        if other.spec and other.spec.get("pr_number") == pr and (other.status or {}).get("phase") == "Failed":
            controller.requeue(other.metadata.namespace, other.metadata.name, 0)


controller = Controller(api=pe_models.API, reconcile=reconcile)
