"""Failed checks per source: a token bucket, and one aggregated WARNING per interval."""

from __future__ import annotations

import logging

import pytest

from gateway.throttle import FailureThrottle, source_key


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def make(clock: Clock, **kwargs: object) -> FailureThrottle:
    return FailureThrottle(what="key checks", clock=clock, **kwargs)  # type: ignore[arg-type]


def test_throttle_allows_a_burst_then_one_failure_per_second() -> None:
    clock = Clock()
    throttle = make(clock, burst=10, refill_per_s=1.0)
    answers = [throttle.failed("10.0.0.1", "x") for _ in range(12)]
    assert answers[:10] == [None] * 10
    assert answers[10] == pytest.approx(1.0) and answers[11] == pytest.approx(1.0)
    assert throttle.failed("10.0.0.2", "x") is None  # another source has its own budget
    clock.now_s += 1.0
    assert throttle.failed("10.0.0.1", "x") is None
    assert throttle.failed("10.0.0.1", "x") is not None
    clock.now_s += 60.0  # refills to the burst, no further
    assert [throttle.failed("10.0.0.1", "x") for _ in range(11)].count(None) == 10


def test_throttle_logs_the_first_failure_then_one_summary_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.throttle")
    clock = Clock()
    throttle = make(clock, log_interval_s=10.0)
    for _ in range(312):  # at once, as the 300 wrong keys in 0.19 s of issue 9
        throttle.failed("127.0.0.1", "refused uplink for 'D-1': wrong key")
    assert len(caplog.records) == 1
    assert "refused uplink for 'D-1'" in caplog.records[0].getMessage()
    clock.now_s += 10.0
    throttle.flush()
    assert len(caplog.records) == 2
    assert caplog.records[1].getMessage() == (
        "312 failed key checks from 127.0.0.1 in the last 10 s (302 over the limit)"
    )
    # still noisy: the next failures are summed up, not logged one by one
    for _ in range(5):
        throttle.failed("127.0.0.1", "refused")
    assert len(caplog.records) == 2
    clock.now_s += 10.0
    throttle.flush()
    assert caplog.records[2].getMessage().startswith("5 failed key checks from 127.0.0.1")
    # quiet for an interval: the next failure is logged on its own again
    clock.now_s += 10.0
    throttle.flush()
    throttle.failed("127.0.0.1", "refused again")
    assert caplog.records[-1].getMessage() == "refused again (from 127.0.0.1)"
    assert len(caplog.records) == 4


def test_throttle_single_failure_gets_no_summary(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="gateway.throttle")
    clock = Clock()
    throttle = make(clock)
    throttle.failed("10.0.0.9", "one")
    clock.now_s += 30.0
    throttle.flush()
    assert [r.getMessage() for r in caplog.records] == ["one (from 10.0.0.9)"]


def test_throttle_bounds_the_sources_it_remembers() -> None:
    clock = Clock()
    throttle = make(clock, burst=1, max_sources=100)
    for i in range(1000):
        throttle.failed(f"10.1.{i // 256}.{i % 256}", "x")
    assert len(throttle._buckets) <= 100 and len(throttle._windows) <= 100


def test_throttle_source_key_groups_ipv6_by_64_and_unmaps_ipv4() -> None:
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:bbbb::2")
    assert source_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_key("192.0.2.7") == "192.0.2.7"
    assert source_key("not an address") == "not an address"
