import numpy as np
import pytest

from analytics import DeviceTable, SampleBatch
from analytics.base import step_groups
from sealscope.registry import Device
from sealscope.wire import Sample


def test_sample_batch_from_samples_normalises_time_and_marks_absent_fields():
    rows = [
        (3, Sample(t=1_767_225_600.5, p_in_kpa=600.0, leak_mm3s=0.2)),
        (1, Sample(t=1_767_225_601_000, position_pct=0.0)),  # milliseconds
    ]
    b = SampleBatch.from_samples(rows, fields=("p_in_kpa", "leak_mm3s", "position_pct"))
    np.testing.assert_array_equal(b.slot, [3, 1])
    np.testing.assert_array_equal(b.t_s, [1_767_225_600.5, 1_767_225_601.0])
    np.testing.assert_array_equal(b.signal("p_in_kpa"), [600.0, np.nan])
    np.testing.assert_array_equal(b.signal("position_pct"), [np.nan, 0.0])
    assert np.isnan(b.signal("torque_nm")).all()
    assert b.slot.dtype == np.int64 and b.t_s.dtype == np.float64


def test_sample_batch_concat_fills_missing_columns_with_nan():
    a = SampleBatch.from_arrays([0], [1.0], leak_mm3s=[0.5])
    b = SampleBatch.from_arrays([1, 2], [2.0, 3.0], torque_nm=[9.0, 8.0])
    c = SampleBatch.concat([a, SampleBatch.empty(), b])
    assert len(c) == 3
    np.testing.assert_array_equal(c.signal("leak_mm3s"), [0.5, np.nan, np.nan])
    np.testing.assert_array_equal(c.signal("torque_nm"), [np.nan, 9.0, 8.0])
    assert set(c.take([2], fields=("torque_nm", "p_in_kpa")).signals) == {"torque_nm"}


def test_sample_batch_rejects_ragged_or_negative_slots():
    with pytest.raises(ValueError):
        SampleBatch.from_arrays([0, 1], [1.0], leak_mm3s=[1.0, 2.0])
    with pytest.raises(ValueError):
        SampleBatch.from_arrays([-1], [1.0])


def test_step_groups_take_one_row_per_device_per_step():
    slot = np.array([0, 0, 0, 2, 5, 5])
    steps = step_groups(slot)
    assert [s.tolist() for s in steps] == [[0, 3, 4], [1, 5], [2]]
    assert step_groups(np.empty(0, np.int64)) == []


def test_device_table_maps_registry_attributes():
    table = DeviceTable()
    table.set(2, Device("V", "valve", "acme", "BV", dn=80, pn=25, leakage_class="EE"))
    table.set(0, Device("P", "pump", "acme", "CP", leakage_class="X"))  # type: ignore[arg-type]
    assert len(table) >= 3
    np.testing.assert_array_equal(table.column("kind", np.array([0, 1, 2, 99])), [2, 0, 1, 0])
    assert table.column("dn_mm", np.array([2]))[0] == 80
    assert table.column("leakage_class", np.array([0, 2])).tolist() == [0, 8]


def test_slot_time_order_is_the_lexsort_order() -> None:
    from analytics.base import slot_time_order

    rng = np.random.default_rng(3)
    times = [0.0, -0.0, 1.0, 2.5, np.nan, np.inf, -np.inf, 1e9, 1e9 + 1e-6]
    for trial in range(2000):
        n = int(rng.integers(0, 60))
        slot = rng.integers(0, int(rng.integers(1, 8)), n)
        t = rng.choice(times, n) if trial % 4 else rng.normal(size=n)
        if trial % 3 == 0:  # rows already in order: taken as they are
            o = np.lexsort((t, slot))
            slot, t = slot[o], t[o]
        np.testing.assert_array_equal(slot_time_order(slot, t), np.lexsort((t, slot)))


@pytest.mark.parametrize(
    ("devices", "rows", "top_slot"),
    [
        (1, 5000, 0),  # one device's recording: a long run, merge sorted
        (40, 4000, 39),  # runs of ~100: merge sorted
        (3000, 6000, 2999),  # a round's runs of ~2: insertion sorted
        (5, 300, 10**9),  # slots far above the rows: the key sort, not a counting pass
    ],
)
def test_slot_time_order_keeps_the_lexsort_order_on_long_runs_and_sparse_slots(
    devices: int, rows: int, top_slot: int
) -> None:
    from analytics.base import slot_time_order

    rng = np.random.default_rng(devices)
    ids = np.unique(np.r_[rng.choice(top_slot + 1, devices - 1), top_slot])
    slot = rng.choice(ids, rows)
    t = np.round(rng.normal(size=rows), 1)  # many ties
    t[rng.random(rows) < 0.05] = np.nan
    t[rng.random(rows) < 0.02] = np.inf
    np.testing.assert_array_equal(slot_time_order(slot, t), np.lexsort((t, slot)))
    almost = np.lexsort((t, slot))  # nearly in order: one pair swapped per 500 rows
    for k in range(0, rows - 1, 500):
        almost[[k, k + 1]] = almost[[k + 1, k]]
    np.testing.assert_array_equal(
        slot_time_order(slot[almost], t[almost]), np.lexsort((t[almost], slot[almost]))
    )
