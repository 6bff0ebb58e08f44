"""The device command store on SQLite and PostgreSQL: states only move forward, however
late or repeated the gateway's reports arrive; and the status decoder refuses junk."""

from __future__ import annotations

import contextlib
import json

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from sealscope.commands import (
    CommandStatus,
    DeviceCommand,
    SqlCommandStore,
    command_status_device,
    decode_command_status,
)
from sealscope.errors import Conflict, MalformedMessage, TopicRejected

DEV = "ACME-V-000001"


def _status(state: str, t: float, attempts: int = 0, cid: str = "c-1") -> CommandStatus:
    return CommandStatus(v=1, id=cid, name="stroke_test", state=state, t=t, attempts=attempts)  # type: ignore[arg-type]


def _command(cid: str = "c-1") -> DeviceCommand:
    return DeviceCommand(
        id=cid, device_id=DEV, name="stroke_test", created_at=100.0, expires_at=200.0,
        created_by="tech", state="requested", state_t=100.0,
    )  # fmt: skip


def test_states_move_forward_only(db_engine: sa.Engine) -> None:
    store = SqlCommandStore(db_engine)
    store.add(_command())
    with pytest.raises(Conflict):
        store.add(_command())
    assert store.record_status(DEV, _status("pending", 101)) is not None
    sent = store.record_status(DEV, _status("sent", 102, attempts=1))
    assert sent is not None and (sent.state, sent.attempts) == ("sent", 1)
    again = store.record_status(DEV, _status("sent", 103, attempts=2))  # re-sent
    assert again is not None and again.attempts == 2
    assert store.record_status(DEV, _status("sent", 103, attempts=2)) is None  # repeat
    assert store.record_status(DEV, _status("pending", 104)) is None  # late, older state
    done = store.record_status(DEV, _status("succeeded", 105, attempts=2))
    assert done is not None and done.state == "succeeded" and done.state_t == 105
    assert store.record_status(DEV, _status("expired", 106)) is None  # final stays final
    assert store.record_status("OTHER-V-1", _status("failed", 107)) is None  # not its id
    (kept,) = store.list(DEV)
    assert (kept.state, kept.created_by, kept.attempts) == ("succeeded", "tech", 2)


def test_a_report_for_an_unknown_command_adds_it_and_lists_newest_first(
    db_engine: sa.Engine,
) -> None:
    store = SqlCommandStore(db_engine)
    store.add(_command("c-old"))
    added = store.record_status(DEV, _status("pending", 150, cid="c-direct"))
    assert added is not None and added.created_by == ""
    assert [c.id for c in store.list(DEV)] == ["c-direct", "c-old"]
    assert [c.id for c in store.list(DEV, limit=1)] == ["c-direct"]
    assert store.list("ACME-V-000002") == []


def test_mark_failed_only_while_requested(db_engine: sa.Engine) -> None:
    store = SqlCommandStore(db_engine)
    store.add(_command())
    failed = store.mark_failed("c-1", "not published")
    assert failed is not None and failed.state == "failed"
    assert store.mark_failed("c-1", "again") is None


def test_status_topic_and_payload() -> None:
    assert command_status_device(f"sealscope/v1/dev/{DEV}/cmd/status") == DEV
    assert command_status_device(f"sealscope/v1/dev/{DEV}/cmd") is None
    assert command_status_device(f"sealscope/v1/dev/{DEV}/telemetry") is None
    with pytest.raises(TopicRejected):
        command_status_device("sealscope/v1/dev/+/cmd/status")
    good = {"v": 1, "id": "c-1", "name": "stroke_test", "state": "sent", "t": 1.5, "attempts": 1}
    assert decode_command_status(json.dumps(good).encode()).state == "sent"
    for bad in ({**good, "state": "requested"}, {**good, "v": 2}, {**good, "id": "a/b"}):
        with pytest.raises(MalformedMessage):
            decode_command_status(json.dumps(bad).encode())


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(max_size=512) | st.text(max_size=200).map(str.encode))
def test_status_decoder_raises_only_malformed(payload: bytes) -> None:
    with contextlib.suppress(MalformedMessage):
        decode_command_status(payload)
