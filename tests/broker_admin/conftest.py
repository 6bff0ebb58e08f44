"""The dynsec broker shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.broker_admin.broker import DynsecBroker, start_dynsec_broker


@pytest.fixture(scope="module")
def dynsec_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynsecBroker]:
    broker = start_dynsec_broker(tmp_path_factory.mktemp("dynsec"))
    try:
        yield broker
    finally:
        broker.server.stop()
