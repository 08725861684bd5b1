"""The local cluster's certificates: a CA, the API server's serving pair, the service-account key,
and one client certificate per component.

A real cluster authenticates every component by certificate and authorizes it by RBAC; the local
one does the same, so that the operator meets the same 403s it would meet in production. EC keys
keep generation to milliseconds, which matters for a warm `roadie cluster up` under 20 seconds.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import pathlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=365)

#: Client identities: file stem -> (common name, organisation). RBAC's bootstrap roles bind the
#: controller-manager and scheduler names; the admin and kwok (a kubelet stand-in) are cluster admins.
CLIENTS: dict[str, tuple[str, str | None]] = {
    "admin": ("roadie-admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", None),
    "scheduler": ("system:kube-scheduler", None),
    "kwok": ("kwok-controller", "system:masters"),
}

SERVING_DNS = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
SERVING_IPS = ("127.0.0.1", "10.96.0.1")


@dataclasses.dataclass(frozen=True)
class Pki:
    folder: pathlib.Path

    @property
    def ca_cert(self) -> pathlib.Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> pathlib.Path:
        return self.folder / "ca.key"

    @property
    def serving_cert(self) -> pathlib.Path:
        return self.folder / "apiserver.crt"

    @property
    def serving_key(self) -> pathlib.Path:
        return self.folder / "apiserver.key"

    @property
    def sa_key(self) -> pathlib.Path:
        return self.folder / "sa.key"

    @property
    def sa_pub(self) -> pathlib.Path:
        return self.folder / "sa.pub"

    def client_cert(self, stem: str) -> pathlib.Path:
        return self.folder / f"{stem}.crt"

    def client_key(self, stem: str) -> pathlib.Path:
        return self.folder / f"{stem}.key"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: pathlib.Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _name(common: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _leaf(
    pki: Pki,
    stem: str,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> None:
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = _key()
    builder = _builder(subject, ca_cert.subject, key.public_key()).add_extension(
        x509.ExtendedKeyUsage([usage]), critical=False
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write_key(pki.folder / f"{stem}.key", key)
    (pki.folder / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure(folder: pathlib.Path) -> Pki:
    """Create whatever is missing; certificates already there are kept, so kubeconfigs stay valid."""
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder)
    if not pki.ca_cert.exists():
        key = _key()
        name = _name("roadie-local-ca")
        cert = (
            _builder(name, name, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        _write_key(pki.ca_key, key)
        pki.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    if not pki.serving_cert.exists():
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in SERVING_DNS]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in SERVING_IPS]
        _leaf(pki, "apiserver", _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans)
    for stem, (common, org) in CLIENTS.items():
        if not pki.client_cert(stem).exists():
            _leaf(pki, stem, _name(common, org), ExtendedKeyUsageOID.CLIENT_AUTH)
    if not pki.sa_key.exists():
        key = _key()
        _write_key(pki.sa_key, key)
        pki.sa_pub.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return pki
