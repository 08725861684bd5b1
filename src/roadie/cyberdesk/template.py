"""A Cyberdesk's VirtualMachine, rendered from the template ConfigMap so that no value can inject.

The original substituted `string.Template` variables into the YAML text and parsed the result, so
a value holding a newline and `key: value` could add keys to the VM. Here the template is parsed
first and variables are substituted inside scalar values only: a value that is exactly `${var}`
becomes that value, as a string; a variable inside a longer string is substituted within that
one string. Whatever characters a value holds, it stays one string in one place, and the
structure of the VM is the template's. Keys are never substituted (a variable in a key is
refused), and the metadata Roadie owns (name, namespace, labels, ownerReference) is set after
rendering, so a template cannot move a VM out of its Cyberdesk's namespace or hide it from the
label selectors the operator watches with.

Everything that can be wrong with a template raises a `TemplateError` whose `reason` is the
`Provisioned` condition's reason and whose message says what to fix.
"""

from __future__ import annotations

import base64
import string
from collections.abc import Mapping
from typing import Any

import yaml

from roadie.core import children, naming
from roadie.cyberdesk import default_template

VARIABLES = ("vm_name", "namespace", "cyberdesk_name", "managed_by", "user_data_base64")
API_VERSION = "kubevirt.io/v1"
KIND = "VirtualMachine"

#: Labels of the original operator, set on the VM and on its VMI template.
APP_LABEL = "app"
APP = "cyberdesk"
INSTANCE_LABEL = "cyberdesk-instance"
MANAGED_BY_LABEL = "managed-by"
#: The `app.kubernetes.io/component` of the VM.
COMPONENT = "vm"

#: Metadata the API server owns: a template copied from a live object must not carry it.
_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink")

# reasons of the Provisioned condition
TEMPLATE_NOT_FOUND = "TemplateNotFound"
TEMPLATE_INVALID = "TemplateInvalid"
UNKNOWN_VARIABLE = "UnknownVariable"
NOT_A_VM = "NotAVirtualMachine"


class TemplateError(Exception):
    """A template that cannot make this desktop's VM; nothing was created."""

    reason = TEMPLATE_INVALID


class TemplateNotFoundError(TemplateError):
    reason = TEMPLATE_NOT_FOUND


class TemplateSyntaxError(TemplateError):
    reason = TEMPLATE_INVALID


class UnknownVariableError(TemplateError):
    reason = UNKNOWN_VARIABLE

    def __init__(self, names: list[str]) -> None:
        self.names = names
        listed = ", ".join("${" + name + "}" for name in names)
        known = ", ".join("${" + name + "}" for name in VARIABLES)
        super().__init__(f"the template uses unknown variable(s) {listed}; known: {known} (write $$ for a dollar)")


class NotAVirtualMachineError(TemplateError):
    reason = NOT_A_VM


def vm_name(cyberdesk_name: str) -> str:
    """`cyberdesk-<name>`, the original's VM name; hashed down to a DNS label when too long."""
    return naming.dns_label(f"cyberdesk-{cyberdesk_name}")


def template_text(data: Mapping[str, str] | None, key: str, *, source: str = "the template ConfigMap") -> str:
    """The template in a ConfigMap's `data`: the entry `key`, or its only entry whatever its key."""
    data = data or {}
    if key in data:
        return data[key]
    if len(data) == 1:
        return next(iter(data.values()))
    keys = ", ".join(sorted(data)) or "none"
    raise TemplateNotFoundError(f"{source} has no key {key!r} (keys: {keys})")


def variables(*, cyberdesk_name: str, namespace: str, managed_by: str, user_data: bytes | None) -> dict[str, str]:
    """The values of the original's template variables for one Cyberdesk."""
    data = default_template.DEFAULT_USER_DATA if user_data is None else user_data
    return {
        "vm_name": vm_name(cyberdesk_name),
        "namespace": namespace,
        "cyberdesk_name": cyberdesk_name,
        "managed_by": managed_by,
        "user_data_base64": base64.b64encode(data).decode("ascii"),
    }


def _identifiers(text: str, where: str) -> list[str]:
    found = string.Template(text)
    if not found.is_valid():
        raise TemplateSyntaxError(f"invalid $ placeholder in {where}: {text!r} (write $$ for a dollar)")
    return found.get_identifiers()


def _used(node: Any, path: str, into: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and "$" in key and _identifiers(key, f"key {path}.{key}"):
                raise TemplateSyntaxError(
                    f"variables are substituted in values only, not in the key {key!r} at {path or '.'}"
                )
            _used(value, f"{path}.{key}", into)
    elif isinstance(node, list):
        for index, item in enumerate(node):
            _used(item, f"{path}[{index}]", into)
    elif isinstance(node, str):
        into.update(_identifiers(node, f"the value at {path or '.'}"))


def _substitute(node: Any, values: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        return {key: _substitute(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if isinstance(node, str):
        return string.Template(node).substitute(values)
    return node


def render(text: str, values: Mapping[str, str]) -> dict[str, Any]:
    """The template's one document with `values` substituted in its scalar values; refuses a
    template that does not parse, uses an unknown variable, or is not a kubevirt.io/v1
    VirtualMachine."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        raise TemplateSyntaxError(f"the template is not valid YAML: {' '.join(str(error).split())}") from error
    if len(documents) != 1:
        raise NotAVirtualMachineError(f"the template must hold exactly one YAML document, it holds {len(documents)}")
    (document,) = documents
    if not isinstance(document, dict):
        raise NotAVirtualMachineError(f"the template is a {type(document).__name__}, not a VirtualMachine object")
    used: set[str] = set()
    _used(document, "", used)
    unknown = sorted(used - set(values))
    if unknown:
        raise UnknownVariableError(unknown)
    vm: dict[str, Any] = _substitute(document, values)
    if vm.get("apiVersion") != API_VERSION or vm.get("kind") != KIND:
        raise NotAVirtualMachineError(
            f"the template renders apiVersion {vm.get('apiVersion')!r} kind {vm.get('kind')!r}; "
            f"it must be a {API_VERSION} {KIND}"
        )
    spec = vm.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("template"), dict):
        raise NotAVirtualMachineError("the template's VirtualMachine has no spec.template (the VMI it runs)")
    for where, holder in (("metadata", vm), ("spec.template.metadata", spec["template"])):
        if holder.get("metadata") is None:
            holder["metadata"] = {}
        elif not isinstance(holder["metadata"], dict):
            raise NotAVirtualMachineError(f"the template's {where} is not a mapping")
    return vm


def _run_strategy(spec: dict[str, Any]) -> None:
    """The deprecated `running: true|false` (the original's) as `runStrategy`, which the timeout
    sets to `Halted`: KubeVirt refuses a VM that has both."""
    if "running" in spec:
        running = spec.pop("running")
        spec.setdefault("runStrategy", "Always" if running else "Halted")


def own_labels(cyberdesk_name: str, managed_by: str) -> dict[str, str]:
    """The labels the operator watches VMs and VMIs by: the original's three."""
    return {
        APP_LABEL: APP,
        INSTANCE_LABEL: naming.label_value(cyberdesk_name),
        MANAGED_BY_LABEL: naming.label_value(managed_by),
    }


def selector(cyberdesk_name: str | None = None) -> str:
    """A label selector for the VMs and VMIs of every Cyberdesk, or of one."""
    if cyberdesk_name is None:
        return f"{APP_LABEL}={APP},{INSTANCE_LABEL}"
    return f"{APP_LABEL}={APP},{INSTANCE_LABEL}={naming.label_value(cyberdesk_name)}"


def virtual_machine(text: str, body: Mapping[str, Any], *, managed_by: str, user_data: bytes | None) -> dict[str, Any]:
    """The VM of the Cyberdesk `body` (a kopf body or a plain dict with its metadata and uid).

    Rendered from `text`, then given the metadata the operator owns: its name and namespace, the
    original's labels and Roadie's standard ones (on the VM and on the VMI template, so VMIs are
    watched with the same selector), the parent pointer and a controller ownerReference, so
    deleting the Cyberdesk deletes the VM.
    """
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    vm = render(text, variables(cyberdesk_name=name, namespace=namespace, managed_by=managed_by, user_data=user_data))
    owned = children.metadata(
        name=vm_name(name),
        namespace=namespace,
        kind="Cyberdesk",
        instance=name,
        component=COMPONENT,
        parent=body,
        extra_labels=own_labels(name, managed_by),
    )
    metadata = {k: v for k, v in vm["metadata"].items() if k not in _SERVER_FIELDS}
    metadata.pop("generateName", None)
    vm["metadata"] = {
        **metadata,
        "name": owned["name"],
        "namespace": owned["namespace"],
        "labels": {**_strings(metadata.get("labels")), **owned["labels"]},
        "annotations": {**_strings(metadata.get("annotations")), **owned["annotations"]},
        "ownerReferences": owned["ownerReferences"],
    }
    vm.pop("status", None)
    _run_strategy(vm["spec"])
    vmi_meta = vm["spec"]["template"]["metadata"]
    # the VMI gets the VM's labels (Roadie's `managed-by` among them): the operator's informer
    # selects on it server-side, and the original's labels find a desktop's VMI by its name
    vmi_meta["labels"] = {**_strings(vmi_meta.get("labels")), **owned["labels"]}
    return vm


def _strings(mapping: Any) -> dict[str, str]:
    """Label or annotation values as the API wants them (a template may write `version: 2`)."""
    if not isinstance(mapping, dict):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in mapping.items()}
