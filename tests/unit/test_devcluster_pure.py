"""The local control plane's parts that need no API server: certificates, kubeconfigs, the
manifests of nodes, the default StorageClass and provisioned volumes, and the process supervisor.

Each of them fails late and obscurely when wrong (an API server refusing every client, a claim
Pending forever, a stray etcd holding a port), so they are checked here, in milliseconds, before
the cluster tests ever start one.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import time
from typing import cast

import lightkube
import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lightkube.models.core_v1 import PersistentVolumeClaimSpec, VolumeResourceRequirements
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import PersistentVolumeClaim

from roadie.devcluster import kubeconfigs, nodes, pki, processes, provisioner


def load_cert(path: pathlib.Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> list[str]:
    return [str(a.value) for a in name.get_attributes_for_oid(oid)]


@pytest.fixture
def certs(tmp_path: pathlib.Path) -> pki.Pki:
    return pki.ensure(tmp_path / "pki")


def test_ca_is_a_self_signed_ca(certs: pki.Pki) -> None:
    ca = load_cert(certs.ca_cert)

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    ca.verify_directly_issued_by(ca)


def test_every_certificate_verifies_against_the_ca(certs: pki.Pki) -> None:
    ca = load_cert(certs.ca_cert)
    leaves = [certs.serving_cert, *(certs.client_cert(stem) for stem in pki.CLIENTS)]

    for path in leaves:
        load_cert(path).verify_directly_issued_by(ca)


def test_a_certificate_of_another_ca_does_not_verify(tmp_path: pathlib.Path, certs: pki.Pki) -> None:
    other = pki.ensure(tmp_path / "other")

    with pytest.raises(InvalidSignature):  # same CA name, other key: only the signature tells
        load_cert(other.client_cert("admin")).verify_directly_issued_by(load_cert(certs.ca_cert))


def test_each_key_matches_its_certificate(certs: pki.Pki) -> None:
    stems = ["apiserver", *pki.CLIENTS]
    for stem in stems:
        key = serialization.load_pem_private_key((certs.folder / f"{stem}.key").read_bytes(), None)
        cert = load_cert(certs.folder / f"{stem}.crt")
        assert key.public_key() == cert.public_key(), stem
        assert (certs.folder / f"{stem}.key").stat().st_mode & 0o777 == 0o600


def test_serving_certificate_names_loopback_and_the_in_cluster_service(certs: pki.Pki) -> None:
    cert = load_cert(certs.serving_cert)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value

    assert {"localhost", "kubernetes.default.svc"} <= set(sans.get_values_for_type(x509.DNSName))
    assert {"127.0.0.1", "10.96.0.1"} <= {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_client_subjects_carry_the_identities_rbac_binds(certs: pki.Pki) -> None:
    admin = load_cert(certs.client_cert("admin")).subject
    controller_manager = load_cert(certs.client_cert("controller-manager")).subject
    scheduler = load_cert(certs.client_cert("scheduler")).subject

    assert attribute(admin, NameOID.ORGANIZATION_NAME) == ["system:masters"]
    assert attribute(admin, NameOID.COMMON_NAME) == ["roadie-admin"]
    assert attribute(controller_manager, NameOID.COMMON_NAME) == ["system:kube-controller-manager"]
    assert attribute(controller_manager, NameOID.ORGANIZATION_NAME) == []
    assert attribute(scheduler, NameOID.COMMON_NAME) == ["system:kube-scheduler"]
    usage = load_cert(certs.client_cert("admin")).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(usage.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_service_account_key_pair_matches(certs: pki.Pki) -> None:
    key = serialization.load_pem_private_key(certs.sa_key.read_bytes(), None)
    public = serialization.load_pem_public_key(certs.sa_pub.read_bytes())

    assert key.public_key() == public


def test_ensure_again_keeps_every_file(certs: pki.Pki) -> None:
    before = {path.name: path.read_bytes() for path in certs.folder.iterdir()}

    pki.ensure(certs.folder)

    assert {path.name: path.read_bytes() for path in certs.folder.iterdir()} == before
    assert len(before) == 2 + 2 + 2 + 2 * len(pki.CLIENTS)  # CA, serving, SA, clients


def test_ensure_recreates_only_what_is_missing(certs: pki.Pki) -> None:
    ca_before = certs.ca_cert.read_bytes()
    admin_before = certs.client_cert("admin").read_bytes()
    certs.client_cert("scheduler").unlink()

    pki.ensure(certs.folder)

    assert certs.ca_cert.read_bytes() == ca_before
    assert certs.client_cert("admin").read_bytes() == admin_before
    load_cert(certs.client_cert("scheduler")).verify_directly_issued_by(load_cert(certs.ca_cert))


def test_kubeconfig_points_at_the_server_with_the_component_identity(certs: pki.Pki) -> None:
    text = kubeconfigs.render("https://127.0.0.1:16443", certs, "scheduler", "roadie-demo")
    config = yaml.safe_load(text)

    assert config["current-context"] == "roadie-demo"
    (entry,) = config["clusters"]
    assert entry["cluster"]["server"] == "https://127.0.0.1:16443"
    assert entry["cluster"]["certificate-authority"] == str(certs.ca_cert)
    (user,) = config["users"]
    assert user["user"]["client-certificate"] == str(certs.client_cert("scheduler"))
    assert user["user"]["client-key"] == str(certs.client_key("scheduler"))
    (context,) = config["contexts"]
    assert context["context"] == {"cluster": entry["name"], "user": user["name"]}


def test_written_kubeconfig_is_private_and_readable_by_lightkube(tmp_path: pathlib.Path, certs: pki.Pki) -> None:
    path = kubeconfigs.write(tmp_path / "sub" / "kubeconfig", "https://127.0.0.1:16643", certs, "admin", "c")

    assert path.stat().st_mode & 0o777 == 0o600
    loaded = lightkube.KubeConfig.from_file(path).get()
    assert loaded.cluster.server == "https://127.0.0.1:16643"


def test_node_manifest_is_a_kwok_managed_worker() -> None:
    node = nodes.node_manifest(2)

    assert node.metadata is not None and node.status is not None
    assert node.metadata.name == "kwok-node-2"
    assert node.metadata.annotations is not None
    assert node.metadata.annotations[nodes.MANAGED_ANNOTATION] == nodes.MANAGED_VALUE
    assert node.metadata.labels is not None
    assert node.metadata.labels["kubernetes.io/hostname"] == "kwok-node-2"
    assert node.status.capacity == nodes.CAPACITY
    assert node.status.allocatable == nodes.CAPACITY
    assert (
        nodes.node_manifest(3).metadata.labels["topology.kubernetes.io/zone"]
        != node.metadata.labels["topology.kubernetes.io/zone"]
    )


def test_storage_class_is_the_default_and_ours() -> None:
    storage_class = nodes.storage_class_manifest()

    assert storage_class.metadata is not None
    assert storage_class.metadata.name == "standard"
    assert storage_class.metadata.annotations == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert storage_class.provisioner == nodes.PROVISIONER
    assert storage_class.volumeBindingMode == "Immediate"


def claim(size: str | None = "5Gi") -> PersistentVolumeClaim:
    return PersistentVolumeClaim(
        metadata=ObjectMeta(name="data", namespace="team-a", uid="1234-abcd"),
        spec=PersistentVolumeClaimSpec(
            accessModes=["ReadWriteOnce"],
            storageClassName="standard",
            resources=VolumeResourceRequirements(requests={"storage": size} if size else None),
        ),
    )


def test_volume_is_pre_bound_to_the_claim_with_its_size(tmp_path: pathlib.Path) -> None:
    volume = provisioner.volume_for(claim("5Gi"), tmp_path)

    assert volume.metadata is not None and volume.spec is not None
    assert volume.metadata.name == "pvc-1234-abcd"
    assert volume.metadata.annotations == {provisioner.PROVISIONED_BY: nodes.PROVISIONER}
    assert volume.spec.capacity == {"storage": "5Gi"}
    assert volume.spec.storageClassName == "standard"
    assert volume.spec.accessModes == ["ReadWriteOnce"]
    ref = volume.spec.claimRef
    assert ref is not None
    assert (ref.kind, ref.namespace, ref.name, ref.uid) == (
        "PersistentVolumeClaim",
        "team-a",
        "data",
        "1234-abcd",
    )
    assert volume.spec.hostPath is not None
    assert pathlib.Path(volume.spec.hostPath.path).parent == tmp_path


def test_volume_of_a_claim_without_a_size_gets_one_gibibyte(tmp_path: pathlib.Path) -> None:
    volume = provisioner.volume_for(claim(None), tmp_path)

    assert volume.spec is not None
    assert volume.spec.capacity == {"storage": "1Gi"}


def test_a_claim_whose_provisioning_fails_is_tried_again_until_it_succeeds(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tries: list[bool] = []
    pauses: list[float] = []

    def provision(_api: object, _claim: object, _root: object, _exists: bool) -> None:
        tries.append(True)
        if len(tries) < 4:
            raise RuntimeError("the API server is restarting")

    monkeypatch.setattr(provisioner, "provision", provision)
    monkeypatch.setattr(provisioner.time, "sleep", pauses.append)
    monkeypatch.setattr(provisioner, "RETRY_MAX", 3.0)
    provisioner.provision_until_done(cast(lightkube.Client, object()), claim(), tmp_path)
    assert len(tries) == 4, "a watch event comes once: the claim is not left waiting"
    assert pauses == [1.0, 2.0, 3.0], "the pause doubles, up to its cap"


def is_running(pid: int) -> bool:
    """Alive and not a zombie: a zombie is a leftover entry, but the process itself has gone."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


@pytest.fixture
def sleep_binary() -> str:
    found = shutil.which("sleep")
    if found is None:
        pytest.skip("no `sleep` on PATH")
    return found


def test_start_find_stop_a_process(tmp_path: pathlib.Path, sleep_binary: str) -> None:
    state = tmp_path / "state"

    started = processes.start(state, "sleeper", [sleep_binary, "30"])
    try:
        assert is_running(started.pid)
        assert processes.find(state, "sleeper") == started
        assert processes.start(state, "sleeper", [sleep_binary, "30"]).pid == started.pid  # no second one
        assert processes.known(state) == ["sleeper"]
        assert "starting" in processes.log_path(state, "sleeper").read_text()
    finally:
        assert processes.stop(state, "sleeper", grace=5) is True

    assert not pathlib.Path(f"/proc/{started.pid}").exists()  # gone, and reaped: not even a zombie
    assert processes.find(state, "sleeper") is None
    assert processes.known(state) == []
    assert processes.stop(state, "sleeper") is False


def test_stop_kills_a_process_that_ignores_term(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state"
    shell = shutil.which("sh")
    assert shell is not None
    script = "trap '' TERM; echo trapped; while :; do sleep 0.1; done"
    started = processes.start(state, "stubborn", [shell, "-c", script])
    log = processes.log_path(state, "stubborn")
    deadline = time.monotonic() + 10
    while "trapped" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)

    assert processes.stop(state, "stubborn", grace=0.5) is True

    assert not is_running(started.pid)


def test_a_recycled_pid_is_not_taken_for_ours(tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state"
    processes.run_dir(state).mkdir(parents=True)
    record = {"pid": os.getpid(), "executable": "/nowhere/etcd"}  # alive, but not an etcd
    (processes.run_dir(state) / "etcd.pid").write_text(json.dumps(record))

    assert processes.find(state, "etcd") is None
    assert processes.stop(state, "etcd") is False  # and never signalled: this test still runs
