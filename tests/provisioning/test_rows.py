"""Fleet files row by row: each fault named by line (CSV) or index (JSON), with its reason."""

from __future__ import annotations

import pytest

from sealscope.errors import FleetFileRejected
from sealscope.provisioning import RowProblem, parse_csv, parse_json, validate_rows
from sealscope.registry import Device


def _verdicts(rows: list, manufacturer: str = "ACME") -> list[Device | RowProblem]:
    return [v for _, v in validate_rows(rows, manufacturer)]


def _fields(problem: Device | RowProblem) -> set[str]:
    assert isinstance(problem, RowProblem)
    return {p.field for p in problem.problems}


def test_parse_csv_numbers_rows_by_the_line_they_start_on() -> None:
    body = (
        "\ufeffSerial,kind,model,lot\n"  # a BOM and a capitalised, aliased header
        "ACME-1,valve,BV-50,L1\n"
        "\n"  # a blank line is skipped but still counted
        'ACME-2,pump,"CP\n80",L2\n'  # a quoted newline: the record spans lines 4-5
        "ACME-3,valve,BV-50,L3\n"
    ).encode()
    rows = parse_csv(body)
    assert [r.line for r in rows] == [2, 4, 6]
    assert rows[0].values["device_id"] == "ACME-1"
    assert rows[0].values["batch"] == "L1"
    verdicts = _verdicts(rows)
    assert isinstance(verdicts[0], Device) and verdicts[0].batch == "L1"
    assert _fields(verdicts[1]) == {"model"}  # a newline in a label
    assert isinstance(verdicts[2], Device)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"", "empty"),
        (b"serial,kind,colour\nA-1,valve,red\n", "unknown column"),
        (b"serial,kind,model,serial\n", "twice"),
        (b"kind,model\nvalve,m\n", "device_id"),
        (b"serial,kind,model\n\xff\xfe,valve,m\n", "not UTF-8"),
        (b'serial,kind,model\n"ACME-1,valve,m\n', "malformed CSV"),
    ],
)
def test_parse_csv_refuses_an_unreadable_file_whole(body: bytes, needle: str) -> None:
    with pytest.raises(FleetFileRejected, match=needle):
        parse_csv(body)


def test_validate_rows_reports_every_fault_of_a_row() -> None:
    rows = parse_csv(
        b"serial,kind,model,dn,pn,leakage_class,firmware,manufacturer\n"
        b"a/b,robot,,-5,x,Z,1.0\\2,OTHER\n"
        b"ACME-2,valve,BV,50\n"  # too few cells
    )
    first, second = _verdicts(rows)
    assert _fields(first) == {
        "device_id",
        "kind",
        "model",
        "dn",
        "pn",
        "leakage_class",
        "firmware",
        "manufacturer",
    }
    assert isinstance(first, RowProblem) and first.line == 2 and first.device_id == "a/b"
    assert isinstance(second, RowProblem) and second.line == 3
    assert "cells" in second.problems[0].reason


def test_validate_rows_refuses_a_repeated_device_id() -> None:
    rows = parse_csv(b"serial,kind,model\nACME-1,valve,m\nACME-1,pump,m\n")
    first, second = _verdicts(rows)
    assert isinstance(first, Device)
    assert isinstance(second, RowProblem) and "earlier (at 2)" in second.problems[0].reason


def test_validate_rows_normalises_kind_and_leakage_class() -> None:
    (device,) = _verdicts(
        parse_json(
            [{"serial": "ACME-1", "kind": "Valve", "model": "m", "leakage_class": "aa", "dn": 50}]
        )
    )
    assert isinstance(device, Device)
    assert (device.kind, device.leakage_class, device.dn, device.manufacturer) == (
        "valve",
        "AA",
        50,
        "ACME",
    )


def test_parse_json_rows_are_indexed_and_typed_strictly() -> None:
    rows = parse_json(
        [
            {"device_id": "ACME-1", "kind": "valve", "model": "m", "dn": True},
            "ACME-2",
            {"device_id": "ACME-3", "serial": "ACME-3", "kind": "pump", "model": "m"},
            {"device_id": "ACME-4", "kind": "pump", "model": 7, "colour": "red"},
        ]
    )
    verdicts = _verdicts(rows)
    assert [r.line for r in rows] == [0, 1, 2, 3]
    assert _fields(verdicts[0]) == {"dn"}
    assert _fields(verdicts[1]) == {"row"}
    assert _fields(verdicts[2]) == {"row"}
    assert _fields(verdicts[3]) == {"model", "colour"}


def test_parse_json_refuses_a_body_that_is_not_an_array() -> None:
    with pytest.raises(FleetFileRejected, match="array"):
        parse_json({"device_id": "ACME-1"})
