"""`--metrics-secure`: /metrics over HTTPS, answered only for callers the API server vouches for,
as controller-runtime's `filters.WithAuthenticationAndAuthorization` does.

Metrics say what runs in the cluster and for whom, so they are not for anyone who can reach the
pod. A caller presents a bearer token (Prometheus sends its ServiceAccount's); a TokenReview asks
the API server who it is (401 when nobody: no token, or one it refuses) and a SubjectAccessReview
whether that user may `get` the non-resource URL `/metrics` (403 when not): a ClusterRole with
`nonResourceURLs: ["/metrics"]` decides, as for the API server's own /metrics. Answers are cached
as controller-runtime caches them (who a token is: a minute; allowed: five minutes; denied: thirty
seconds), so a scrape every fifteen seconds costs no API call.

The serving certificate is `tls.crt`/`tls.key` from `--metrics-cert-dir` (cert-manager's
Secret layout), read again when the files change, or else a self-signed pair made at start. TLS
offers `http/1.1` alone in ALPN: the server speaks no HTTP/2, so HTTP/2 rapid reset
(CVE-2023-44487) cannot reach it whatever `--enable-http2` says.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import datetime
import hashlib
import ipaddress
import logging
import pathlib
import socket
import ssl
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lightkube.models.authentication_v1 import TokenReviewSpec
from lightkube.models.authorization_v1 import NonResourceAttributes, SubjectAccessReviewSpec
from lightkube.resources.authentication_v1 import TokenReview
from lightkube.resources.authorization_v1 import SubjectAccessReview

from roadie.core import client

log = logging.getLogger(__name__)

#: controller-runtime's cache lifetimes (DelegatingAuthenticatorConfig / DelegatingAuthorizerConfig)
AUTHN_TTL = 60.0
ALLOW_TTL = 300.0
DENY_TTL = 30.0
#: entries kept at most per cache (a flood of made-up tokens must not grow memory without end)
CACHE_SIZE = 4096
#: how often the certificate files are checked for a rotation (controller-runtime's certwatcher polls every 10 s)
CERT_POLL_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class User:
    """Who the API server says a token belongs to (a TokenReview's status.user)."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


Authenticate = Callable[[str], Awaitable[User | None]]
Authorize = Callable[[User, str, str], Awaitable[bool]]


class _TTLCache:
    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._entries: collections.OrderedDict[Any, tuple[float, Any]] = collections.OrderedDict()

    def get(self, key: Any) -> tuple[bool, Any]:
        found = self._entries.get(key)
        if found is None or found[0] <= self._clock():
            self._entries.pop(key, None)
            return False, None
        return True, found[1]

    def put(self, key: Any, value: Any, ttl: float) -> None:
        self._entries[key] = (self._clock() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > CACHE_SIZE:
            self._entries.popitem(last=False)


class Reviewer:
    """Asks the API server who a token is and what it may do, remembering the answers a while."""

    def __init__(
        self,
        authenticate: Authenticate | None = None,
        authorize: Authorize | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._authenticate = authenticate or token_review
        self._authorize = authorize or access_review
        self._users = _TTLCache(clock)
        self._decisions = _TTLCache(clock)

    async def user(self, token: str) -> User | None:
        key = hashlib.sha256(token.encode()).hexdigest()
        hit, user = self._users.get(key)
        if not hit:
            user = await self._authenticate(token)
            self._users.put(key, user, AUTHN_TTL)
        return user

    async def allowed(self, user: User, path: str, verb: str) -> bool:
        key = (user, path, verb)
        hit, decision = self._decisions.get(key)
        if not hit:
            decision = await self._authorize(user, path, verb)
            self._decisions.put(key, decision, ALLOW_TTL if decision else DENY_TTL)
        return bool(decision)


async def token_review(token: str) -> User | None:
    """A TokenReview (for the API server's own audience, as controller-runtime sends it)."""
    review = await client.get().create(TokenReview(spec=TokenReviewSpec(token=token)))
    status = review.status
    if status is None or not status.authenticated or status.user is None:
        return None
    info = status.user
    extra = tuple(sorted((k, tuple(v)) for k, v in (info.extra or {}).items()))
    return User(info.username or "", info.uid or "", tuple(info.groups or ()), extra)


async def access_review(user: User, path: str, verb: str) -> bool:
    """A SubjectAccessReview: may `user` do `verb` on the non-resource URL `path`?"""
    spec = SubjectAccessReviewSpec(
        user=user.name,
        uid=user.uid or None,
        groups=list(user.groups),
        extra={k: list(v) for k, v in user.extra} or None,
        nonResourceAttributes=NonResourceAttributes(path=path, verb=verb),
    )
    review = await client.get().create(SubjectAccessReview(spec=spec))
    return bool(review.status and review.status.allowed)


def middleware(reviewer: Reviewer) -> Any:
    """The aiohttp middleware in front of /metrics: 401, 403, or the handler's answer."""

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return web.Response(status=401, text="Unauthorized", headers={"WWW-Authenticate": "Bearer"})
        try:
            user = await reviewer.user(token)
        except Exception as error:
            log.warning("secure metrics: the TokenReview failed: %s", error)
            return web.Response(status=401, text="Unauthorized", headers={"WWW-Authenticate": "Bearer"})
        if user is None:
            return web.Response(status=401, text="Unauthorized", headers={"WWW-Authenticate": "Bearer"})
        verb = request.method.lower()
        try:
            allowed = await reviewer.allowed(user, request.path, verb)
        except Exception as error:
            log.warning("secure metrics: the SubjectAccessReview failed: %s", error)
            return web.Response(status=500, text="Internal Server Error")
        if not allowed:
            return web.Response(status=403, text=f"Forbidden: user {user.name!r} may not {verb} {request.path}")
        return await handler(request)

    return guard


# -- the serving certificate -------------------------------------------------------------------
def self_signed(hosts: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """A certificate and key (PEM) for this pod: a year long, P-256, for its host name, localhost
    and loopback. Scrapers of a self-signed endpoint skip verification (Prometheus'
    `insecure_skip_verify`, as kubebuilder's ServiceMonitor does) or bring a real pair."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = {socket.gethostname(), "localhost", *hosts}
    now = datetime.datetime.now(datetime.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "roadie-metrics")])
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in sorted(names) if n]
    alt += [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _files(cert_dir: str) -> tuple[pathlib.Path, pathlib.Path]:
    folder = pathlib.Path(cert_dir)
    return folder / "tls.crt", folder / "tls.key"


def _load(context: ssl.SSLContext, cert_dir: str) -> None:
    if cert_dir:
        cert, key = _files(cert_dir)
        context.load_cert_chain(cert, key)
        return
    cert_pem, key_pem = self_signed()
    # ssl reads a pair only from files: they live for the moment of loading, in a private folder
    with tempfile.TemporaryDirectory(prefix="roadie-metrics-") as folder:
        cert, key = _files(folder)
        cert.write_bytes(cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(key_pem)
        context.load_cert_chain(cert, key)


def ssl_context(cert_dir: str = "", *, http2: bool = False) -> ssl.SSLContext:
    """The metrics server's TLS: TLS 1.2 or later, the pair from `cert_dir` or a self-signed one,
    ALPN `http/1.1` only."""
    if http2:
        log.warning("--enable-http2: the metrics server speaks HTTP/1.1 only; HTTP/2 is not offered")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    _load(context, cert_dir)
    return context


def _stamp(cert_dir: str) -> tuple[float, ...]:
    with contextlib.suppress(OSError):
        return tuple(path.stat().st_mtime for path in _files(cert_dir))
    return ()


async def watch_certificates(context: ssl.SSLContext, cert_dir: str, every: float = CERT_POLL_SECONDS) -> None:
    """Load the pair again when its files change (a rotated Secret), for the handshakes after."""
    seen = _stamp(cert_dir)
    while True:
        await asyncio.sleep(every)
        stamp = _stamp(cert_dir)
        if stamp and stamp != seen:
            try:
                _load(context, cert_dir)
            except (OSError, ssl.SSLError) as error:
                log.warning("secure metrics: could not load the new certificate from %s: %s", cert_dir, error)
                continue
            seen = stamp
            log.info("secure metrics: loaded the rotated certificate from %s", cert_dir)
