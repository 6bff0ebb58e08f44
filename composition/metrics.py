"""Which process exposes which metrics: ingest, detection, delivery and the gateway.

Each function maps a component's own counters to ``Reading``s, read when Prometheus
scrapes (see ``sealscope.metrics``). Names follow Prometheus conventions: ``sealscope_``,
the component, what is counted, the unit, ``_total`` on counters (added by the client).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from sealscope.config import Settings
from sealscope.metrics import MetricsServer, ProcessMetrics, Reading

if TYPE_CHECKING:
    from gateway import Gateway
    from ingest import IngestService
    from sealscope.delivery import Dispatcher
    from sealscope.streaming import BatchPublisher

__all__ = [
    "api_readings",
    "batch_log_readings",
    "delivery_readings",
    "gateway_readings",
    "ingest_readings",
    "serving_metrics",
]

log = logging.getLogger(__name__)

# in-process detection is one partition; detector workers report theirs by number
LOCAL_PARTITION = "local"


def api_readings(app: Any) -> list[Reading]:
    """The API's live stream and device commands (read from ``app.state``: the hub exists
    once the app's lifespan started; until then the families are left out)."""

    def hub(attr: str) -> Callable[[], object]:
        def read() -> object:
            found = getattr(app.state, "stream_hub", None)
            return None if found is None else getattr(found, attr)

        return read

    def published() -> object:
        broker = getattr(app.state, "broker", None)
        return None if broker is None else broker.published

    return [
        Reading(
            "sealscope_api_stream_connections", "gauge", "open live streams", hub("connections")
        ),
        Reading(
            "sealscope_api_stream_dropped_clients",
            "counter",
            "live stream clients dropped for falling behind",
            hub("dropped_clients"),
        ),
        Reading(
            "sealscope_api_stream_dropped_readings",
            "counter",
            "readings not streamed because the hub's own queue was full",
            hub("dropped_readings"),
        ),
        Reading(
            "sealscope_api_commands_published",
            "counter",
            "device commands the broker acknowledged",
            published,
        ),
    ]


def ingest_readings(ingest: IngestService) -> list[Reading]:
    s = ingest.stats

    def batch_write() -> tuple[int, float]:
        return s.batches_stored, s.batch_write_s

    counters = [
        ("received", "received", "MQTT messages received from the broker"),
        ("acknowledged", "acked", "messages acknowledged to the broker, after the spool fsync"),
        ("spooled", "spooled", "messages appended to the spool"),
        ("processed", "processed", "spooled messages decoded (or dead-lettered)"),
        ("points_stored", "points_stored", "points written to the telemetry store"),
        ("dead_lettered", "dead_letters", "messages kept as dead letters"),
        ("poison", "poison", "dead letters whose handling raised or crashed the process"),
        ("store_retries", "store_retries", "store writes retried while it was unavailable"),
        ("backpressure_waits", "backpressure_waits", "times the MQTT thread waited for room"),
    ]
    readings = [
        Reading(f"sealscope_ingest_{name}", "counter", text, partial(getattr, s, attr))
        for name, attr, text in counters
    ]
    readings += [
        Reading(
            "sealscope_ingest_spool_bytes",
            "gauge",
            "bytes spooled and not yet stored",
            lambda: ingest.spool.used_bytes(),  # register once ingest has started
        ),
        Reading(
            "sealscope_ingest_spool_max_bytes",
            "gauge",
            "the spool's bound; at it ingest holds the broker back",
            lambda: ingest.settings.spool_max_bytes,
        ),
        Reading(
            "sealscope_ingest_batch_write_seconds",
            "summary",
            "time to write a batch to the store, retries included",
            batch_write,
        ),
        Reading(
            "sealscope_ingest_batch_lag_seconds",
            "gauge",
            "arrival to stored, of the oldest message in the last stored batch",
            lambda: s.last_batch_lag_s,
        ),
    ]
    if ingest.detection is not None:
        readings.append(
            Reading(
                "sealscope_detector_lag_seconds",
                "gauge",
                "arrival to seen by the detectors, of the oldest message in the last batch",
                lambda: {LOCAL_PARTITION: s.last_detected_lag_s},
                label="partition",
            )
        )
    return readings


def batch_log_readings(publisher: BatchPublisher) -> list[Reading]:
    """Ingest's side of the batch log to detector workers (``SEALSCOPE_NATS_URL``)."""
    s = publisher.stats
    return [
        Reading(
            "sealscope_ingest_logged",
            "counter",
            "stored telemetry messages put on the batch log",
            lambda: s.published,
        ),
        Reading(
            "sealscope_ingest_logged_duplicates",
            "counter",
            "messages the batch log already had (a replay, or another ingest instance)",
            lambda: s.duplicates,
        ),
        Reading(
            "sealscope_ingest_log_retries",
            "counter",
            "rounds of batch log publishes retried while NATS did not acknowledge",
            lambda: s.retries,
        ),
    ]


def delivery_readings(dispatcher: Dispatcher) -> list[Reading]:
    return [
        Reading(
            "sealscope_delivery_attempts",
            "counter",
            "alert delivery attempts (webhook, MQTT, e-mail)",
            lambda: dispatcher.sent,
        ),
        Reading(
            "sealscope_delivery_failures",
            "counter",
            "alert delivery attempts that failed (retried or dead)",
            lambda: dispatcher.failed,
        ),
    ]


def gateway_readings(gateway: Gateway) -> list[Reading]:
    """Of a started gateway: its CoAP resource's and its forwarder's counters."""
    coap, forwarder = gateway.resource.stats, gateway.forwarder.stats
    counters = [
        (coap, "coap_accepted", "accepted", "CoAP uplinks accepted"),
        (coap, "coap_duplicates", "duplicates", "CoAP uplinks recognised as retries"),
        (coap, "coap_unauthorized", "unauthorized", "CoAP uplinks refused for their key"),
        (coap, "coap_bad_frames", "bad_frames", "CoAP uplinks that did not decode"),
        (coap, "coap_unavailable", "unavailable", "CoAP uplinks answered 5.03 (spool full)"),
        (coap, "coap_errors", "errors", "CoAP uplinks that raised"),
        (coap, "coap_commands_sent", "commands_sent", "downlink commands sent with a response"),
        (forwarder, "spooled", "spooled", "messages written to the gateway's spool"),
        (forwarder, "published", "published", "messages the broker acknowledged"),
        (forwarder, "refused", "refused", "messages the broker refused (dead-lettered)"),
    ]
    readings = [
        Reading(f"sealscope_gateway_{name}", "counter", text, partial(getattr, stats, attr))
        for stats, name, attr, text in counters
    ]
    readings.append(
        Reading(
            "sealscope_gateway_spool_bytes",
            "gauge",
            "bytes spooled and not yet acknowledged by the broker",
            gateway.forwarder.backlog,
        )
    )
    return readings


@contextlib.contextmanager
def serving_metrics(settings: Settings, metrics: ProcessMetrics) -> Iterator[MetricsServer | None]:
    """Serve ``metrics`` while the block runs, when ``metrics_port`` is set."""
    if settings.metrics_port is None:
        yield None
        return
    with metrics.serve(settings.metrics_host, settings.metrics_port) as server:
        log.info("metrics: %s", server.url)
        yield server
