"""Readings read components' counters at scrape time, into a registry of the process's own."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from sealscope.metrics import ProcessMetrics, Reading


def _families(metrics: ProcessMetrics) -> dict[str, object]:
    text = metrics.exposition().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_readings_read_the_counters_when_scraped_not_when_registered() -> None:
    counts = {"seen": 0}
    metrics = ProcessMetrics(process_collectors=False)
    metrics.add(Reading("demo_seen", "counter", "seen", lambda: counts["seen"]))
    counts["seen"] = 7
    family = _families(metrics)["demo_seen"]
    assert [(s.name, s.value) for s in family.samples] == [("demo_seen_total", 7.0)]  # type: ignore[attr-defined]


def test_readings_labelled_gauge_summary_and_absent_value() -> None:
    metrics = ProcessMetrics(process_collectors=False)
    metrics.add(
        Reading(
            "demo_lag_seconds", "gauge", "lag", lambda: {"0": 1.5, "1": 0.25}, label="partition"
        ),
        Reading("demo_write_seconds", "summary", "writes", lambda: (4, 2.0)),
        Reading("demo_absent", "gauge", "not yet known", lambda: None),
    )
    families = _families(metrics)
    lag = {s.labels["partition"]: s.value for s in families["demo_lag_seconds"].samples}  # type: ignore[attr-defined]
    assert lag == {"0": 1.5, "1": 0.25}
    write = {s.name: s.value for s in families["demo_write_seconds"].samples}  # type: ignore[attr-defined]
    assert write == {"demo_write_seconds_count": 4.0, "demo_write_seconds_sum": 2.0}
    assert "demo_absent" not in families


def test_process_metrics_registries_are_separate() -> None:
    one, two = ProcessMetrics(), ProcessMetrics()
    one.add(Reading("demo_only_here", "gauge", "one", lambda: 1))
    assert "demo_only_here" in _families(one)
    assert "demo_only_here" not in _families(two)
    assert "process_cpu_seconds" in _families(two)  # the process's own figures
