"""The batch log's body format: a round trip, and hostile bodies refused with a clear error."""

from __future__ import annotations

import contextlib

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealscope import wire
from sealscope.registry import Device
from sealscope.streaming import decode_batch, encode_batch, message_id, partition_of

DEVICE = Device(device_id="ACME-V-0001", kind="valve", manufacturer="acme", model="BV-50", dn=50)
TELEMETRY = wire.Telemetry(v=1, seq=3, samples=[wire.Sample(t=1.7e9, p_in_kpa=500.0)])


def test_a_batch_round_trips_and_equal_content_has_equal_ids() -> None:
    body = encode_batch(DEVICE, TELEMETRY)
    batch = decode_batch(body)
    assert batch.device == DEVICE and batch.samples == TELEMETRY.samples and batch.seq == 3
    assert batch.first_t_s == 1.7e9
    assert message_id(body) == message_id(encode_batch(DEVICE, TELEMETRY))
    other = wire.Telemetry(v=1, seq=4, samples=TELEMETRY.samples)
    assert message_id(body) != message_id(encode_batch(DEVICE, other))


def test_partitions_cover_every_number_and_refuse_none() -> None:
    assert {partition_of(f"D-{i}", 4) for i in range(200)} == {0, 1, 2, 3}
    with pytest.raises(ValueError):
        partition_of("D-1", 0)


@given(st.binary(max_size=512))
def test_any_bytes_decode_or_fail_as_a_decode_error(body: bytes) -> None:
    # msgspec.ValidationError is a DecodeError; Device's label checks raise ValueError;
    # anything else escapes and fails the test
    with contextlib.suppress(msgspec.DecodeError, ValueError):
        decode_batch(body)


@given(
    st.dictionaries(
        st.sampled_from(["v", "device", "seq", "samples", "x"]),
        st.one_of(
            st.integers(-(2**63), 2**63 - 1),
            st.text(max_size=20),
            st.lists(st.integers(0, 9), max_size=3),
        ),
    )
)
def test_wrong_shapes_are_refused(fields: dict) -> None:
    with pytest.raises((msgspec.DecodeError, ValueError)):
        decode_batch(msgspec.msgpack.encode(fields))
