"""Prometheus metrics of one process: a registry of its own and a loopback HTTP endpoint.

Components keep plain counters (``IngestStats``, ``ForwarderStats``, ...); nothing here
increments anything on the hot path. A ``Readings`` collector reads those objects when
Prometheus scrapes, so a process with metrics off pays nothing, and tests can build as many
registries as they like (no global registry, no side effects at import).

The endpoint is a port of its own (``metrics_port``), not a route on the API: ingest and
the gateway have no API, and scrapers do not sign in. It binds to loopback unless
``metrics_host`` says otherwise (docker-compose binds it inside the container network).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, cast

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

__all__ = ["MetricsServer", "ProcessMetrics", "Reading", "Readings"]

Kind = Literal["counter", "gauge", "summary"]


@dataclass(frozen=True)
class Reading:
    """One metric family read at scrape time.

    ``read`` returns the value, or for a labelled family ``{label value: value}``; for a
    summary ``(count, sum)`` (or a dict of them). None leaves the family out of this scrape.
    """

    name: str  # without the ``_total`` of a counter: prometheus_client adds it
    kind: Kind
    help: str
    read: Callable[[], object]
    label: str | None = None


@dataclass(eq=False)  # the registry keys collectors by identity
class Readings(Collector):
    """A collector made of ``Reading``s (a component's stats, read when scraped)."""

    readings: list[Reading] = field(default_factory=list)

    def collect(self) -> Iterator[Metric]:
        for reading in self.readings:
            value = reading.read()
            if value is None:
                continue
            if isinstance(value, dict):
                yield _family(reading, value)
            else:
                yield _family(reading, {None: value})

    def describe(self) -> Iterable[Metric]:
        # names without reading anything, so registering never touches the component
        for reading in self.readings:
            yield _family(reading, {})


def _family(reading: Reading, values: Mapping[object, object]) -> Metric:
    """The family of ``reading`` with one sample per label value (None: no label)."""
    labelled = reading.label is not None and None not in values
    labels = [reading.label] if labelled and reading.label is not None else None

    def label_values(key: object) -> list[str]:
        return [] if key is None else [str(key)]

    if reading.kind == "summary":
        summary = SummaryMetricFamily(reading.name, reading.help, labels=labels)
        for key, value in values.items():
            count, total = cast(tuple[int, float], value)
            summary.add_metric(label_values(key), count_value=count, sum_value=total)
        return summary
    family_type = CounterMetricFamily if reading.kind == "counter" else GaugeMetricFamily
    family = family_type(reading.name, reading.help, labels=labels)
    for key, value in values.items():
        family.add_metric(label_values(key), float(cast(float, value)))
    return family


class ProcessMetrics:
    """The metrics one process exposes: its own registry, with process and platform data."""

    def __init__(self, *, process_collectors: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        if process_collectors:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)

    def add(self, *readings: Reading) -> None:
        self.registry.register(Readings(list(readings)))

    def exposition(self) -> bytes:
        """The text format, as the endpoint serves it."""
        return generate_latest(self.registry)

    @contextlib.contextmanager
    def serve(self, host: str, port: int) -> Iterator[MetricsServer]:
        """``GET /metrics`` on ``host:port`` (port 0: a free one) while the block runs."""
        httpd, thread = start_http_server(port, addr=host, registry=self.registry)
        server = MetricsServer(host=host, port=httpd.server_address[1], _thread=thread)
        try:
            yield server
        finally:
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5.0)


@dataclass(frozen=True)
class MetricsServer:
    host: str
    port: int
    _thread: threading.Thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"
