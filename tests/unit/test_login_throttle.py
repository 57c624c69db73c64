"""The portal's login throttle: failures per (name, address) in a sliding window."""

from __future__ import annotations

import time

import pytest

from controller.northbound.web.accounts import LoginThrottle, LoginThrottled


def test_a_pair_is_locked_after_its_failures_until_the_oldest_leaves_the_window() -> None:
    throttle = LoginThrottle(allowed=2, window_s=0.3)
    throttle.failed("Alice", "198.18.0.9")
    throttle.check("alice", "198.18.0.9")                 # one failure: still allowed
    throttle.failed("alice", "198.18.0.9")
    with pytest.raises(LoginThrottled) as locked:
        throttle.check("ALICE", "198.18.0.9")             # names compare without case
    assert locked.value.retry_after_s >= 1
    throttle.check("alice", "198.18.0.10")                # another address is its own pair
    throttle.check("bob", "198.18.0.9")
    time.sleep(0.35)
    throttle.check("alice", "198.18.0.9")                 # the window has passed


def test_a_success_forgets_the_failures_and_expired_pairs_are_dropped() -> None:
    throttle = LoginThrottle(allowed=2, window_s=0.2)
    throttle.failed("alice", "a")
    throttle.succeeded("alice", "a")
    throttle.failed("alice", "a")
    throttle.check("alice", "a")
    for i in range(50):
        throttle.failed(f"sprayed{i}", "b")
    time.sleep(0.25)
    throttle._forget_expired()
    assert throttle._failures == {}
