"""The test trees are collected without packages, so pytest imports each test module by its
basename: two test files of one name in different folders break the whole run's collection. This
fails first, naming them."""

from __future__ import annotations

import collections
import pathlib

TESTS = pathlib.Path(__file__).resolve().parents[1]


def test_every_test_module_has_a_basename_of_its_own() -> None:
    found = collections.defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        found[path.name].append(str(path.relative_to(TESTS)))
    assert found, "no test modules found"
    clashes = {name: paths for name, paths in found.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"
