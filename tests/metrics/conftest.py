"""The ingest tests' real Mosquitto and SQLite registry, for the metrics of a real ingest."""

from tests.ingest.conftest import broker, registry

__all__ = ["broker", "registry"]
