"""The preview metrics cannot drift: the active gauge is the size of a set (so the same object
seen twice counts once, and a restart refills it from the first listing), and the `pr_number`
series of `reconcile_total` goes with the last object of that number. Also the seed's names,
types, labels and histogram buckets as served on `/metrics`."""

from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families

from roadie.core import metrics as core_metrics
from roadie.preview import metrics


def _key() -> metrics.Key:
    return ("ns", f"obj-{uuid.uuid4().hex[:8]}")


def _families() -> dict[str, object]:
    payload, _ = core_metrics.exposition()
    return {family.name: family for family in text_string_to_metric_families(payload.decode())}


def test_seed_names_types_and_labels_are_served() -> None:
    metrics.CREATED.labels("feature/x")
    metrics.FAILED.labels("deployment")
    families = _families()
    expected = {
        "preview_environments_created": "counter",
        "preview_environments_failed": "counter",
        "preview_environments_active": "gauge",
        "preview_environments_reconcile": "counter",
        "preview_environment_creation_duration_seconds": "histogram",
        "preview_environments_expired": "counter",
    }
    for name, kind in expected.items():
        assert families[name].type == kind, name  # type: ignore[attr-defined]
    assert metrics.CREATED._labelnames == ("branch_name",)
    assert metrics.FAILED._labelnames == ("step",)
    assert metrics.RECONCILES._labelnames == ("pr_number",)
    assert metrics.CREATION_SECONDS._upper_bounds == [1, 2, 5, 10, 20, 30, 60, float("inf")]


def test_active_gauge_counts_each_object_once() -> None:
    start = metrics.ACTIVE._value.get()
    a, b = _key(), _key()
    metrics.set_live(a, True)
    metrics.set_live(a, True)
    metrics.set_live(b, True)
    assert metrics.ACTIVE._value.get() == start + 2
    metrics.set_live(a, False)
    metrics.forget(b)
    metrics.forget(b)
    assert metrics.ACTIVE._value.get() == start


def test_reconcile_series_goes_with_the_last_object_of_its_number() -> None:
    a, b = _key(), _key()
    metrics.reconciled(a, 777001)
    metrics.reconciled(b, 777001)
    assert metrics.RECONCILES.labels("777001")._value.get() == 2
    metrics.forget(a)
    assert ("777001",) in metrics.RECONCILES._metrics, "another object still has that number"
    metrics.forget(b)
    assert ("777001",) not in metrics.RECONCILES._metrics


def test_a_renumbered_object_drops_its_old_series() -> None:
    a = _key()
    metrics.reconciled(a, 777002)
    metrics.reconciled(a, 777003)
    assert ("777002",) not in metrics.RECONCILES._metrics
    assert ("777003",) in metrics.RECONCILES._metrics
    metrics.forget(a)
