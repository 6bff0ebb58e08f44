"""The console line ``up`` writes for each alert that opens or clears, read from the alert
change feed of a real SQLite store (so a change made by another process shows too)."""

from __future__ import annotations

import asyncio
import io
import re

from composition.alert_delivery import alert_console
from sealscope.alerts import SqliteAlertStore
from sealscope.config import Settings
from tests.waiting import wait_until


async def test_console_logs_open_and_clear_not_the_rest(settings: Settings) -> None:
    writer = SqliteAlertStore(settings.state_db)  # another connection, as another process
    reader = SqliteAlertStore(settings.state_db)
    out = io.StringIO()
    try:
        writer.raise_alert(
            device_id="ACME-V-000001", cause="old", category="failure", severity=5,
            summary="before the console started", evidence={}, t=1.0,
        )  # fmt: skip
        async with alert_console(reader, out=out, every_s=0.02):
            advice = "Seat leakage is 3.4 times its commissioning baseline. " * 5
            alert = await asyncio.to_thread(
                lambda: writer.raise_alert(
                    device_id="ACME-V-000002", cause="seat_leak",
                    category="out_of_specification", severity=4, summary="Seat leak",
                    evidence={"advice": advice}, t=1_764_590_000.0,
                )
            )  # fmt: skip
            await wait_until(lambda: "OPEN" in out.getvalue(), 10, "the open line")
            writer.acknowledge(alert.id, actor="tech", comment="on my way")
            writer.clear(device_id="ACME-V-000002", cause="seat_leak", t=1_764_590_100.0)
            await wait_until(lambda: "CLEARED" in out.getvalue(), 10, "the clear line")
    finally:
        writer.close()
        reader.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2, lines  # nothing for the acknowledgement or the older alert
    opened, cleared = lines
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ  alert OPEN  ACME-V-000002  seat_leak  "
        r"severity 4 \(out of specification\)  #\d+  Seat leakage is 3\.4 times.{40,}…",
        opened,
    ), opened
    assert len(opened) < 250  # one readable line: the advice's head only
    assert "alert CLEARED  ACME-V-000002  seat_leak" in cleared
