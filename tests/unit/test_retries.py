from datetime import timedelta

import pytest

from seatmeter.domain.retries import RetryPolicy


def test_delays_double_after_each_failure_up_to_the_ceiling():
    policy = RetryPolicy(base_delay_s=10, factor=2, max_delay_s=60, max_attempts=10)
    delays = [policy.delay_after(n) for n in range(1, 6)]
    assert delays == [timedelta(seconds=s) for s in (10, 20, 40, 60, 60)]


def test_no_attempt_is_left_after_the_last_failure():
    policy = RetryPolicy(base_delay_s=1, max_attempts=3)
    assert policy.delay_after(2) == timedelta(seconds=2)
    assert policy.delay_after(3) is None


def test_a_policy_without_attempts_is_refused():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
