"""Names and label values derived from user input: always valid for Kubernetes, stable, distinct.

Children are named after user-chosen strings (workshop names, git branches such as
`feature/my-feature`), and an invalid name only shows up as an API error at apply time. These
tests check the three helpers against Kubernetes' own regular expressions on valid input (kept as
it is), on awkward input (slashes, unicode, only punctuation, hundreds of characters, and a
seeded random sample), and that two inputs cut to the same prefix still get different results.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable

import pytest

from roadie.core import naming

DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
MAX = 63


def is_dns_label(text: str, max_length: int = MAX) -> bool:
    return len(text) <= max_length and DNS_1123_LABEL.fullmatch(text) is not None


def is_label_value(text: str) -> bool:
    return len(text) <= MAX and LABEL_VALUE.fullmatch(text) is not None


def random_strings(count: int) -> list[str]:
    """A fixed sample of odd strings: mixed case, punctuation, spaces, non-ASCII, any length."""
    alphabet = "abcXYZ019-_./ :@!\u00dc\u00ef\u00e9\u4e2d\u0130\u212a\U0001f600"
    rng = random.Random(20240501)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 150))) for _ in range(count)]


AWKWARD = [
    "feature/my-feature",
    "Feature/My_Feature",
    "feature/\u00dcn\u00efcode_work",
    "x" * 300,
    "A" * 300,
    "a" + "-" * 200 + "b",
    "-leading-and-trailing-",
    "!!!",
    "/",
    "---",
    "...",
    "___",
    "\u4e2d\u6587",
    "\U0001f600",
    "\u212a",  # KELVIN SIGN, whose lower case is an ASCII 'k'
    "  spaces  around  ",
    "UPPER",
    "dots.in.name",
    "tab\there",
    "",
]

VALID_DNS_LABELS = ["a", "0", "abc", "my-workshop", "a1-b2", "0abc", "a--b", "x" * MAX]
VALID_LABEL_VALUES = ["", "a", "A", "My_Label.v1", "a-b_c.d", "0", "x" * MAX, "v1.2.3"]


@pytest.mark.parametrize("text", VALID_DNS_LABELS)
def test_dns_label_keeps_a_valid_label(text: str) -> None:
    assert naming.dns_label(text) == text


@pytest.mark.parametrize("text", AWKWARD)
def test_dns_label_is_always_valid(text: str) -> None:
    assert is_dns_label(naming.dns_label(text))


@pytest.mark.parametrize("max_length", [10, 20, 40, 63])
def test_dns_label_respects_a_shorter_limit(max_length: int) -> None:
    for text in ["x" * 300, "feature/my-feature-with-a-long-name", "ok"]:
        assert is_dns_label(naming.dns_label(text, max_length), max_length)


def test_dns_label_respects_a_limit_smaller_than_the_hash() -> None:
    assert len(naming.dns_label("abcdefghijklmnopqrstuvwxyz", 6)) <= 6


def test_dns_label_of_a_branch_keeps_its_readable_part() -> None:
    result = naming.dns_label("feature/my-feature")
    assert result.startswith("feature-my-feature-")
    assert result != naming.dns_label("feature-my-feature")
    assert naming.dns_label("Intro - R").startswith("intro-r-")


@pytest.mark.parametrize("text", VALID_LABEL_VALUES)
def test_label_value_keeps_a_valid_value(text: str) -> None:
    assert naming.label_value(text) == text


@pytest.mark.parametrize("text", AWKWARD)
def test_label_value_is_always_valid(text: str) -> None:
    assert is_label_value(naming.label_value(text))


@pytest.mark.parametrize(("parent", "suffix"), [("ws", "deployment"), ("my-workshop", "pvc"), ("a", "b")])
def test_child_name_joins_valid_parts_unchanged(parent: str, suffix: str) -> None:
    assert naming.child_name(parent, suffix) == f"{parent}-{suffix}"


@pytest.mark.parametrize("parent", AWKWARD)
@pytest.mark.parametrize("suffix", ["pvc", "deployment", "p100-credentials"])
def test_child_name_is_always_valid_and_keeps_the_suffix(parent: str, suffix: str) -> None:
    result = naming.child_name(parent, suffix)
    assert is_dns_label(result)
    assert result.endswith(f"-{suffix}")


def test_child_name_with_a_long_suffix_is_still_a_valid_label() -> None:
    assert is_dns_label(naming.child_name("workshop", "s" * 56))


DETERMINISM_SCRIPT = """
import json, sys
from roadie.core import naming
texts = json.loads(sys.stdin.read())
print(json.dumps([[naming.dns_label(t), naming.label_value(t), naming.child_name(t, "deployment")] for t in texts]))
"""


def names_in_a_fresh_interpreter(texts: list[str], hash_seed: str) -> list[list[str]]:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-c", DETERMINISM_SCRIPT],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=60,
    )
    result: list[list[str]] = json.loads(done.stdout)
    return result


def test_helpers_are_deterministic_across_processes() -> None:
    """A child's name must be the same after an operator restart, whatever Python's hash seed."""
    texts = [text for text in AWKWARD if text][:60]
    here = [[naming.dns_label(t), naming.label_value(t), naming.child_name(t, "deployment")] for t in texts]
    assert names_in_a_fresh_interpreter(texts, "1") == here
    assert names_in_a_fresh_interpreter(texts, "2") == here


@pytest.mark.parametrize(
    "helper",
    [naming.dns_label, naming.label_value, lambda text: naming.child_name(text, "deployment")],
    ids=["dns_label", "label_value", "child_name"],
)
def test_inputs_cut_to_the_same_prefix_stay_distinct(helper: Callable[[str], str]) -> None:
    long_prefix = "workshop-" * 20
    inputs = [f"{long_prefix}{tail}" for tail in ("one", "two", "three", "x", "y")]
    results = [helper(text) for text in inputs]
    assert len(set(results)) == len(inputs)


@pytest.mark.parametrize(
    "helper",
    [naming.dns_label, lambda text: naming.child_name(text, "svc")],
    ids=["dns_label", "child_name"],
)
def test_inputs_that_clean_to_the_same_text_stay_distinct(helper: Callable[[str], str]) -> None:
    inputs = ["feature/x", "feature_x", "Feature-X", "feature-x", "feature--x", "feature x"]
    results = [helper(text) for text in inputs]
    assert len(set(results)) == len(inputs)


def test_label_values_that_clean_to_the_same_text_stay_distinct() -> None:
    inputs = ["feature/x", "feature x", "feature-x", "feature:x"]
    results = [naming.label_value(text) for text in inputs]
    assert len(set(results)) == len(inputs)


def test_random_strings_always_give_valid_results() -> None:
    for text in random_strings(300):
        assert is_dns_label(naming.dns_label(text)), text
        assert is_label_value(naming.label_value(text)), text
        child = naming.child_name(text, "deployment")
        assert is_dns_label(child), text
        assert child.endswith("-deployment"), text


def test_distinct_random_inputs_give_distinct_results() -> None:
    sample = sorted(set(random_strings(500)))
    assert len({naming.dns_label(text) for text in sample}) == len(sample)
    assert len({naming.label_value(text) for text in sample}) == len(sample)
