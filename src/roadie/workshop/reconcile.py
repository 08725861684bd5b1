"""Workshop reconcile: ordered steps over one object, then one status write.

Level-based: every step reads the world as it is (from the cache) and makes it as the spec says,
so the same function serves creation, updates, restarts, child deletions and deadlines. Expiry
deletes the Workshop at `status.expiresAt` exactly (the core scheduler fires then); its children
go with it through their owner references.
"""

from __future__ import annotations

import contextlib
import datetime
import secrets
from collections.abc import Awaitable
from typing import Any

import pydantic
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import PersistentVolumeClaim, Secret, Service
from lightkube.resources.networking_v1 import Ingress

from roadie import settings as settings_mod
from roadie.core import children as core_children
from roadie.core import diagnose, durations, events, models, reconciler, sources
from roadie.core import status as status_writer
from roadie.core.controller import Controller
from roadie.workshop import admission, children, status
from roadie.workshop import models as ws_models

CHILDREN = {
    sources.DEPLOYMENTS: Deployment,
    sources.SERVICES: Service,
    sources.PVCS: PersistentVolumeClaim,
    sources.SECRETS: Secret,
    sources.INGRESSES: Ingress,
}
WAITING = ("Pending", "Creating", "Running")


def _spec(body: dict[str, Any]) -> ws_models.WorkshopSpec:
    return ws_models.WorkshopSpec.model_validate(body.get("spec") or {})


async def reconcile(body: dict[str, Any]) -> float | None:
    cfg = settings_mod.current().workshop
    meta = body["metadata"]
    old = body.get("status") or {}
    now = datetime.datetime.now(datetime.UTC)
    seen = status.Observed(generation=meta.get("generation"))
    seen.created_at = models.parse_timestamp(meta.get("creationTimestamp"))

    if meta.get("deletionTimestamp"):
        seen.terminating = True
        seen.expires_at = models.parse_timestamp(old.get("expiresAt"))  # kept while its children go
        return await _finish(body, old, seen, now)

    try:
        spec = _spec(body)
        duration = durations.parse(spec.duration)
    except (pydantic.ValidationError, durations.DurationError) as error:
        seen.failure = ("InvalidSpec", f"fix the spec: {error}")
        return await _finish(body, old, seen, now)

    assert seen.created_at is not None
    seen.expires_at = seen.created_at + duration
    if now >= seen.expires_at:
        seen.terminating = True
        new = status.compute(old, seen, now)
        await reconciler.expire(ws_models.API, body, old, new, seen.expires_at, "the workshop's duration")
        return None
    warn_at = seen.expires_at - durations.parse(cfg.expiry_warning)
    deadline = seen.created_at + durations.parse(cfg.provisioning_deadline)
    reconciler.schedule(
        controller,
        body,
        now,
        {
            "expiry": seen.expires_at,
            "expiry-warning": warn_at,
            # once provisioned, the deadline can no longer fail it: do not wake it for nothing
            "provisioning-deadline": None if old.get("phase") in ("Ready", "Running") else deadline,
        },
    )
    seen.in_warning_window = now >= warn_at
    seen.deadline_passed = now >= deadline

    refusal = admission.refused(spec, cfg)
    if refusal:
        seen.failure = (admission.REASON, refusal)
        return await _finish(body, old, seen, now)

    try:
        await _apply(body, spec, seen, cfg)
    except core_children.ForeignObjectError as error:
        seen.failure = ("NameConflict", str(error))
    except ApiError as error:
        if error.status.code in core_children.REJECTED:
            seen.failure = ("ChildRejected", f"the API server refused a child: {error.status.message}")
        else:
            await _admitted(body, old, seen, now)
            raise
    return await _finish(body, old, seen, now)


async def _admitted(body: dict[str, Any], old: dict[str, Any], seen: status.Observed, now: datetime.datetime) -> None:
    """The children could not be written yet and will be retried: say `Pending`, with the expiry
    the Workshop was given, if nothing was said before. Not written on the way to `Creating`: a
    status write per new Workshop that the next write replaces at once was a tenth of the
    operator's requests when a thousand are made together."""
    if old.get("phase"):
        return
    seen.sessions, seen.problems = [], []
    with contextlib.suppress(ApiError):  # the API server is failing this reconcile: the retry writes it
        await status_writer.write(ws_models.API, body, status.compute(old, seen, now))


async def _apply(body: dict[str, Any], spec: ws_models.WorkshopSpec, seen: status.Observed, cfg: Any) -> None:
    namespace = body["metadata"]["namespace"]
    all_sessions = children.sessions(spec)
    keep: set[tuple[str, str]] = set()
    writes: list[Awaitable[Any]] = []
    for session in all_sessions:
        secret = children.credentials(body, spec, session, cfg.username, secrets.token_urlsafe(18))
        writes += [
            core_children.create_if_absent(secret, body),
            core_children.apply(children.claim(body, spec, session), body),
            core_children.apply(
                children.deployment(body, spec, session, cfg.container_port, pod_security=cfg.pod_security), body
            ),
            core_children.apply(children.service(body, spec, session, cfg.container_port), body),
        ]
        keep |= {
            ("Secret", session.secret),
            ("PersistentVolumeClaim", session.pvc),
            ("Deployment", session.deployment),
            ("Service", session.service),
        }
    ingress = children.ingress(body, spec, all_sessions)
    if ingress is not None:
        writes.append(core_children.apply(ingress, body))
        keep.add(("Ingress", children.ingress_name(spec)))
    written = await core_children.together(*writes)  # none of them reads another
    for i, session in enumerate(all_sessions):
        _, claim, deployment, _ = written[4 * i : 4 * i + 4]
        ready = diagnose.deployment_available(deployment, all_replicas=False)
        if not ready:
            problem = diagnose.claim_problem(claim)
            if problem:
                seen.problems.append(problem)
            seen.problems += diagnose.pod_problems(
                body, {"workshop": spec.name, children.SESSION_LABEL: str(session.index)}
            )
        seen.sessions.append(
            {
                "index": session.index,
                "name": session.base,
                "url": children.session_url(spec, session, namespace, cfg.url_scheme),
                "credentialsSecret": session.secret,
                "ready": ready,
            }
        )
    removed = await core_children.prune(CHILDREN, keep, body)
    if removed:
        await events.emit(body, events.NORMAL, "Pruned", f"removed {', '.join(removed)}")
    seen.applied = True
    seen.url = seen.sessions[0]["url"] if seen.sessions else None
    seen.credentials_secret = all_sessions[0].secret


async def _finish(
    body: dict[str, Any], old: dict[str, Any], seen: status.Observed, now: datetime.datetime
) -> float | None:
    new = status.compute(old, seen, now)
    again = await reconciler.finish(ws_models.API, body, old, new, waiting_phases=WAITING, message=_phase_message)
    await _announce(body, old, new, seen)
    return again


async def _announce(body: dict[str, Any], old: dict[str, Any], new: dict[str, Any], seen: status.Observed) -> None:
    """Events beyond the phase change: expiry moves and the warning before expiry."""
    if old.get("expiresAt") and new.get("expiresAt") and old["expiresAt"] != new["expiresAt"]:
        await events.emit(
            body, events.NORMAL, "ExpiryChanged", f"expiry moved from {old['expiresAt']} to {new['expiresAt']}"
        )
    was_warned = any(
        c.get("type") == status.EXPIRING and c.get("status") == "True" for c in old.get("conditions") or []
    )
    if seen.in_warning_window and not was_warned and not seen.terminating:
        await events.emit(
            body,
            events.WARNING,
            "ExpiringSoon",
            f"this workshop will be deleted at {new.get('expiresAt')}; extend spec.duration to keep it",
        )


def _phase_message(new: dict[str, Any]) -> str:
    if new["phase"] == "Ready":
        return f"all sessions available at {new.get('url')}"
    return f"phase is now {new['phase']}"


controller = Controller(api=ws_models.API, reconcile=reconcile, children=(*CHILDREN, sources.PODS))
