"""Test-suite wide settings: cluster tests are ordered after the unit tests, which are fast."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: "/cluster/" in str(item.path))
