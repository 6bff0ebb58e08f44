from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from sealscope.errors import PointsRejected
from sealscope.storage import Point, Series
from sealscope.storage.lineprotocol import encode_points
from tests.storage.lineparser import LineError, parse_line, parse_lines

# every character line protocol treats specially, plus any other code point
HOSTILE_CHARS = st.one_of(
    st.sampled_from(list(",= \\\n\r\t#\"'\x00\x7f\u2028\ud800")), st.characters()
)
hostile_text = st.text(HOSTILE_CHARS, max_size=12)
# everything line protocol can carry: its separators (escaped) and any printable character
CARRIED_CHARS = st.one_of(
    st.sampled_from(list(",= #\"'")), st.characters(exclude_categories=("Cc", "Cs"))
)
carried_text = st.text(CARRIED_CHARS, min_size=1, max_size=12).filter(
    lambda t: "\\" not in t and t != "time"
)
numbers = st.one_of(st.floats(), st.integers(-(2**70), 2**70), st.booleans())
times_ns = st.integers(-(2**64), 2**64)


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


def test_line_protocol_newline_in_a_tag_is_refused_not_split() -> None:
    # the newcomer's probe: a site registered as "a\nb" used to split the line in two
    series = Series("valve", (("device_id", "ACME-V-1"), ("site", "a\nb")))
    assert series.key == "" and "U+000A" in series.problem  # made, but marked
    good = Point(Series("valve", (("device_id", "ACME-V-2"),)), 1, {"p_in_kpa": 1.0})
    with pytest.raises(PointsRejected, match=r"tag 'site' 'a\\nb'.*U\+000A"):
        encode_points([good, Point(series, 1, {"p_in_kpa": 1.0})])


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "1.5", None, 1j])
def test_line_protocol_non_finite_or_non_numeric_field_is_refused(value: object) -> None:
    series = Series("valve", (("device_id", "ACME-V-1"),))
    with pytest.raises(PointsRejected, match=r"'leak_mm3s'.*not a finite number"):
        encode_points([Point(series, 1, {"p_in_kpa": 1.0, "leak_mm3s": value})])  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("measurement", "tags", "fields", "t_ns", "reason"),
    [
        ("#valve", (), {"a": 1.0}, 1, "starts with '#'"),
        ("", (), {"a": 1.0}, 1, "measurement is empty"),
        ("valve", (("", "x"),), {"a": 1.0}, 1, "tag key is empty"),
        ("valve", (("a", "x"), ("a", "y")), {"a": 1.0}, 1, "repeated"),
        ("valve", (("time", "x"),), {"a": 1.0}, 1, "reserved"),
        ("valve", (("site", "c:\\"),), {"a": 1.0}, 1, "backslash at position 2"),
        ("valve", (("site", "a\\,b"),), {"a": 1.0}, 1, "backslash at position 1"),
        ("valve", (), {"time": 1.0}, 1, "'time' is reserved"),
        ("valve", (), {"a b\r": 1.0}, 1, "U+000D"),
        ("valve", (), {}, 1, "no fields"),
        ("valve", (), {"a": 1.0}, 2**63, "out of range"),
        ("valve", (), {"a": 1.0}, 1.5, "out of range"),
    ],
)
def test_line_protocol_refuses_what_it_cannot_carry_with_a_reason(
    measurement: str,
    tags: tuple[tuple[str, str], ...],
    fields: dict[str, float],
    t_ns: int,
    reason: str,
) -> None:
    with pytest.raises(PointsRejected, match=reason.replace("'", ".").replace("+", r"\+")):
        encode_points([Point(Series(measurement, tags), t_ns, fields)])


def test_line_protocol_lone_backslashes_and_quotes_are_plain_characters() -> None:
    series = Series('m "1\\x', (("device_id", "q'uo\"te\\a"),))
    line = encode_points([Point(series, 7, {"k\\z": 2.5})])
    assert parse_line(line).tags == {"device_id": "q'uo\"te\\a"}
    assert parse_line(line).measurement == 'm "1\\x'
    assert parse_line(line).fields == {"k\\z": 2.5}


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(
    measurement=hostile_text,
    tags=st.lists(st.tuples(hostile_text, hostile_text), max_size=4),
    fields=st.dictionaries(hostile_text, numbers, max_size=4),
    t_ns=times_ns,
)
@example(measurement="valve", tags=[("site", "a\nb")], fields={"p": 1.0}, t_ns=0)
@example(measurement="valve", tags=[("site", "x")], fields={"p": math.nan}, t_ns=0)
@example(measurement="v a,l", tags=[("s=i te", "a, =b")], fields={"f,= x": 1e308}, t_ns=-1)
def test_line_protocol_any_input_reads_back_exactly_or_is_refused(
    measurement: str,
    tags: list[tuple[str, str]],
    fields: dict[str, object],
    t_ns: int,
) -> None:
    point = Point(Series(measurement, tuple(tags)), t_ns, fields)  # type: ignore[arg-type]
    try:
        text = encode_points([point])
    except PointsRejected as exc:
        assert str(exc)  # refused, with a reason
        return
    try:
        [parsed] = parse_lines(text)  # one point, one line: nothing split
    except (LineError, ValueError) as exc:
        pytest.fail(f"encoded {point!r} as {text!r}, which a strict reader refuses: {exc}")
    assert parsed.measurement == measurement
    assert parsed.tags == {k: v for k, v in tags if v}
    assert parsed.fields == {k: float(v) for k, v in fields.items()}  # type: ignore[arg-type]
    assert parsed.t_ns == t_ns


@settings(max_examples=300)
@given(
    measurement=carried_text.filter(lambda t: not t.startswith("#")),
    tags=st.dictionaries(carried_text, carried_text, max_size=6),
    fields=st.dictionaries(
        carried_text, st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=4
    ),
    t_ns=st.integers(-(2**63) + 2, 2**63 - 2),
)
def test_line_protocol_every_printable_value_is_carried_exactly(
    measurement: str, tags: dict[str, str], fields: dict[str, float], t_ns: int
) -> None:
    point = Point(Series(measurement, tuple(tags.items())), t_ns, fields)
    [parsed] = parse_lines(encode_points([point]))
    assert (parsed.measurement, parsed.tags, parsed.fields, parsed.t_ns) == (
        measurement,
        tags,
        fields,
        t_ns,
    )


def test_line_parser_catches_the_old_encoder_faults() -> None:
    # the checks above only mean something if the reader refuses what used to be written
    # what the old encoder wrote for these points
    for old in (
        "valve,site=a\nb p=1.0 0",  # site "a\nb": the line split in two
        "valve p=nan 0",
        "valve,site=c:\\ p=1.0 0",  # site "c:\": the space became part of the tag
        "valve,site=a\\\\,b=c p=1.0 0",  # site "a\\,b": 1.x reads two backslashes
        "#valve p=1.0 0",  # measurement "#valve": a comment
    ):
        with pytest.raises(LineError):
            parse_lines(old)


@given(values=st.lists(st.floats(), min_size=1, max_size=6), t_ns=times_ns)
def test_line_protocol_floats_round_trip_bit_for_bit_or_are_refused(
    values: list[float], t_ns: int
) -> None:
    fields = {f"f{i}": v for i, v in enumerate(values)}
    point = Point(Series("valve", (("device_id", "ACME-V-1"),)), t_ns, fields)
    finite = all(math.isfinite(v) for v in values)
    in_range = -(2**63) + 2 <= t_ns <= 2**63 - 2
    if not (finite and in_range):
        with pytest.raises(PointsRejected):
            encode_points([point])
        return
    parsed = parse_line(encode_points([point]))
    assert [math.copysign(1, v) for v in parsed.fields.values()] == [
        math.copysign(1, v) for v in values
    ]
    assert list(parsed.fields.values()) == values
