"""Durations as users write them in specs: `90s`, `30m`, `4h`, `2h30m`, `1d`, `1w`.

One parser for every kind, so that `4h` means the same in a Workshop as in a Workspace retention
policy, and one regular expression that the CRD schemas use, so that the API server refuses what
this parser would refuse.
"""

from __future__ import annotations

import datetime
import re

UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}

#: For CRD schemas: number-unit pairs, at least one of them not zero (so `0s` is refused by the API
#: server as it is by parse()); Kubernetes' regular expressions have no lookahead, hence the shape.
PATTERN = r"^([0-9]+[wdhms])*0*[1-9][0-9]*[wdhms]([0-9]+[wdhms])*$"
#: The longest duration accepted: anything longer is surely a typo, and would overflow dates.
MAXIMUM = datetime.timedelta(days=3650)
_PAIR = re.compile(r"([0-9]+)([wdhms])")
_SHAPE = re.compile(r"^([0-9]+[wdhms])+$")

EXAMPLES = "90s, 30m, 4h, 2h30m, 1d or 1w"


class DurationError(ValueError):
    """A duration that cannot be read; the message says what would be accepted."""


def parse(text: str) -> datetime.timedelta:
    """Parse a duration; raise DurationError with a message a user can act on."""
    value = text.strip() if isinstance(text, str) else text
    if not isinstance(value, str) or not _SHAPE.match(value):
        raise DurationError(
            f"invalid duration {text!r}: write a number followed by a unit (w, d, h, m, s), such as {EXAMPLES}"
        )
    seconds = sum(int(number) * UNITS[unit] for number, unit in _PAIR.findall(value))
    if seconds <= 0:
        raise DurationError(f"invalid duration {text!r}: it must be longer than zero, such as {EXAMPLES}")
    if seconds > MAXIMUM.total_seconds():
        raise DurationError(f"invalid duration {text!r}: at most {MAXIMUM.days}d is accepted")
    return datetime.timedelta(seconds=seconds)


def render(delta: datetime.timedelta) -> str:
    """The shortest canonical spelling, for messages and status (`2h30m`, `1d`)."""
    remaining = int(delta.total_seconds())
    if remaining <= 0:
        return "0s"
    parts = []
    for unit, size in UNITS.items():
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
