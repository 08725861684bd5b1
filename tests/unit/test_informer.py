"""The informer against a scripted API server: the server-side label selector is sent, a paged
list fills the cache, a watch from the listed version applies changes, bookmarks advance the
version, `410 Gone` starts over with a list whose differences become events, indexes follow the
objects, and the operator's own write (taken in with `observe`) makes its echo no news."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest

from roadie.core import informer
from roadie.core.informer import Informer, Source

PODS = Source("", "v1", "Pod", "pods")


def _pod(name: str, version: int, parent: str = "p") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "resourceVersion": str(version),
            "annotations": {"roadie.dev/parent": parent},
            "managedFields": [{"manager": "someone"}],
        }
    }


class FakeApi:
    """Answers lists and watches from a script, recording what was asked."""

    def __init__(self) -> None:
        self.requests: list[httpx2.Request] = []
        self.lists: list[dict[str, Any]] = []
        self.watches: list[list[dict[str, Any]] | int] = []
        self.idle = asyncio.Event()

    async def handle(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        if request.url.params.get("watch") != "true":
            return httpx2.Response(200, json=self.lists.pop(0))
        if not self.watches:
            self.idle.set()
            await asyncio.sleep(3600)
        script = self.watches.pop(0)
        if isinstance(script, int):
            return httpx2.Response(script, json={"kind": "Status", "code": script, "message": "gone"})
        return httpx2.Response(200, content="\n".join(json.dumps(e) for e in script).encode())


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeApi, httpx2.AsyncClient]]:
    fake = FakeApi()
    async with httpx2.AsyncClient(transport=httpx2.MockTransport(fake.handle), base_url="https://k8s") as http:
        yield fake, http


async def test_list_watch_bookmark_gone_and_relist(api: tuple[FakeApi, httpx2.AsyncClient]) -> None:
    fake, http = api
    fake.lists = [
        {"metadata": {"resourceVersion": "10", "continue": "more"}, "items": [_pod("a", 5)]},
        {"metadata": {"resourceVersion": "10"}, "items": [_pod("b", 6)]},
        {"metadata": {"resourceVersion": "30"}, "items": [_pod("a", 11), _pod("c", 20, parent="q")]},
    ]
    fake.watches = [
        [
            {"type": "MODIFIED", "object": _pod("a", 11)},
            {"type": "DELETED", "object": _pod("b", 12)},
            {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "15"}}},
        ],
        410,
    ]
    events: list[tuple[str, str]] = []
    informer = Informer(PODS, http, selector="app.kubernetes.io/managed-by=roadie", watch_timeout=60)
    informer.add_index("parent", lambda o: [o["metadata"]["annotations"]["roadie.dev/parent"]])
    informer.add_handler(lambda kind, obj, old: events.append((kind, obj["metadata"]["name"])))
    task = informer.start()
    await asyncio.wait_for(fake.idle.wait(), 5)
    task.cancel()

    assert events == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b"), ("ADDED", "c")]
    assert all(r.url.params["labelSelector"] == "app.kubernetes.io/managed-by=roadie" for r in fake.requests)
    watches = [r.url.params for r in fake.requests if r.url.params.get("watch") == "true"]
    assert [w["resourceVersion"] for w in watches] == ["10", "15", "30"], "from the list, the bookmark, the relist"
    assert all(w["allowWatchBookmarks"] == "true" for w in watches)
    assert fake.requests[1].url.params["continue"] == "more", "the list is paged"
    assert sorted(o["metadata"]["name"] for o in informer.objects()) == ["a", "c"]
    assert [o["metadata"]["name"] for o in informer.by_index("parent", "p")] == ["a"]
    assert [o["metadata"]["name"] for o in informer.by_index("parent", "q")] == ["c"]
    assert "managedFields" not in informer.get("ns", "a")["metadata"], "trimmed"  # type: ignore[index]
    assert informer.get("ns", "a")["kind"] == "Pod"  # type: ignore[index]


async def test_the_echo_of_an_observed_write_is_no_news(api: tuple[FakeApi, httpx2.AsyncClient]) -> None:
    fake, http = api
    fake.lists = [{"metadata": {"resourceVersion": "10"}, "items": [_pod("a", 5)]}]
    fake.watches = [[{"type": "MODIFIED", "object": _pod("a", 7)}]]
    events: list[str] = []
    informer = Informer(PODS, http)
    informer.add_handler(lambda kind, obj, old: events.append(obj["metadata"]["resourceVersion"]))
    await informer._relist()
    informer.observe(_pod("a", 7))  # the response to the operator's own write
    informer.observe(_pod("a", 6))  # an older copy never replaces a newer one
    assert informer.get("ns", "a")["metadata"]["resourceVersion"] == "7"  # type: ignore[index]
    await informer._watch()
    assert events == ["5"], "only the listing; the watch's echo of version 7 woke nothing"


async def test_a_resource_the_cluster_does_not_serve_does_not_hold_the_operator_up(
    api: tuple[FakeApi, httpx2.AsyncClient],
) -> None:
    """A kind whose children's CRDs are missing (KubeVirt not installed) must not keep the
    operator from becoming ready for every other kind."""
    fake, _ = api

    async def not_found(request: httpx2.Request) -> httpx2.Response:
        fake.requests.append(request)
        return httpx2.Response(404, json={"kind": "Status", "code": 404, "message": "the server could not find"})

    async with httpx2.AsyncClient(transport=httpx2.MockTransport(not_found), base_url="https://k8s") as missing:
        informer = Informer(PODS, missing)
        task = informer.start()
        await asyncio.wait_for(informer.synced.wait(), 5)
        assert len(informer) == 0 and informer.healthy
        task.cancel()


async def test_a_compact_source_hands_out_copies_and_slims_what_it_is_told(
    api: tuple[FakeApi, httpx2.AsyncClient],
) -> None:
    _, http = api
    compact = Informer(Source("", "v1", "Secret", "secrets"), http)
    compact.observe(_pod("a", 3))
    first = compact.get("ns", "a")
    assert first is not None and first["metadata"]["resourceVersion"] == "3"
    assert "managedFields" not in first["metadata"]
    first["metadata"]["name"] = "changed by a careless reader"
    again = compact.get("ns", "a")
    assert again is not None and again["metadata"]["name"] == "a", "the cache is not a reader's to change"
    assert isinstance(compact._store[("ns", "a")][1], bytes)

    def slim(obj: dict[str, Any]) -> dict[str, Any]:
        obj["spec"] = {}
        return obj

    pods = Informer(Source("", "v1", "Pod", "pods", compact=False, slim=slim), http)
    pods.observe({**_pod("b", 4), "spec": {"volumes": [{"name": "token"}]}, "status": {"phase": "Running"}})
    held = pods.get("ns", "b")
    assert held is not None and held["spec"] == {} and held["status"] == {"phase": "Running"}
    assert pods.by_index("missing", "x") == []
    pods.observe({**_pod("b", 2), "spec": {}})
    assert pods.get("ns", "b") is held, "an older version than the one held is ignored"


def test_watch_lines_split_across_chunks_are_joined_and_a_partial_one_waits() -> None:
    pending = bytearray()
    first = b'{"type":"ADDED","object":{"a":1}}\n{"type":"MOD'
    assert informer.lines(pending, first) == [b'{"type":"ADDED","object":{"a":1}}']
    assert informer.lines(pending, b"IFIED") == []
    assert informer.lines(pending, b'","object":{}}\n\n{"x"') == [b'{"type":"MODIFIED","object":{}}']
    assert bytes(pending) == b'{"x"'
