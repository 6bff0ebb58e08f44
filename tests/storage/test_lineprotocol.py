from __future__ import annotations

from sealscope.storage import Point, Series
from sealscope.storage.lineprotocol import encode_points


def test_line_protocol_escapes_and_sorts_tags_and_drops_empty_ones() -> None:
    series = Series(
        "valve",
        (("site", "plant 1,north"), ("device_id", "ACME-V-1"), ("batch", ""), ("model", "a=b")),
    )
    line = encode_points([Point(series, 1_700_000_000_000_000_000, {"p_in_kpa": 812})])
    assert line == (
        r"valve,device_id=ACME-V-1,model=a\=b,site=plant\ 1\,north p_in_kpa=812.0"
        " 1700000000000000000"
    )


def test_line_protocol_keeps_float_precision_and_field_order() -> None:
    series = Series("pump", (("device_id", "P-1"),))
    points = [
        Point(series, 1, {"leak_mm3s": 0.1, "temp_c": -3.25}),
        Point(series, 2, {"vib_mms": 1e-7}),
    ]
    lines = encode_points(points).split("\n")
    assert lines == [
        "pump,device_id=P-1 leak_mm3s=0.1,temp_c=-3.25 1",
        "pump,device_id=P-1 vib_mms=1e-07 2",
    ]
    # every field is a float, so a field never changes type between writes
    assert "i " not in encode_points([Point(series, 3, {"p_in_kpa": 5})])


def test_series_identity_ignores_derived_fields() -> None:
    a = Series("valve", (("device_id", "X-1"),))
    b = Series("valve", (("device_id", "X-1"),))
    assert a == b and hash(a) == hash(b)
    assert a.device_id == "X-1"
