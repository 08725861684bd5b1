"""A client-side limit on API calls (client-go's QPS and burst), and a count of what was sent.

Without it, a restart with ten thousand objects, or a burst of events after an outage, sends as
fast as the event loop can: the API server then answers 429 to everyone, the operator's own
writes included. A token bucket in front of every request spreads such a storm at the configured
rate while leaving ordinary traffic (well under the burst) untouched. The limit sits on the HTTP
client's request hook, so every request the operator makes, lightkube's typed calls and the
informers' raw lists and watches alike, passes through one bucket and is counted once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from roadie.core import metrics


class TokenBucket:
    """`qps` tokens a second, at most `burst` saved up; `acquire` waits for one (FIFO-ish)."""

    def __init__(self, qps: float, burst: int, clock: Any = time.monotonic) -> None:
        self.qps = qps
        self.burst = max(1, burst)
        self._clock = clock
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.qps)
        self._stamp = now

    def wait_time(self) -> float:
        """Seconds until a token is available (0 if one is now); takes nothing."""
        self._refill()
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.qps

    async def acquire(self) -> float:
        """Take a token, waiting if need be; returns how long it waited."""
        if self.qps <= 0:  # unlimited
            return 0.0
        waited = 0.0
        async with self._lock:
            while (delay := self.wait_time()) > 0:
                waited += delay
                await asyncio.sleep(delay)
            self._tokens -= 1
        return waited


def verb_of(method: str, params: Any, path: str) -> str:
    """The API server's verb for a request, as `apiserver_request_total` names it."""
    if method == "GET":
        if str(params.get("watch", "")).lower() in ("1", "true"):
            return "WATCH"
        parts = [p for p in path.split("/") if p]
        # /api/v1/<plural> or /apis/<g>/<v>/<plural> (optionally namespaces/<ns>/<plural>): a list
        tail = parts[2:] if parts and parts[0] == "api" else parts[3:]
        if tail[:1] == ["namespaces"] and len(tail) >= 3:
            tail = tail[2:]
        return "LIST" if len(tail) == 1 else "GET"
    return method


def install(http_client: Any, bucket: TokenBucket) -> None:
    """Put the bucket and the request counter in front of an httpx client's every request."""

    async def before(request: Any) -> None:
        waited = await bucket.acquire()
        if waited:
            metrics.API_THROTTLED_SECONDS.inc(waited)
        # only a GET's query says what it is (watch or not); parsing every write's query cost a
        # fortieth of the operator's CPU while a thousand Workshops were created
        params = request.url.params if request.method == "GET" else {}
        verb = verb_of(request.method, params, request.url.path)
        if verb == "PATCH" and "apply-patch" in request.headers.get("content-type", ""):
            verb = "APPLY"
        metrics.API_REQUESTS.labels(verb).inc()

    hooks = dict(http_client.event_hooks)
    hooks["request"] = [*hooks.get("request", []), before]
    http_client.event_hooks = hooks
