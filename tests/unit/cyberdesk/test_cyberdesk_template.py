"""Rendering a Cyberdesk's VM from its template: every variable lands where the template puts it,
no value can add a key or a document whatever it holds (newlines, braces, YAML separators), an
unknown variable is named, a template that is not a kubevirt.io/v1 VirtualMachine is refused, and
the metadata the operator owns is forced whatever the template says."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import yaml

from roadie.cyberdesk import default_template, template

BODY: dict[str, Any] = {
    "apiVersion": "cyberdesk.io/v1alpha1",
    "kind": "Cyberdesk",
    "metadata": {"name": "3f1c8f5e-9a40-4b7e-8d25-6a1f0e2b9c11", "namespace": "desks", "uid": "uid-1"},
    "spec": {"timeoutMs": 86400000},
}

EVERY_VARIABLE = """
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: ${vm_name}
  annotations:
    all: "${vm_name} ${namespace} ${cyberdesk_name} ${managed_by}"
    dollar: "costs $$5"
spec:
  running: true
  template:
    metadata:
      annotations:
        desk: ${cyberdesk_name}
    spec:
      volumes:
        - name: cloudinitdisk
          cloudInitNoCloud:
            userDataBase64: ${user_data_base64}
        - name: ns
          hostname: $namespace
"""


def _vm(text: str = EVERY_VARIABLE, body: dict[str, Any] = BODY, user_data: bytes | None = b"#cloud-config\n"):
    return template.virtual_machine(text, body, managed_by="roadie", user_data=user_data)


def _named(name: str) -> dict[str, Any]:
    return {**BODY, "metadata": {**BODY["metadata"], "name": name}}


def test_every_variable_is_substituted_where_the_template_puts_it() -> None:
    vm = _vm()
    name = BODY["metadata"]["name"]
    assert vm["metadata"]["name"] == f"cyberdesk-{name}"
    assert vm["metadata"]["annotations"]["all"] == f"cyberdesk-{name} desks {name} roadie"
    assert vm["metadata"]["annotations"]["dollar"] == "costs $5"
    assert vm["spec"]["template"]["metadata"]["annotations"]["desk"] == name
    volumes = vm["spec"]["template"]["spec"]["volumes"]
    assert base64.b64decode(volumes[0]["cloudInitNoCloud"]["userDataBase64"]) == b"#cloud-config\n"
    assert volumes[1]["hostname"] == "desks"


def test_the_operator_owns_name_namespace_labels_and_owner() -> None:
    text = EVERY_VARIABLE.replace(
        "metadata:\n  name: ${vm_name}\n",
        "metadata:\n  name: elsewhere\n  namespace: kube-system\n  uid: stale\n  resourceVersion: '7'\n"
        "  labels: {app: other, team: blue, version: 2}\n"
        "  ownerReferences: [{apiVersion: v1, kind: Secret, name: x, uid: y}]\n",
    )
    vm = _vm(text)
    meta = vm["metadata"]
    name = BODY["metadata"]["name"]
    assert meta["name"] == f"cyberdesk-{name}" and meta["namespace"] == "desks"
    assert "uid" not in meta and "resourceVersion" not in meta
    assert meta["labels"]["app"] == "cyberdesk" and meta["labels"]["cyberdesk-instance"] == name
    assert meta["labels"]["managed-by"] == "roadie"
    assert meta["labels"]["team"] == "blue" and meta["labels"]["version"] == "2"
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "roadie"
    assert meta["labels"]["app.kubernetes.io/instance"] == name
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "cyberdesk.io/v1alpha1",
            "kind": "Cyberdesk",
            "name": name,
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    vmi_labels = vm["spec"]["template"]["metadata"]["labels"]
    assert vmi_labels["app"] == "cyberdesk" and vmi_labels["cyberdesk-instance"] == name
    assert template.selector(name) == f"app=cyberdesk,cyberdesk-instance={name}"


def test_the_deprecated_running_becomes_a_run_strategy() -> None:
    assert "running" not in _vm()["spec"]
    assert _vm()["spec"]["runStrategy"] == "Always"
    halted = _vm(EVERY_VARIABLE.replace("running: true", "running: false"))["spec"]
    assert halted["runStrategy"] == "Halted" and "running" not in halted


HOSTILE = [
    "x\nspec: {evil: true}",
    "}: {",
    "a\n---\nkind: Secret\n",
    "--- !!python/object/apply:os.system ['true']",
    "${vm_name}",
    "&anchor *alias",
    "'\"\n  evil: true\n",
    "true",
    "123",
    "null",
]


def _paths(node: Any, prefix: str = "") -> set[str]:
    """Every key path of a document, to compare structures."""
    if isinstance(node, dict):
        out = set()
        for key, value in node.items():
            out |= {f"{prefix}.{key}"} | _paths(value, f"{prefix}.{key}")
        return out
    if isinstance(node, list):
        return set().union(*(_paths(item, f"{prefix}[{i}]") for i, item in enumerate(node))) if node else set()
    return set()


@pytest.mark.parametrize("hostile", HOSTILE)
def test_no_value_adds_a_key_or_document_through_the_name(hostile: str) -> None:
    reference = _vm()
    vm = _vm(body=_named(hostile))
    assert _paths(vm) == _paths(reference)
    assert vm["spec"]["template"]["metadata"]["annotations"]["desk"] == hostile  # verbatim, one string
    assert not any(path.endswith(".evil") for path in _paths(vm)) and vm["kind"] == "VirtualMachine"
    assert yaml.safe_load(yaml.safe_dump(vm)) == vm  # the manifest sent is exactly this structure
    assert vm["metadata"]["name"].startswith("cyberdesk-") and len(vm["metadata"]["name"]) <= 63
    label = vm["metadata"]["labels"]["cyberdesk-instance"]
    assert len(label) <= 63 and "\n" not in label and " " not in label


@pytest.mark.parametrize("hostile", HOSTILE)
def test_no_value_adds_a_key_through_the_user_data_or_the_namespace(hostile: str) -> None:
    values = template.variables(cyberdesk_name="d", namespace=hostile, managed_by=hostile, user_data=hostile.encode())
    rendered = template.render(EVERY_VARIABLE, values)
    reference = template.render(
        EVERY_VARIABLE, template.variables(cyberdesk_name="d", namespace="n", managed_by="m", user_data=b"u")
    )
    assert _paths(rendered) == _paths(reference)
    volumes = rendered["spec"]["template"]["spec"]["volumes"]
    assert base64.b64decode(volumes[0]["cloudInitNoCloud"]["userDataBase64"]) == hostile.encode()
    assert volumes[1]["hostname"] == hostile  # a whole-value variable stays a string, even "true" or "123"
    assert isinstance(volumes[1]["hostname"], str)


def test_a_value_holding_a_variable_is_not_substituted_again() -> None:
    values = template.variables(cyberdesk_name="${user_data_base64}", namespace="n", managed_by="m", user_data=b"u")
    rendered = template.render(
        "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nspec: {template: {}}\n"
        "metadata: {annotations: {a: '${cyberdesk_name}'}}\n",
        values,
    )
    assert rendered["metadata"]["annotations"]["a"] == "${user_data_base64}"


def test_an_unknown_variable_is_named() -> None:
    with pytest.raises(template.UnknownVariableError) as caught:
        _vm(EVERY_VARIABLE.replace("${namespace}", "${password} ${namespce}"))
    assert caught.value.names == ["namespce", "password"]
    assert "${namespce}" in str(caught.value) and "${password}" in str(caught.value)
    assert caught.value.reason == "UnknownVariable"


def test_a_variable_in_a_key_is_refused() -> None:
    with pytest.raises(template.TemplateSyntaxError, match="values only"):
        _vm(EVERY_VARIABLE.replace("dollar:", "${cyberdesk_name}:"))


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ("apiVersion: v1\nkind: Pod\nspec: {template: {}}\n", template.NotAVirtualMachineError, "v1"),
        (
            "apiVersion: kubevirt.io/v1alpha3\nkind: VirtualMachine\nspec: {template: {}}\n",
            template.NotAVirtualMachineError,
            "kubevirt.io/v1alpha3",
        ),
        ("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\n", template.NotAVirtualMachineError, "spec.template"),
        ("- a\n- b\n", template.NotAVirtualMachineError, "list"),
        ("", template.NotAVirtualMachineError, "holds 0"),
        (
            "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nspec: {template: {}}\n---\nkind: Secret\n",
            template.NotAVirtualMachineError,
            "holds 2",
        ),
        ("apiVersion: kubevirt.io/v1\nkind: [VirtualMachine\n", template.TemplateSyntaxError, "not valid YAML"),
        (
            "apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nspec: {template: {}}\nmetadata: {name: '$5'}\n",
            template.TemplateSyntaxError,
            "invalid $ placeholder",
        ),
    ],
)
def test_a_template_that_is_not_a_virtual_machine_is_refused(text: str, error: type[Exception], words: str) -> None:
    with pytest.raises(error) as caught:
        _vm(text)
    assert words in str(caught.value)
    assert isinstance(caught.value, template.TemplateError)


def test_the_template_is_found_in_its_configmap() -> None:
    assert template.template_text({"vm-template.yaml": "a", "other": "b"}, "vm-template.yaml") == "a"
    assert template.template_text({"anything.yaml": "only"}, "vm-template.yaml") == "only"
    with pytest.raises(template.TemplateNotFoundError, match=r"no key 'vm-template\.yaml'.*a, b"):
        template.template_text({"a": "", "b": ""}, "vm-template.yaml")
    with pytest.raises(template.TemplateNotFoundError, match="keys: none"):
        template.template_text(None, "vm-template.yaml")


def test_the_default_template_renders_a_small_vm_with_cloud_init() -> None:
    vm = _vm(default_template.TEMPLATE, user_data=None)
    spec = vm["spec"]
    assert spec["runStrategy"] == "Always" and "running" not in spec
    volumes = {v["name"]: v for v in spec["template"]["spec"]["volumes"]}
    assert volumes["containerdisk"]["containerDisk"]["image"].startswith("quay.io/containerdisks/")
    user_data = base64.b64decode(volumes["cloudinitdisk"]["cloudInitNoCloud"]["userDataBase64"])
    assert user_data == default_template.DEFAULT_USER_DATA and b"password" not in user_data
    assert vm["metadata"]["labels"]["managed-by"] == "roadie"
    cm = default_template.configmap()
    assert (cm["metadata"]["namespace"], cm["metadata"]["name"]) == ("cyberdesk-system", "cyberdesk-vm-template")
    assert template.template_text(cm["data"], default_template.KEY) == default_template.TEMPLATE
    kinds = [m["kind"] for m in default_template.install_manifests()]
    assert kinds == ["Namespace", "ConfigMap"]


def test_a_long_name_still_gives_a_dns_label() -> None:
    name = "d" * 63
    assert template.vm_name(name) != template.vm_name("d" * 62)
    assert len(template.vm_name(name)) <= 63 and template.vm_name(name).startswith("cyberdesk-")


def test_empty_metadata_sections_are_filled_by_the_operator() -> None:
    vm = _vm("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nmetadata:\nspec:\n  template:\n    metadata:\n")
    assert vm["metadata"]["labels"]["app"] == "cyberdesk"
    assert vm["spec"]["template"]["metadata"]["labels"]["cyberdesk-instance"] == BODY["metadata"]["name"]
    with pytest.raises(template.NotAVirtualMachineError, match=r"spec\.template\.metadata is not a mapping"):
        _vm("apiVersion: kubevirt.io/v1\nkind: VirtualMachine\nspec: {template: {metadata: [a]}}\n")
