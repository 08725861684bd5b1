"""Cyberdesk reconcile: make the desktop's VM once, follow its instance, end it on time, and bring
the sinks to its status.

Level-based, so one function serves creation, VMI phase changes (VMIs are watched with a
server-side label selector and carry the parent pointer, so their events wake their Cyberdesk),
restarts and deadlines. The VM is created only when absent, never re-applied: a changed template
reaches new desktops only, and a desktop's VM is never rebuilt under it. The template is read with
a GET when a VM is made (once per desktop): the ConfigMap is not Roadie's, so watching every
ConfigMap to cache a few templates would cost more than one read per new desktop.

The timeout is one scheduled deadline per desktop, computed from its spec and status
(`roadie.cyberdesk.timeouts`), so a restarted operator schedules it again and no step ever lists
Cyberdesks. The sinks only record the latest value (`roadie.cyberdesk.sink`): a reconcile never
waits for a database or a webhook.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import logging
import os
from typing import Any

import pydantic
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import ConfigMap, Secret
from lightkube.types import PatchType

from roadie import settings as settings_mod
from roadie.core import cache, client, conditions, durations, events, models, reconciler
from roadie.core import children as core_children
from roadie.core.controller import Controller
from roadie.cyberdesk import children, metrics, pool, sink, start_reconcile, status, template, timeouts
from roadie.cyberdesk import models as cd_models
from roadie.cyberdesk.sink import webhook

log = logging.getLogger(__name__)
API = cd_models.CYBERDESK_API
#: Phases that wait on the VMI: its events wake the Cyberdesk.
WAITING = ("Pending", "Scheduling", "Scheduled", "Stopping")
#: A template or user data that is missing may appear: look again this often.
RETRY_SECONDS = 30.0
TIMEOUT = "timeout"


class UserDataError(Exception):
    """spec.userDataSecretRef names a Secret or key that does not exist."""


class Runtime:
    """What lives as long as the operator: the sinks and the warm pool (see `startup`)."""

    def __init__(self) -> None:
        self.sinks = sink.Sinks()
        self.pool = pool.Pool()
        self.filling: asyncio.Task[None] | None = None


runtime = Runtime()


def _cfg() -> settings_mod.CyberdeskSettings:
    return settings_mod.current().cyberdesk


def timing(cfg: settings_mod.CyberdeskSettings) -> timeouts.Timing:
    return timeouts.Timing(warning=durations.parse(cfg.expiry_warning), grace=durations.parse(cfg.stop_grace))


async def read_template(name: str) -> str:
    """The template's text, read from its ConfigMap now (a GET: a changed template counts for
    the next VM made)."""
    cfg = _cfg()
    found = await core_children.get_or_none(ConfigMap, name, cfg.template_namespace)
    if found is None:
        raise template.TemplateNotFoundError(
            f"no template ConfigMap {cfg.template_namespace}/{name}; create it or name another in spec.template"
        )
    source = f"ConfigMap {cfg.template_namespace}/{name}"
    return template.template_text(found.get("data"), cfg.template_key, source=source)


async def read_user_data(body: dict[str, Any], spec: cd_models.CyberdeskSpec) -> bytes | None:
    ref = spec.userDataSecretRef
    if ref is None:
        return None
    namespace = body["metadata"]["namespace"]
    found = await core_children.get_or_none(Secret, ref.name, namespace)
    if found is None:
        raise UserDataError(f"spec.userDataSecretRef: no Secret {namespace}/{ref.name}")
    data = found.get("data") or {}
    if ref.key not in data:
        raise UserDataError(f"spec.userDataSecretRef: Secret {ref.name} has no key {ref.key!r}")
    return base64.b64decode(data[ref.key])


def find_vm(body: dict[str, Any]) -> dict[str, Any] | None:
    """The desktop's VM from the cache: the one its parent pointer names (a claimed warm VM has
    another name), else the one of its own name."""
    for vm in cache.children(children.VMS, body):
        if core_children.owned_by(vm, body):
            return vm
    meta = body["metadata"]
    return cache.get(children.VMS, meta["namespace"], template.vm_name(meta["name"]))


async def make_vm(
    body: dict[str, Any], spec: cd_models.CyberdeskSpec, template_name: str
) -> tuple[dict[str, Any], str]:
    """Claim a warm VM, or create the desktop's own; (the VM, where it came from)."""
    cfg = _cfg()
    if spec.pool and spec.userDataSecretRef is None:
        claimed = await runtime.pool.claim(body, template_name)
        if claimed is not None:
            return claimed, "pool"
    user_data = await read_user_data(body, spec)
    text = await read_template(template_name)
    manifest = template.virtual_machine(text, body, managed_by=cfg.managed_by, user_data=user_data)
    await core_children.create_if_absent(manifest, body)
    made = core_children.cached(manifest)
    if made is None:  # created, but the cache missed the response: read what is there
        made = await core_children.get_or_none(
            children.VirtualMachine, manifest["metadata"]["name"], manifest["metadata"]["namespace"]
        )
    assert made is not None
    return made, "new"


async def reconcile(body: dict[str, Any]) -> float | None:
    cfg = _cfg()
    meta = body["metadata"]
    old = body.get("status") or {}
    now = models.now()
    seen = status.Observed(generation=meta.get("generation"))
    if meta.get("deletionTimestamp"):
        return None  # the VM goes with it (ownerReference)
    try:
        spec = cd_models.CyberdeskSpec.model_validate(body.get("spec") or {})
    except pydantic.ValidationError as error:
        seen.failure = ("InvalidSpec", f"fix the spec: {error}")
        return await _finish(body, old, seen, 1000, now)
    template_name = spec.template or cfg.template_name
    seen.template = old.get("template") or template_name
    halted_at = models.parse_timestamp(old.get("haltedAt"))
    seen.halted_at = halted_at

    vm = find_vm(body)
    if vm is not None and not core_children.owned_by(vm, body):
        seen.failure = (
            status.VM_CONFLICT,
            core_children.holder_of(vm) + f" holds VirtualMachine {vm['metadata']['name']}",
        )
        return await _finish(body, old, seen, spec.timeoutMs, now)
    if vm is None and halted_at is None:
        vm, retry = await _provision(body, spec, template_name, seen)
        if vm is None:
            return await _finish(body, old, seen, spec.timeoutMs, now, again=retry)

    vmi = children.vmi_of(vm) if vm is not None else None
    _observe(seen, old, vm, vmi, now)
    due = _deadlines(body, spec, seen, old, cfg)
    seen.expires_at = due.expires_at
    seen.in_warning_window = halted_at is None and timeouts.in_warning_window(now, due)
    warned = conditions.is_true(old.get("conditions"), status.EXPIRING) and old.get("expiresAt") == models.timestamp(
        due.expires_at
    )
    vm_stopped = vmi is None or children.vmi_phase(vmi) in ("Succeeded", "Failed")
    step = timeouts.step(
        now=now,
        due=due,
        timing=timing(cfg),
        warned=warned,
        halted_at=halted_at,
        vm_exists=seen.vm_exists,
        vm_stopped=vm_stopped,
    )
    await _enforce(body, spec, seen, vm, step, due, now)
    if step.next_at is not None:
        controller.at(meta["namespace"], meta["name"], TIMEOUT, step.next_at)
    else:
        controller.cancel(meta["namespace"], meta["name"], TIMEOUT)
    return await _finish(body, old, seen, spec.timeoutMs, now, vm=vm)


async def _provision(
    body: dict[str, Any], spec: cd_models.CyberdeskSpec, template_name: str, seen: status.Observed
) -> tuple[dict[str, Any] | None, float | None]:
    """The desktop's VM, made now; or None with `seen.failure` saying why (and when to retry)."""
    try:
        vm, source = await make_vm(body, spec, template_name)
    except template.TemplateError as error:
        seen.failure = (error.reason, str(error))
        return None, RETRY_SECONDS
    except UserDataError as error:
        seen.failure = (status.USER_DATA_NOT_FOUND, str(error))
        return None, RETRY_SECONDS
    except core_children.ForeignObjectError as error:
        seen.failure = (status.VM_CONFLICT, str(error))
        return None, None
    except ApiError as error:
        if error.status.code not in core_children.REJECTED:
            raise
        seen.failure = (status.VM_REJECTED, f"the API server refused the VM: {error.status.message}")
        return None, None
    seen.template = template_name
    if source == "pool":
        await events.emit(body, events.NORMAL, "Claimed", f"claimed warm VM {vm['metadata']['name']}")
    return vm, None


async def _enforce(
    body: dict[str, Any],
    spec: cd_models.CyberdeskSpec,
    seen: status.Observed,
    vm: dict[str, Any] | None,
    step: timeouts.Step,
    due: timeouts.Deadlines,
    now: datetime.datetime,
) -> None:
    """Do what the timeout asks now: warn, halt, or delete the halted VM."""
    if step.halt and vm is not None:
        await _halt(body, vm, spec, now)
        seen.halted_at = now
        seen.in_warning_window = False
    elif step.halt:
        seen.halted_at = now  # it never had a VM to stop (e.g. deleted by hand)
    if step.delete and vm is not None:
        await core_children.delete(children.VirtualMachine, vm["metadata"]["name"], vm["metadata"]["namespace"])
        await events.emit(body, events.NORMAL, "VMDeleted", f"deleted VirtualMachine {vm['metadata']['name']}")
        seen.vm_exists = False
    if step.warn:
        left = durations.render(timeouts.remaining(now, due))
        await events.emit(
            body,
            events.WARNING,
            "ExpiringSoon",
            f"the desktop stops at {models.timestamp(due.expires_at)} ({left} left); raise spec.timeoutMs to keep it",
        )


def _observe(
    seen: status.Observed,
    old: dict[str, Any],
    vm: dict[str, Any] | None,
    vmi: dict[str, Any] | None,
    now: datetime.datetime,
) -> None:
    seen.vm_exists = vm is not None
    seen.vm_name = vm["metadata"]["name"] if vm is not None else old.get("vmName")
    if vm is None and seen.halted_at is None:
        return
    seen.vmi_phase = children.vmi_phase(vmi)
    seen.ip_address = children.vmi_address(vmi)
    seen.node_name = children.vmi_node(vmi)
    seen.started_at = models.parse_timestamp(old.get("startedAt"))
    if seen.started_at is None and seen.vmi_phase == "Running" and vm is not None:
        seen.started_at = started(vm, vmi, now)


def started(vm: dict[str, Any], vmi: dict[str, Any] | None, now: datetime.datetime) -> datetime.datetime:
    """When the desktop began running, in whole seconds (as the status keeps it): when its
    instance entered Running, or, for a claimed warm VM, when it was claimed."""
    moments = [models.parse_timestamp(children.running_since(vmi))]
    moments.append(models.parse_timestamp((vm["metadata"].get("annotations") or {}).get(pool.CLAIMED_AT)))
    known = [m for m in moments if m is not None]
    moment = max(known) if known else now
    return min(moment, now).replace(microsecond=0)


def _deadlines(
    body: dict[str, Any],
    spec: cd_models.CyberdeskSpec,
    seen: status.Observed,
    old: dict[str, Any],
    cfg: settings_mod.CyberdeskSettings,
) -> timeouts.Deadlines:
    created_at = models.parse_timestamp(body["metadata"].get("creationTimestamp")) or models.now()
    due = timeouts.deadlines(
        timeout_ms=spec.timeoutMs, created_at=created_at, started_at=seen.started_at, warning=timing(cfg).warning
    )
    kept = models.parse_timestamp(old.get("expiresAt"))
    if seen.halted_at is not None and kept is not None:  # after the halt, timeoutMs changes nothing
        return timeouts.Deadlines(expires_at=kept, warn_at=due.warn_at, from_start=due.from_start)
    return due


async def _halt(
    body: dict[str, Any], vm: dict[str, Any], spec: cd_models.CyberdeskSpec, now: datetime.datetime
) -> None:
    """Graceful stop: `runStrategy: Halted` (KubeVirt shuts the guest down), by a merge patch."""
    meta = vm["metadata"]
    patch = {"spec": {"runStrategy": "Halted", "running": None}}
    try:
        result = await client.get().patch(
            children.VirtualMachine, meta["name"], patch, namespace=meta["namespace"], patch_type=PatchType.MERGE
        )
        cache.observe(children.VMS, result.to_dict() if hasattr(result, "to_dict") else result)
    except ApiError as error:
        if error.status.code != 404:
            raise
    metrics.TIMED_OUT.inc()
    await events.emit(
        body,
        events.WARNING,
        "TimedOut",
        f"timeoutMs={spec.timeoutMs} ran out at {models.timestamp(now)}: halting VirtualMachine {meta['name']}",
    )


async def _finish(
    body: dict[str, Any],
    old: dict[str, Any],
    seen: status.Observed,
    timeout_ms: int,
    now: datetime.datetime,
    *,
    again: float | None = None,
    vm: dict[str, Any] | None = None,
) -> float | None:
    new = status.compute(old, seen, timeout_ms, now)
    if new.get("startedAt") and not old.get("startedAt"):
        created = models.parse_timestamp(body["metadata"].get("creationTimestamp"))
        claimed = vm is not None and pool.CLAIMED_AT in (vm["metadata"].get("annotations") or {})
        if created is not None:
            metrics.STARTUP_SECONDS.labels("pool" if claimed else "new").observe(
                max(0.0, (now - created).total_seconds())
            )
    result = await reconciler.finish(API, body, old, new, waiting_phases=WAITING, again=again)
    publish(body, new)
    return result


def publish(body: dict[str, Any], new: dict[str, Any]) -> None:
    """Hand the sinks the row and the events this status calls for; returns at once."""
    sinks = runtime.sinks
    sinks.put(body["metadata"]["name"], status.sink_status(new))
    phase = new.get("phase")
    payload = webhook.payload(body, new)
    if phase == "Running":
        sinks.notify(webhook.READY, payload)
    if conditions.is_true(new.get("conditions"), status.EXPIRING):
        sinks.notify(webhook.EXPIRING, payload)
    if phase in ("TimedOut", "Succeeded", "Failed"):
        sinks.notify(webhook.STOPPED, payload)


async def deleted(body: dict[str, Any]) -> None:
    """The Cyberdesk is gone: drop its deadline and what the sinks remember of it."""
    meta = body["metadata"]
    controller.cancel(meta.get("namespace"), meta["name"], TIMEOUT)
    runtime.sinks.forget(meta["name"], meta.get("namespace"))


# -- the operator's lifetime -------------------------------------------------------------------
async def startup() -> None:
    """Start the sinks the settings ask for, and the warm pool (filled once the caches have
    listed what exists, so a restart does not start a second pool)."""
    cfg = _cfg()
    runtime.sinks = sink.build(
        postgres_url=cfg.postgres_url,
        create_table=cfg.create_table,
        supabase_url=cfg.supabase_url or os.environ.get("SUPABASE_URL", ""),
        supabase_key=cfg.supabase_key or os.environ.get("SUPABASE_KEY", ""),
        webhook_url=cfg.webhook_url,
        webhook_secret=cfg.webhook_secret,
        table=cfg.sink_table,
        key_column=cfg.sink_key_column,
        upsert=cfg.sink_upsert,
    )
    await runtime.sinks.start()
    runtime.pool = pool.Pool(
        size=cfg.pool_size,
        namespaces=cfg.pool_namespaces,
        templates=cfg.pool_templates or (cfg.template_name,),
        managed_by=cfg.managed_by,
        read_template=read_template,
    )
    # with a size of 0 too: a pool left from a larger size (or a namespace or template no longer
    # pooled) is emptied once the caches have listed it
    informers = cache.informers()
    for informer in informers:
        if informer.source == children.VMS:
            informer.add_handler(runtime.pool.on_vm_event)

    async def fill_once_synced() -> None:
        await asyncio.gather(*(informer.synced.wait() for informer in informers))
        runtime.pool.refill_all()

    runtime.filling = asyncio.get_running_loop().create_task(fill_once_synced(), name="cyberdesk-pool-fill")


async def shutdown() -> None:
    if runtime.filling is not None:
        runtime.filling.cancel()
    await runtime.pool.close()
    await runtime.sinks.close()


controller = Controller(api=API, reconcile=reconcile, children=(children.VMS, children.VMIS), deleted=deleted)
CONTROLLERS = [controller, start_reconcile.controller]
