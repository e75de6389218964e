"""Which counters a successful login clears (the user's; only its own address failure).

Pinned by mutation testing (issue 21).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mdp_scp import ControlPlane

from .conftest import PASSWORDS, csrf_of_login_page

ClientFactory = Callable[[ControlPlane], Awaitable[Any]]
PlaneFactory = Callable[..., ControlPlane]


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


# The database-backed throttle against a reference model (SQLite in memory).

from hypothesis import given, settings  # noqa: E402 - grouped with the tests that use it
from hypothesis import strategies as st  # noqa: E402

from mdp_scp.database import Database  # noqa: E402
from mdp_scp.login_throttle import LoginThrottle  # noqa: E402


def _reference_wait(times: list[float], limit: int, now: float, window: float) -> float:
    recent = sorted((t for t in times if t > now - window), reverse=True)
    return 0.0 if len(recent) <= limit else recent[limit] + window - now


@settings(deadline=None, max_examples=40)
@given(
    st.integers(min_value=1, max_value=3),
    st.lists(
        st.tuples(st.sampled_from(["u", "a"]), st.integers(min_value=0, max_value=3)), max_size=10
    ),
)
async def test_the_throttle_follows_a_reference(limit: int, steps: list[tuple[str, int]]) -> None:
    database = Database("sqlite:///:memory:")
    await database.migrate()
    window = 4.0
    throttle = LoginThrottle(database, window)
    kept: dict[str, list[float]] = {"user:x": [], "addr:y": []}
    now = 100.0
    try:
        for kind, advance in steps:
            now += advance
            keys = {"user:x": limit} if kind == "u" else {"user:x": limit, "addr:y": limit + 1}
            for key in keys:
                kept[key].append(now)
            expected = max(_reference_wait(kept[k], keys[k], now, window) for k in keys)
            attempt = await throttle.attempt(keys, now)
            assert attempt.retry_after == expected
            assert attempt.allowed is (expected <= 0)
            if expected > 0:  # refused: the attempt takes its rows back
                for key in keys:
                    kept[key].pop()
            for key, times in kept.items():
                live = [t for t in times if t > now - window]
                assert await throttle.count(key, now) == len(live)
    finally:
        await database.close()
