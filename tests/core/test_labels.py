"""The label rule for registry text fields, in the core (``Device``) and as a function."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sealscope.errors import PointsRejected
from sealscope.labels import check_label
from sealscope.registry import Device
from sealscope.storage import Point, Series
from sealscope.storage.lineprotocol import encode_points


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("site", "a\nb", "U+000A"),
        ("site", "a\r", "U+000D"),
        ("region", "\tx", "U+0009"),
        ("batch", "x\u2028y", "U+2028"),
        ("model", "a\u00a0b", "U+00A0"),  # no-break space
        ("firmware", "1.0\ue000", "U+E000"),  # private use
        ("manufacturer", "a\\b", "backslash"),
        ("site", "trailing ", "leading or trailing space"),
        ("site", "e\u0301", "NFC"),
        ("site", "x" * 129, "at most 128"),
        ("firmware", "1" * 65, "at most 64"),
        ("device_id", "", "must not be empty"),
    ],
)
def test_device_refuses_bad_label_with_value_error_naming_the_field(
    field: str, value: str, reason: str
) -> None:
    fields: dict[str, object] = {
        "device_id": "ACME-1",
        "kind": "valve",
        "manufacturer": "acme",
        "model": "BV",
        field: value,
    }
    with pytest.raises(ValueError, match=f"^{field}: .*{re.escape(reason)}"):
        Device(**fields)  # type: ignore[arg-type]


def test_device_accepts_printable_unicode_labels() -> None:
    device = Device("ACME-1", "valve", "Yongjia Valve", "Q41F-16C DN80", site="永嘉 3号厂")
    assert device.site == "永嘉 3号厂"
    assert Device("P", "pump", "", "").model == ""  # offline tools make bare devices


@given(st.text(max_size=40))
def test_label_rule_admits_only_what_line_protocol_carries(value: str) -> None:
    try:
        check_label("site", value)
    except ValueError:
        return
    # a label the registry accepts always reaches InfluxDB as written
    series = Series("valve", (("device_id", "ACME-1"), ("site", value)))
    try:
        encode_points([Point(series, 1, {"p_in_kpa": 1.0})])
    except PointsRejected as exc:  # pragma: no cover - the failure being looked for
        pytest.fail(f"label {value!r} passed the rule but not line protocol: {exc}")
