"""Gateway fixtures: a running ``Gateway`` on free ports, subscribers, an aiocoap client."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiocoap
import pytest

from composition.servers import MosquittoServer
from gateway import Gateway
from tests.gateway.helpers import Subscriber, free_udp_port


@pytest.fixture
def subscribe(mosquitto: MosquittoServer) -> Iterator[Callable[..., Subscriber]]:
    made: list[Subscriber] = []

    def make(topic_filter: str, server: MosquittoServer | None = None) -> Subscriber:
        broker = server or mosquitto
        sub = Subscriber(broker.host, broker.port, topic_filter)
        made.append(sub)
        return sub

    yield make
    for sub in made:
        sub.close()


@pytest.fixture
def gateway_factory(tmp_path: Path, mosquitto: MosquittoServer) -> Callable[..., Any]:
    """``async with gateway_factory(**overrides) as gw``: a gateway on a free UDP port."""
    data_dir = tmp_path / "gw"
    coap_port = free_udp_port()

    @asynccontextmanager
    async def make(
        *, server: MosquittoServer | None = None, **overrides: Any
    ) -> AsyncIterator[Gateway]:
        broker = server or mosquitto
        kwargs: dict[str, Any] = {
            "data_dir": data_dir,
            "state_db": data_dir / "sealscope.db",
            "mqtt_host": broker.host,
            "mqtt_port": broker.port,
            "client_id": f"test-gw-{uuid.uuid4().hex[:8]}",
            "coap_host": "127.0.0.1",
            "coap_port": coap_port,
            "drain_timeout_s": 2.0,
            "expiry_interval_s": 0.05,
        }
        kwargs.update(overrides)
        async with Gateway(**kwargs) as gw:
            yield gw

    return make


@pytest.fixture
async def coap() -> AsyncIterator[aiocoap.Context]:
    context = await aiocoap.Context.create_client_context()
    yield context
    await context.shutdown()
