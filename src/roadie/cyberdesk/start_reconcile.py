"""StartCyberdeskOperator: the original's bootstrap object, accepted and answered, never acted on.

The original operator was started by creating one of these, which made it install the Cyberdesk
CRD. Roadie serves that CRD itself, so the object starts nothing, creates nothing and deletes
nothing; its status says so (`phase: NotNeeded`), so a manifest written for the original applies
and the user can see that it was not needed.
"""

from __future__ import annotations

from typing import Any

from roadie.core import status as status_writer
from roadie.core.controller import Controller
from roadie.cyberdesk import models, status


async def reconcile(body: dict[str, Any]) -> float | None:
    await status_writer.write(models.START_API, body, status.start_operator_status(body["metadata"].get("generation")))
    return None


controller = Controller(api=models.START_API, reconcile=reconcile)
