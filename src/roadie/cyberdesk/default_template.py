"""The VM template Roadie installs, so a Cyberdesk works on a fresh cluster, and the ConfigMap that
carries it (what the original's deployment manifest installed).

Kept as a Python string rather than a YAML file beside it because the package ships no data files
but its code; the text is exactly what lands in the ConfigMap, comments included, so an operator
of the cluster reads the variables where they are used.
"""

from __future__ import annotations

from typing import Any

NAMESPACE = "cyberdesk-system"
NAME = "cyberdesk-vm-template"
KEY = "vm-template.yaml"

TEMPLATE = """\
# A Cyberdesk's VirtualMachine. Roadie renders it for each Cyberdesk:
#   ${vm_name}           cyberdesk-<name of the Cyberdesk>
#   ${namespace}         the Cyberdesk's namespace (the VM lives there)
#   ${cyberdesk_name}    the Cyberdesk's name
#   ${managed_by}        who manages the VM (an operator setting)
#   ${user_data_base64}  cloud-init user data, base64 (spec.userDataSecretRef, or a minimal default)
# Variables are substituted inside values only, never as YAML text: no value can add keys.
# Roadie sets the name, namespace, owner and labels itself; $$ writes a literal dollar.
apiVersion: kubevirt.io/v1
kind: VirtualMachine
metadata:
  name: ${vm_name}
  namespace: ${namespace}
  labels:
    app: cyberdesk
    cyberdesk-instance: ${cyberdesk_name}
    managed-by: ${managed_by}
spec:
  runStrategy: Always
  template:
    metadata:
      labels:
        app: cyberdesk
        cyberdesk-instance: ${cyberdesk_name}
        kubevirt.io/domain: ${vm_name}
    spec:
      terminationGracePeriodSeconds: 30
      domain:
        cpu:
          cores: 1
        resources:
          requests:
            memory: 1Gi
        devices:
          disks:
            - name: containerdisk
              disk:
                bus: virtio
            - name: cloudinitdisk
              disk:
                bus: virtio
          interfaces:
            - name: default
              masquerade: {}
      networks:
        - name: default
          pod: {}
      volumes:
        - name: containerdisk
          containerDisk:
            image: quay.io/containerdisks/fedora:41
        - name: cloudinitdisk
          cloudInitNoCloud:
            userDataBase64: ${user_data_base64}
"""

#: The user data of a Cyberdesk without `userDataSecretRef`: no password, no key, nothing secret.
DEFAULT_USER_DATA = b"#cloud-config\nssh_pwauth: false\n"


def configmap(namespace: str = NAMESPACE, name: str = NAME, key: str = KEY) -> dict[str, Any]:
    """The template ConfigMap that `roadie install` applies (create it if absent: an edited
    template on the cluster is the operator's choice and must not be reset by a reinstall)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "roadie", "app.kubernetes.io/component": "cyberdesk-template"},
        },
        "data": {key: TEMPLATE},
    }


def install_manifests(namespace: str = NAMESPACE, name: str = NAME, key: str = KEY) -> list[dict[str, Any]]:
    """The template's namespace and ConfigMap, in the order to apply them."""
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        configmap(namespace, name, key),
    ]
