"""Durations as users write them (`4h`, `2h30m`, `1d`): the one parser every kind shares.

A Workshop's lifetime comes from this parser, and the CRD refuses durations with `PATTERN`, so
these tests pin what is accepted, what is refused (and that the refusal tells the user what to
write instead), that `render` gives back a spelling `parse` reads as the same length, and that
the regular expression and the parser agree about which strings are durations.
"""

from __future__ import annotations

import datetime
import re

import pytest

from roadie.core import durations

HOUR = 3600
DAY = 24 * HOUR


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("4h", 4 * HOUR),
        ("2h30m", 2 * HOUR + 30 * 60),
        ("1d", DAY),
        ("90s", 90),
        ("30m", 30 * 60),
        ("1w", 7 * DAY),
        ("1d12h", DAY + 12 * HOUR),
        ("30m2h", 2 * HOUR + 30 * 60),  # largest unit first is not required
        ("1h1h", 2 * HOUR),
        ("007m", 7 * 60),
        ("1w2d3h4m5s", 7 * DAY + 2 * DAY + 3 * HOUR + 4 * 60 + 5),
    ],
)
def test_parse_reads_number_unit_pairs(text: str, seconds: int) -> None:
    assert durations.parse(text) == datetime.timedelta(seconds=seconds)


@pytest.mark.parametrize("text", [" 4h", "4h ", "  2h30m\t", "\n1d\n"])
def test_parse_ignores_surrounding_whitespace(text: str) -> None:
    assert durations.parse(text) == durations.parse(text.strip())


@pytest.mark.parametrize("text", ["4 hours", "", "   ", "4", "h", "-1h", "4H", "2h 30m", "1.5h", "4hours", "h4", "1y"])
def test_parse_refuses_malformed_text_and_says_what_is_accepted(text: str) -> None:
    with pytest.raises(durations.DurationError) as caught:
        durations.parse(text)
    message = str(caught.value)
    assert repr(text) in message
    assert durations.EXAMPLES in message
    assert "w, d, h, m, s" in message


@pytest.mark.parametrize("text", ["0s", "0h0m", "0w"])
def test_parse_refuses_zero_and_names_the_input(text: str) -> None:
    with pytest.raises(durations.DurationError) as caught:
        durations.parse(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "longer than zero" in message


def test_duration_error_is_a_value_error() -> None:
    # callers that only know ValueError (pydantic validators, argument parsing) still catch it
    with pytest.raises(ValueError, match="invalid duration"):
        durations.parse("soon")


def test_parse_refuses_a_duration_too_long_to_represent_with_duration_error() -> None:
    assert re.fullmatch(durations.PATTERN, "9999999999d")
    with pytest.raises(durations.DurationError):
        durations.parse("9999999999d")


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("4h", "4h"),
        ("2h30m", "2h30m"),
        ("150m", "2h30m"),
        ("90s", "1m30s"),
        ("1d12h", "1d12h"),
        ("36h", "1d12h"),
        ("14d", "2w"),
        ("30m2h", "2h30m"),
        ("1w2d3h4m5s", "1w2d3h4m5s"),
    ],
)
def test_render_gives_the_canonical_spelling_that_parses_back(text: str, canonical: str) -> None:
    parsed = durations.parse(text)
    assert durations.render(parsed) == canonical
    assert durations.parse(durations.render(parsed)) == parsed


@pytest.mark.parametrize("seconds", [1, 59, 60, 61, 3599, 3600, 86399, 86400, 604799, 604800, 1234567])
def test_render_round_trips_every_whole_number_of_seconds(seconds: int) -> None:
    delta = datetime.timedelta(seconds=seconds)
    assert durations.parse(durations.render(delta)) == delta


def test_render_of_nothing_or_less_is_zero_seconds() -> None:
    assert durations.render(datetime.timedelta(0)) == "0s"
    assert durations.render(datetime.timedelta(seconds=-5)) == "0s"


def test_render_drops_fractions_of_a_second() -> None:
    assert durations.render(datetime.timedelta(seconds=61, milliseconds=900)) == "1m1s"


AGREEMENT_TABLE = [
    "4h",
    "2h30m",
    "1d",
    "90s",
    "1w",
    "1d12h",
    "30m2h",
    "1h1h",
    "10s",
    "4 hours",
    "",
    "4",
    "h",
    "-1h",
    "4H",
    "2h 30m",
    "1.5h",
    "+4h",
    "4h!",
    "1y",
]


@pytest.mark.parametrize("text", AGREEMENT_TABLE)
def test_pattern_agrees_with_parse(text: str) -> None:
    """What the API server admits (PATTERN) is what the operator can parse, and the reverse.

    Surrounding whitespace is left out: parse strips it, and the API server never adds any.
    """
    try:
        durations.parse(text)
    except durations.DurationError:
        parsed = False
    else:
        parsed = True
    assert bool(re.fullmatch(durations.PATTERN, text)) == parsed


@pytest.mark.parametrize("text", ["0s", "0h0m"])
def test_pattern_refuses_zero_durations_as_parse_does(text: str) -> None:
    with pytest.raises(durations.DurationError):
        durations.parse(text)
    assert re.fullmatch(durations.PATTERN, text) is None
