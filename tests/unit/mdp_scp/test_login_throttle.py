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
