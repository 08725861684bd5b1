"""What the HTTP sinks share: which answers are worth retrying.

A 2xx is done; a timeout, a connection error, 408, 425, 429 or a 5xx is the server's passing
trouble and is retried with backoff; any other 4xx says the request itself is wrong (a bad key, a
missing table), which no retry fixes, so it is counted as rejected and logged with the body.
"""

from __future__ import annotations

import httpx

from roadie.cyberdesk.sink import queue

RETRIED = frozenset({408, 425, 429})


class TransientError(Exception):
    """The server answered with a status worth retrying."""


def check(response: httpx.Response, what: str) -> None:
    if response.is_success:
        return
    body = " ".join(response.text.split())[:300]
    message = f"{what}: HTTP {response.status_code} {body}".rstrip()
    if response.status_code in RETRIED or response.status_code >= 500:
        raise TransientError(message)
    raise queue.RejectedError(message)
