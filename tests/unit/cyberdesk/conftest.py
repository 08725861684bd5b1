"""Fixtures of the Cyberdesk tests: a real PostgreSQL server (one per session; a test that stops
the database starts its own), and a local HTTP receiver that stands for a webhook endpoint or for
Supabase's PostgREST, and can fail its first requests to show retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from tests.support import postgres, receiver


@pytest.fixture(scope="session")
def pg() -> Iterator[postgres.PostgresServer]:
    with postgres.server() as server:
        yield server


@pytest.fixture
def own_pg() -> Iterator[postgres.PostgresServer]:
    """A server of this test's own, for tests that stop and start it."""
    with postgres.server() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[receiver.Receiver]:
    async with receiver.running() as recorder:
        yield recorder
