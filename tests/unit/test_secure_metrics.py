"""`--metrics-secure` without a cluster: who gets /metrics, what the reviews cost, and the TLS
the server offers.

Metrics name every workshop, preview and desktop in the cluster, so an endpoint that answers a
caller without a token, or one the API server would refuse, leaks them. The reviews are faked
here (the cluster test asks a real API server); the server is the real one, on loopback.
"""

from __future__ import annotations

import asyncio
import pathlib
import socket
import ssl
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509

from roadie.core import probes, secure_metrics
from roadie.core.secure_metrics import User

READER = User("system:serviceaccount:monitoring:prometheus", "u-1", ("system:serviceaccounts",))
STRANGER = User("system:serviceaccount:default:default", "u-2")
TOKENS = {"reader-token": READER, "stranger-token": STRANGER}


class FakeApi:
    """TokenReview and SubjectAccessReview answers, counted."""

    def __init__(self) -> None:
        self.token_reviews = 0
        self.access_reviews: list[tuple[str, str, str]] = []
        self.now = 0.0

    async def authenticate(self, token: str) -> User | None:
        self.token_reviews += 1
        return TOKENS.get(token)

    async def authorize(self, user: User, path: str, verb: str) -> bool:
        self.access_reviews.append((user.name, path, verb))
        return user == READER and path == "/metrics" and verb == "get"

    def reviewer(self) -> secure_metrics.Reviewer:
        return secure_metrics.Reviewer(self.authenticate, self.authorize, clock=lambda: self.now)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served() -> AsyncIterator[tuple[FakeApi, int]]:
    api = FakeApi()
    port = free_port()
    runners = await probes.serve(
        "127.0.0.1",
        port,
        0,
        metrics_ssl=secure_metrics.ssl_context(),
        metrics_middlewares=[secure_metrics.middleware(api.reviewer())],
    )
    yield api, port
    for runner in runners:
        await runner.cleanup()


async def scrape(port: int, token: str | None = None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with aiohttp.ClientSession() as session:
        url = f"https://127.0.0.1:{port}/metrics"
        async with session.get(url, headers=headers, ssl=False) as response:
            return response.status, await response.text()


async def test_a_reader_gets_the_metrics(served: tuple[FakeApi, int]) -> None:
    api, port = served
    status, body = await scrape(port, "reader-token")
    assert status == 200
    assert "roadie_reconcile_total" in body or "roadie_leader" in body
    assert api.access_reviews == [(READER.name, "/metrics", "get")]


@pytest.mark.parametrize("token", [None, "", "made-up-token"])
async def test_no_token_or_one_the_api_server_refuses_is_401(served: tuple[FakeApi, int], token: str | None) -> None:
    api, port = served
    status, body = await scrape(port, token)
    assert status == 401
    assert "roadie_" not in body
    assert api.access_reviews == []


async def test_a_known_user_without_the_right_is_403(served: tuple[FakeApi, int]) -> None:
    api, port = served
    status, body = await scrape(port, "stranger-token")
    assert status == 403
    assert STRANGER.name in body and "roadie_" not in body
    assert api.access_reviews == [(STRANGER.name, "/metrics", "get")]


async def test_a_basic_or_malformed_authorization_header_is_401(served: tuple[FakeApi, int]) -> None:
    api, port = served
    async with aiohttp.ClientSession() as session:
        for header in ("Basic cmVhZGVyOnB3", "Bearer", "reader-token"):
            url = f"https://127.0.0.1:{port}/metrics"
            async with session.get(url, headers={"Authorization": header}, ssl=False) as response:
                assert response.status == 401, header
    assert api.token_reviews == 0


async def test_repeated_scrapes_are_answered_from_the_cache() -> None:
    api = FakeApi()
    reviewer = api.reviewer()
    for _ in range(5):
        user = await reviewer.user("reader-token")
        assert user is not None and await reviewer.allowed(user, "/metrics", "get")
        api.now += 10  # a scrape every ten seconds, for fifty seconds
    assert api.token_reviews == 1 and len(api.access_reviews) == 1
    api.now = secure_metrics.AUTHN_TTL + 1
    await reviewer.user("reader-token")
    assert api.token_reviews == 2  # who a token is, asked again after a minute
    assert len(api.access_reviews) == 1  # an allowance lasts five


async def test_a_denial_is_remembered_briefly() -> None:
    api = FakeApi()
    reviewer = api.reviewer()
    assert not await reviewer.allowed(STRANGER, "/metrics", "get")
    api.now = secure_metrics.DENY_TTL - 1
    assert not await reviewer.allowed(STRANGER, "/metrics", "get")
    assert len(api.access_reviews) == 1
    api.now = secure_metrics.DENY_TTL + 1
    await reviewer.allowed(STRANGER, "/metrics", "get")
    assert len(api.access_reviews) == 2  # a binding just granted counts within thirty seconds
    assert await reviewer.user("made-up-token") is None
    assert await reviewer.user("made-up-token") is None
    assert api.token_reviews == 1  # refusals are cached too: a flood of bad tokens is not a flood of reviews


async def test_a_failing_review_is_not_an_answer() -> None:
    async def broken(_: str) -> User | None:
        raise OSError("the API server is unreachable")

    async def secret(_: web.Request) -> web.Response:
        return web.Response(text="secret")

    app = web.Application(middlewares=[secure_metrics.middleware(secure_metrics.Reviewer(broken))])
    app.router.add_get("/metrics", secret)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{port}/metrics"
            async with session.get(url, headers={"Authorization": "Bearer x"}) as response:
                assert response.status == 401
                assert "secret" not in await response.text()
    finally:
        await runner.cleanup()


def _handshake(port: int, alpn: list[str]) -> tuple[str | None, x509.Certificate]:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(alpn)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return tls.selected_alpn_protocol(), x509.load_der_x509_certificate(der)


async def test_tls_offers_http1_only_even_to_an_http2_client(served: tuple[FakeApi, int]) -> None:
    _, port = served
    chosen, cert = await asyncio.to_thread(_handshake, port, ["h2", "http/1.1"])
    assert chosen == "http/1.1"
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)


async def test_enable_http2_still_offers_no_http2() -> None:
    context = secure_metrics.ssl_context(http2=True)
    port = free_port()
    runners = await probes.serve("127.0.0.1", port, 0, metrics_ssl=context)
    try:
        chosen, _ = await asyncio.to_thread(_handshake, port, ["h2"])
        assert chosen is None  # the server does not speak h2, so it never agrees to it
    finally:
        for runner in runners:
            await runner.cleanup()


def _write_pair(folder: pathlib.Path, host: str) -> None:
    cert, key = secure_metrics.self_signed((host,))
    (folder / "tls.crt").write_bytes(cert)
    (folder / "tls.key").write_bytes(key)


async def test_a_certificate_from_the_folder_is_served_and_reloaded_when_rotated(tmp_path: pathlib.Path) -> None:
    _write_pair(tmp_path, "first.example")
    context = secure_metrics.ssl_context(str(tmp_path))
    port = free_port()
    runners = await probes.serve("127.0.0.1", port, 0, metrics_ssl=context)
    watching = asyncio.create_task(secure_metrics.watch_certificates(context, str(tmp_path), every=0.05))
    try:
        _, cert = await asyncio.to_thread(_handshake, port, ["http/1.1"])
        first = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "first.example" in first.get_values_for_type(x509.DNSName)
        await asyncio.sleep(0.1)
        _write_pair(tmp_path, "second.example")
        for _ in range(40):
            await asyncio.sleep(0.05)
            _, cert = await asyncio.to_thread(_handshake, port, ["http/1.1"])
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            if "second.example" in names.get_values_for_type(x509.DNSName):
                break
        else:
            pytest.fail("the rotated certificate was never served")
    finally:
        watching.cancel()
        for runner in runners:
            await runner.cleanup()


async def test_secure_metrics_and_probes_cannot_share_a_port() -> None:
    with pytest.raises(ValueError, match="port of their own"):
        await probes.serve("127.0.0.1", 18999, 18999, metrics_ssl=secure_metrics.ssl_context())


async def test_probes_stay_plain_http_beside_secure_metrics() -> None:
    metrics_port, health_port = free_port(), free_port()
    runners = await probes.serve("127.0.0.1", metrics_port, health_port, metrics_ssl=secure_metrics.ssl_context())
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{health_port}/healthz") as response:
                assert response.status in (200, 500)  # answered in plain HTTP, whatever its verdict
            with pytest.raises(aiohttp.ClientError):  # plain HTTP to the TLS port gets nothing
                async with session.get(f"http://127.0.0.1:{metrics_port}/metrics") as response:
                    await response.read()
    finally:
        for runner in runners:
            await runner.cleanup()
