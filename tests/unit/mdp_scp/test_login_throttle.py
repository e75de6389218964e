"""The login throttle against a reference model, and which counters a successful login clears.

Pinned by mutation testing (issue 21).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdp_scp import ControlPlane
from mdp_scp.login_throttle import LoginThrottle

from .conftest import PASSWORDS, csrf_of_login_page

ClientFactory = Callable[[ControlPlane], Awaitable[Any]]
PlaneFactory = Callable[..., ControlPlane]

_KEYS = ("user:a", "user:b", "addr:x")


class _Reference:
    """Each key keeps its last ``max_failures`` failures, each counting for one window."""

    def __init__(self, max_failures: int, window: float) -> None:
        self.max = max_failures
        self.window = window
        self.failures: dict[str, list[float]] = {}

    def recent(self, key: str, now: float) -> list[float]:
        return [t for t in self.failures.get(key, []) if t > now - self.window]

    def retry_after(self, keys: tuple[str, ...], now: float) -> float:
        waits = [0.0]
        for key in keys:
            recent = self.recent(key, now)
            if len(recent) >= self.max:
                waits.append(recent[0] + self.window - now)
        return max(waits)

    def failed(self, keys: tuple[str, ...], now: float) -> None:
        for key in keys:
            kept = [*self.failures.get(key, []), now]
            self.failures[key] = kept[-self.max :]

    def withdraw(self, key: str, at: float) -> None:
        times = self.failures.get(key, [])
        if at in times:
            times.remove(at)

    def succeeded(self, key: str) -> None:
        self.failures.pop(key, None)


_step = st.tuples(
    st.sampled_from(["failed", "withdraw", "succeeded", "check"]),
    st.lists(st.sampled_from(_KEYS), min_size=1, max_size=3, unique=True),
    st.integers(min_value=0, max_value=4),  # seconds to advance
    st.integers(min_value=0, max_value=3),  # how far back a withdrawal points
)


@given(
    st.integers(min_value=1, max_value=4),
    st.integers(min_value=1, max_value=6),
    st.lists(_step, max_size=40),
)
def test_the_throttle_follows_the_reference(
    max_failures: int, window: int, steps: list[tuple[str, list[str], int, int]]
) -> None:
    throttle = LoginThrottle(max_failures, float(window))
    reference = _Reference(max_failures, float(window))
    now = 0.0
    for action, keys, advance, back in steps:
        now += advance
        if action == "failed":
            throttle.failed(tuple(keys), now)
            reference.failed(tuple(keys), now)
        elif action == "withdraw":
            throttle.withdraw(keys[0], now - back)
            reference.withdraw(keys[0], now - back)
        elif action == "succeeded":
            throttle.succeeded(keys[0])
            reference.succeeded(keys[0])
        for key in _KEYS:
            assert throttle.retry_after((key,), now) == reference.retry_after((key,), now), key
        assert throttle.retry_after(tuple(keys), now) == reference.retry_after(tuple(keys), now)


def test_a_failure_stops_counting_exactly_one_window_later() -> None:
    throttle = LoginThrottle(max_failures=1, window_seconds=10)
    throttle.failed(("k",), now=5.0)
    assert throttle.retry_after(("k",), now=14.5) == pytest.approx(0.5)
    assert throttle.retry_after(("k",), now=15.0) == 0.0


def test_withdrawing_takes_back_one_failure_of_that_key_only() -> None:
    throttle = LoginThrottle(max_failures=2, window_seconds=60)
    throttle.failed(("a", "b"), now=1.0)
    throttle.failed(("a", "b"), now=2.0)
    throttle.withdraw("a", at=2.0)
    assert throttle.retry_after(("a",), now=3.0) == 0.0
    assert throttle.retry_after(("b",), now=3.0) == pytest.approx(58.0)
    throttle.withdraw("a", at=7.0)  # nothing recorded then: no change
    throttle.withdraw("nobody", at=1.0)
    throttle.failed(("a",), now=4.0)
    assert throttle.retry_after(("a",), now=5.0) == pytest.approx(56.0)
    throttle.withdraw("a", at=1.0)
    throttle.withdraw("a", at=4.0)
    assert throttle._failures.keys() == {"b"}  # an emptied key is forgotten


def test_succeeding_forgets_only_that_key() -> None:
    throttle = LoginThrottle(max_failures=1, window_seconds=60)
    throttle.failed(("a", "b"), now=1.0)
    throttle.succeeded("a")
    throttle.succeeded("never-seen")
    assert throttle.retry_after(("a",), now=2.0) == 0.0
    assert throttle.retry_after(("b",), now=2.0) == pytest.approx(59.0)


def test_a_full_table_drops_expired_keys_first_and_never_a_live_one() -> None:
    throttle = LoginThrottle(max_failures=1, window_seconds=10, max_keys=2)
    throttle.failed(("old",), now=0.0)
    throttle.failed(("live",), now=5.0)
    # Full: "old" has expired by t=12 and makes room; "live" is kept.
    throttle.failed(("new", "newer"), now=12.0)
    assert throttle.retry_after(("new",), now=12.0) == pytest.approx(10.0)
    assert throttle.retry_after(("live",), now=12.0) == pytest.approx(3.0)
    # Still full of live keys: a further new key is not tracked, the later ones neither.
    assert throttle.retry_after(("newer",), now=12.0) == 0.0
    assert len(throttle._failures) == 2
    throttle.failed(("live",), now=13.0)  # a known key is still counted when full
    assert throttle.retry_after(("live",), now=13.0) == pytest.approx(10.0)


def test_the_default_bound_is_one_hundred_thousand_keys() -> None:
    throttle = LoginThrottle(max_failures=1, window_seconds=10)
    assert throttle._max_keys == 100_000


async def test_a_successful_login_clears_the_user_counter_and_only_its_own_address_failure(
    plane_factory: PlaneFactory, client_factory: ClientFactory
) -> None:
    plane = plane_factory(
        login_max_failures=3, login_max_failures_per_address=4, trusted_proxies=("127.0.0.1",)
    )
    client = await client_factory(plane)

    async def login(password: str, address: str = "198.51.100.7") -> int:
        token = await csrf_of_login_page(client)
        response: Any = await client.post(
            "/login",
            data={"user": "admin", "password": password, "csrf": token},
            headers={"X-Forwarded-For": address},
            allow_redirects=False,
        )
        client.session.cookie_jar.clear()
        return int(response.status)

    assert [await login("wrong") for _ in range(2)] == [401, 401]
    assert await login(PASSWORDS["admin"]) == 303
    # The user counter was cleared: two more wrong guesses are still answered, not throttled.
    assert [await login("wrong") for _ in range(2)] == [401, 401]
    # The address counter kept its four failures (the success withdrew only its own): throttled.
    assert await login(PASSWORDS["admin"]) == 429
    # Elsewhere, the user is not blocked: its counter has two failures out of three.
    assert await login(PASSWORDS["admin"], "203.0.113.9") == 303
